"""`python -m ioc_pipeline.cli`: run the pipeline, print the scorecard, check a department's file.

    run        every asset through Dagster, as `make run` does; ends with a table of feeds and their state
    scorecard  the published scorecard
    validate   a department's file(s), offline: the same readers and rules as the pipeline, a feedback workbook

`run` records every run in the Dagster instance of `DAGSTER_HOME` (they show in the UI like any
other): a run of `refresh_provinces` per former province (its partition of every feed's ingestion and
gate; the first one also the reference units), then `dossier_months` over the months whose dossiers
changed (one single-run backfill per contiguous range, of every province), the last of these runs going
on with what is downstream of them (gold, the scorecard, the feed status, the warehouse, the report; a
run of `refresh_all` when no month changed): two runs for a first load or a nightly of one province.
Bronze and silver steps run only for what changed since the last run (a new delivery, a new quality
policy, new code: Dagster's stale status, see versions.py); `run --all` rebuilds them all. A feed's blocked
batch or refused file does not stop the others: its last good version is published. If a step failed
outright, the runs after it still go, and a last
`publish` run publishes every feed's last good state.

Exit codes of `run`: 0 every delivered feed published; 3 the warehouse was published but some feed
is blocked or has a refused file (the table says which and why); 1 the warehouse could not be
published; 2 refused to start (configuration, e.g. no IOC_PII_KEY in production).
Exit codes of `validate`: 0 the file(s) would be published; 3 a batch would be blocked by the quality
policy; 4 a file would be refused (unreadable, wrong shape, no feed of that name); 2 usage.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.execution.execution_result import ExecutionResult
from dagster._core.storage.tags import PARTITION_NAME_TAG

from ioc_pipeline import executors, progress, provinces, recovery, versions
from ioc_pipeline.automation import (
    PROVINCES_JOB,
    PUBLISH_KEY,
    RANGE_END,
    RANGE_START,
    month_range_tags,
    range_tags,
    recent_run,
)
from ioc_pipeline.pii import PiiKeyError, resolve_key
from ioc_pipeline.resources import resolved

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_PARTIAL, EXIT_REFUSED = 0, 1, 2, 3, 4
NOT_PUBLISHED_STATES = ("blocked", "file_refused")
PARTITION_TAG = PARTITION_NAME_TAG  # Dagster's: here the former province of a province job's run
PROVINCE_PARTITIONS = dg.StaticPartitionsDefinition  # the province partitions' kind (layers.province_partitions)


def check_pii_key() -> None:
    """Refuse to start, with the reason, when the dossier feed could not be pseudonymised."""
    pii = resolved("pii")
    resolve_key(pii.key, pii.mode)


def _execute(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    tags: dict[str, str] | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
) -> ExecutionResult:
    label = f" [{tags[RANGE_START]}..{tags[RANGE_END]}]" if tags and RANGE_START in tags else ""
    label = f" [{tags[PARTITION_TAG]}]" if tags and PARTITION_TAG in tags else label
    print(f"run {job.name}{label}:", flush=True)
    run_tags = {**(tags or {}), **recovery.run_tags()}  # whose process runs it: a dead one is recognised
    if executors.engine() != "in_process":  # IOC_EXECUTOR: the job's own executor (a Dask cluster) runs the steps
        return executors.execute(
            job.name, instance, run_config=progress.RUN_CONFIG, tags=run_tags, asset_selection=asset_selection
        )
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=progress.RUN_CONFIG,
        tags=run_tags,
        asset_selection=asset_selection,
    )


def published_in(result: ExecutionResult) -> bool:
    return any(
        event.event_type_value == "ASSET_MATERIALIZATION" and event.asset_key == PUBLISH_KEY
        for event in result.all_events
    )


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance, everything: bool = False) -> list[ExecutionResult]:
    """Every asset that needs it, in order: each former province's partition of the snapshot feeds (with what
    is upstream of the dossier months), the changed months, downstream; then, if a failed step kept the
    warehouse from being published, the `publish` job from the last good state. Bronze and silver steps run
    only where a delivery, the quality policy or the code changed (versions.py), unless `everything`.

    A run per province partition (Dagster runs one partitions definition per run; a province whose load fails
    fails its own run only), the first one also taking the unpartitioned assets upstream of the months: one
    run with the legacy single province. Then a run per range of months: its range is fixed when it is
    launched, and which months changed is known only once bronze is loaded. What is downstream of every
    partition goes in the run of the last range (one run fewer: each costs its run record, plan and events in
    the instance)."""
    from ioc_pipeline.definitions import PARTITIONED, PARTITIONED_FEEDS

    graph = defs.resolve_asset_graph()
    partitioned = PARTITIONED.resolve(graph)
    job = defs.resolve_job_def("refresh_all")
    provincial = {k for k in graph.get_all_asset_keys() if isinstance(graph.get(k).partitions_def, PROVINCE_PARTITIONS)}
    unpartitioned = set(job.asset_layer.executable_asset_keys) - partitioned
    selectable = unpartitioned
    by_province = {code: set(provincial) for code in provinces.codes()}
    if not everything:
        landing = resolved("landing")
        versions.observe(instance, landing.landing(), landing.settle_seconds)
        by_province = {code: versions.outdated(graph, instance, provincial, code) for code in by_province}
        rebuilt = set().union(*by_province.values())  # and what is below a province's rebuilt partition
        below = dg.AssetSelection.assets(*rebuilt).downstream().resolve(graph) if rebuilt else set()
        selectable = versions.outdated(graph, instance, unpartitioned) | (below & unpartitioned)
    downstream = (PARTITIONED | dg.AssetSelection.assets(*provincial)).downstream().resolve(graph) & selectable
    upstream = selectable - downstream
    province_runs = [(code, keys) for code, keys in by_province.items() if keys]
    if len(province_runs) == 1:
        # one province (the legacy layout): its run goes on with what is below it but not below the months (the
        # snapshot feeds' gold), as one run always did; with several, that waits for every province's run
        below_provinces = downstream - PARTITIONED.downstream().resolve(graph)
        code, keys = province_runs[0]
        province_runs[0], downstream = (code, keys | below_provinces), downstream - below_provinces
    if province_runs:
        code, keys = province_runs[0]
        province_runs[0] = (code, keys | upstream)
        results = _province_runs(defs.resolve_job_def(PROVINCES_JOB), province_runs, instance)
    else:
        results = [_execute(job, instance, asset_selection=sorted(upstream))]
    for feed in PARTITIONED_FEEDS:  # a fresh instance (new DAGSTER_HOME) knows no month: register before targeting
        feed.register(instance)
    ranged_runs = [  # the partitions each partitioned feed's loads changed (dossier months), one run per range
        (defs.resolve_job_def(feed.job_name), feed.assets.resolve(graph), start, end)
        for feed in PARTITIONED_FEEDS
        for start, end in feed.ranges(instance)
    ]
    if executors.engine() == "dask" and ranged_runs:
        # the partitions side by side on the cluster: a run per chunk, all at once, then downstream in a run of its own
        chunked = [
            (ranged, selection, range_tags(chunk))
            for ranged, selection, start, end in ranged_runs
            for chunk in executors.chunks(ranged.partitions_def, *_range(ranged, start, end), instance)
        ]
        for ranged, _, tags in chunked:
            print(f"run {ranged.name} [{tags[RANGE_START]}..{tags[RANGE_END]}] (side by side):", flush=True)
        extra: dict[str, Any] = {"run_config": progress.RUN_CONFIG}
        side_by_side = [
            (ranged, {**extra, "tags": {**tags, **recovery.run_tags()}, "asset_selection": sorted(selection)})
            for ranged, selection, tags in chunked
        ]
        results.extend(executors.execute_side_by_side(side_by_side, instance))
        ranged_runs = []
    for number, (ranged, selection, start, end) in enumerate(ranged_runs, 1):
        if number == len(ranged_runs) and downstream <= set(ranged.asset_layer.executable_asset_keys):
            selection, downstream = selection | downstream, set()  # the last range's run goes on downstream
        tags = month_range_tags(ranged.partitions_def, start, end)  # of every former province
        results.append(_execute(ranged, instance, tags=tags, asset_selection=sorted(selection)))
    if downstream:  # no range changed (or the last range's job cannot take it): downstream in a run of its own
        results.append(_execute(job, instance, asset_selection=sorted(downstream)))
    if not published_in(results[-1]):
        print("the warehouse was not published by that run: publishing every feed's last good data", flush=True)
        results.append(_execute(defs.resolve_job_def("publish"), instance))
    return results


def _range(job: dg.JobDefinition, start: str, end: str) -> tuple[str, str]:
    """The first and last partition keys of a run over the months `start` to `end` (of every former province)."""
    tags = month_range_tags(job.partitions_def, start, end)
    return tags[RANGE_START], tags[RANGE_END]


def _province_runs(
    job: dg.JobDefinition, runs: list[tuple[str, set[dg.AssetKey]]], instance: dg.DagsterInstance
) -> list[ExecutionResult]:
    """A run of the province job per (former province, its assets): one after the other in process, side by
    side on a Dask cluster (`IOC_EXECUTOR=dask`)."""
    tagged = [({PARTITION_TAG: code}, sorted(keys)) for code, keys in runs]
    if executors.engine() != "dask" or len(runs) < 2:
        return [_execute(job, instance, tags=tags, asset_selection=keys) for tags, keys in tagged]
    for tags, _ in tagged:
        print(f"run {job.name} [{tags[PARTITION_TAG]}] (side by side):", flush=True)
    extra: dict[str, Any] = {"run_config": progress.RUN_CONFIG}
    side_by_side = [
        (job, {**extra, "tags": {**tags, **recovery.run_tags()}, "asset_selection": keys}) for tags, keys in tagged
    ]
    return list(executors.execute_side_by_side(side_by_side, instance))


def job_runs(job: dg.JobDefinition, instance: dg.DagsterInstance) -> list[dict]:
    """`_execute` arguments for the runs of `job` now: one per former province for a job partitioned by
    province, else the one `job_run`."""
    if isinstance(job.partitions_def, PROVINCE_PARTITIONS):
        return [{"tags": {PARTITION_TAG: code}} for code in job.partitions_def.get_partition_keys()]
    return [job_run(job, instance)]


def job_run(job: dg.JobDefinition, instance: dg.DagsterInstance) -> dict:
    """`_execute` arguments for one run of `job` now: for a month-partitioned job, the delivered months
    registered first, then this and last month among them (else the newest delivered; none: the other assets
    only); for a job partitioned by province, the first province's (`job_runs`: each province's)."""
    from ioc_pipeline.definitions import PARTITIONED_FEEDS

    if isinstance(job.partitions_def, PROVINCE_PARTITIONS):
        return job_runs(job, instance)[0]
    if job.partitions_def is not None:
        for feed in PARTITIONED_FEEDS:
            feed.register(instance)
    return recent_run(job, datetime.now(UTC), instance)


def run(job_name: str | None = None, everything: bool = False) -> int:
    try:
        check_pii_key()
    except PiiKeyError as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return EXIT_CONFIG
    from ioc_pipeline.definitions import build_defs

    defs = build_defs()
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance, recovery.stop_on_signals(instance):
        # SIGTERM/SIGINT stop within seconds, even while a step waits for a slot (the handlers are restored after)
        recovery.recover(instance)  # what dead runs left: their runs failed, slots freed, temp files removed
        if job_name:
            job = defs.resolve_job_def(job_name)
            results = [_execute(job, instance, **arguments) for arguments in job_runs(job, instance)]
        else:
            results = refresh(defs, instance, everything)
    elapsed = time.monotonic() - started
    for result in results:
        for event in result.all_events:
            if event.is_step_failure:
                print(
                    f"FAILED {event.step_key}: {progress.root_message(event.step_failure_data.error)}", file=sys.stderr
                )
    published = any(published_in(r) for r in results)
    states = show_feeds()
    troubled = [f"{feed} ({state})" for feed, state in states if state in NOT_PUBLISHED_STATES]
    troubled += failed_checks(results)
    failed = [f"{r.job_def.name} {r.run_id[:8]}" for r in results if not r.success]
    print(f"\n{len(results)} run(s) in {elapsed:.1f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if not published:
        print("FAILED: the warehouse was not published", file=sys.stderr)
        return EXIT_FAILED
    if troubled or failed:
        print(f"published, but not every feed: {', '.join(troubled) or 'a step failed (see above)'}")
        return EXIT_PARTIAL
    return EXIT_OK


def failed_checks(results: list[ExecutionResult]) -> list[str]:
    """The checks of severity ERROR that failed (a province's load that failed outright fails
    `delivered_files_readable` while every feed still shows its last good data): `cli run` says so, exit 3."""
    return [
        f"{e.asset_key.to_user_string()} (check {e.check_name} failed)"
        for r in results
        for e in r.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]


def show_feeds() -> list[tuple[str, str]]:
    """The feed table (ops/feed_status of the lake), and every feed's (name, state)."""

    store = resolved("lake").lake()
    if not store.exists("ops", "feed_status"):
        print("\n(no feed status was written)")
        return []
    table = store.read("ops", "feed_status")
    several = "province_code" in table.columns and table.get_column("province_code").n_unique() > 1
    table = table.sort(*(["province_code"] if several else []), "feed", "carrier", nulls_last=False)
    print("\nfeeds (ops.feed_status):")
    print(f"  {'feed':<32} {'state':<16} {'published':<11} reason")
    for row in table.iter_rows(named=True):
        where = f"{row['province_code']}/" if several else ""  # the former province, when there are several
        name = where + row["feed"] + (f"/{row['carrier']}" if row["carrier"] else "")
        snapshot = str(row["last_published_snapshot"] or "-")
        print(f"  {name:<32} {row['state']:<16} {snapshot:<11} {row['reason_en']}")
    return list(table.select("feed", "state").unique(maintain_order=True).iter_rows())


def show_scorecard() -> None:
    """The latest value of each indicator; with several former provinces, one block per province and one for
    the merged city (a single-province deployment prints exactly one block, without a heading)."""
    from ioc_pipeline.warehouse import connect

    path = resolved("warehouse").path
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "select province_scope, province_code, indicator_code, value, unit, as_of_date from gold.ioc_scorecard "
            "qualify row_number() over (partition by province_scope, province_code, indicator_code "
            "order by as_of_date desc) = 1 order by province_scope, province_code, indicator_code"
        ).fetchall()
    print(f"\ngold.ioc_scorecard in {path} (latest value of each indicator):")
    blocks = [
        (scope, list(block)) for scope, block in itertools.groupby(rows, key=lambda row: row[:2])
    ]  # the query sorts by them
    for (scope, province), block in blocks:
        if len(blocks) > 1:
            print(f"  [{scope} {province}]")
        for *_, code, amount, unit, as_of in block:
            if amount is None:
                shown = "-"
            elif unit == "percent":
                shown = f"{amount:,.4f}"
            else:
                shown = f"{amount:,.0f}"
            print(f"  {code:<32} {shown:>14} {unit:<8} {as_of}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ioc_pipeline.cli", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize every asset (refresh_all, then the changed dossier months)")
    run_parser.add_argument("--job", default=None, help="run one job instead (refresh_all, dossier_months, ...)")
    run_parser.add_argument(
        "--all", action="store_true", help="rebuild every bronze and silver table, changed or not (default: changed)"
    )
    sub.add_parser("scorecard", help="print the published scorecard")
    check = sub.add_parser(
        "validate",
        help="check a department's file(s) offline with the pipeline's own readers and rules",
        description="Exit 0: would be published; 3: a batch would be blocked; 4: a file would be refused.",
    )
    check.add_argument(
        "paths", nargs="+", help="delivered file(s), named as the contract says (e.g. viettel_20220430.csv)"
    )
    check.add_argument("--out", default=None, help="folder for the feedback workbook(s) (default: beside each file)")
    check.add_argument(
        "--province",
        default=None,
        help="former province whose units and area judge the file (92, 93, 94; default: the first of IOC_PROVINCES)",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        code = run(args.job, args.all)
        if code in (EXIT_OK, EXIT_PARTIAL):
            show_scorecard()
        gc.freeze()  # the interpreter's last collection would walk every object of the runs: 2 s at S=1, for nothing
        sys.exit(code)
    if args.command == "validate":
        from ioc_pipeline import provinces
        from ioc_pipeline.validate import validate

        with provinces.gating(args.province or provinces.current()):
            code = validate(args.paths, args.out)
        sys.exit(code)
    show_scorecard()


if __name__ == "__main__":
    main()
