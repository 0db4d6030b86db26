"""`python -m ioc_pipeline.cli run`: materialize everything through Dagster, as `make run` does.

One command, three kinds of run, all recorded in the Dagster instance of `DAGSTER_HOME` (they show in
the UI like any other): the part of `refresh_all` upstream of the dossier months (every feed's
ingestion, the catalog, the reference units), then `dossier_months` over the months whose dossiers
changed (one single-run backfill per contiguous range: every month of a first load, not only the
nightly's two), then the rest of `refresh_all` (gold, the scorecard, the warehouse). It stops at
the first failed run, so a blocked batch never reaches the warehouse, and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import cast

import dagster as dg

from ioc_pipeline.assets.public_service import month_ranges, months_to_refresh
from ioc_pipeline.automation import RANGE_END, RANGE_START, range_tags, recent_range_tags
from ioc_pipeline.definitions import PARTITIONED, build_defs
from ioc_pipeline.pii import PiiKeyError, resolve_key
from ioc_pipeline.resources import PiiResource, WarehouseResource, resources
from ioc_pipeline.warehouse import connect


def _value(setting: object) -> str:
    return setting.get_value() or "" if isinstance(setting, dg.EnvVar) else str(setting)


def check_pii_key() -> None:
    """Refuse to start, with the reason, when the dossier feed could not be pseudonymised."""
    pii = cast(PiiResource, resources()["pii"])
    resolve_key(_value(pii.key), _value(pii.mode))


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    """Every asset, in order: upstream of the dossier months, the changed months, downstream."""
    graph = defs.resolve_asset_graph()
    partitioned = PARTITIONED.resolve(graph)
    job = defs.resolve_job_def("refresh_all")
    selectable = set(job.asset_layer.executable_asset_keys) - partitioned
    downstream = PARTITIONED.downstream().resolve(graph) & selectable
    upstream = selectable - downstream
    results = [job.execute_in_process(instance=instance, asset_selection=sorted(upstream), raise_on_error=False)]
    if not results[-1].success:
        return results
    months = defs.resolve_job_def("dossier_months")
    for start, end in month_ranges(months_to_refresh(instance)):
        tags, selection = range_tags([start, end]), sorted(partitioned)
        results.append(
            months.execute_in_process(instance=instance, tags=tags, asset_selection=selection, raise_on_error=False)
        )
        if not results[-1].success:
            return results
    results.append(job.execute_in_process(instance=instance, asset_selection=sorted(downstream), raise_on_error=False))
    return results


def run(job_name: str | None = None) -> bool:
    try:
        check_pii_key()
    except PiiKeyError as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return False
    defs = build_defs()
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        if job_name:
            job = defs.resolve_job_def(job_name)
            tags = recent_range_tags(job, datetime.now(UTC))  # a partitioned job: this and last month
            results = [job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)]
        else:
            results = refresh(defs, instance)
    elapsed = time.monotonic() - started
    for result in results:
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                failure = event.step_failure_data.error
                print(f"FAILED {event.step_key}: {failure.message.strip() if failure else ''}", file=sys.stderr)
        partitions = result.dagster_run.tags.get(RANGE_START)
        label = f" [{partitions}..{result.dagster_run.tags.get(RANGE_END)}]" if partitions else ""
        print(f"run {result.run_id} {result.job_def.name}{label}: {'succeeded' if result.success else 'FAILED'}")
    ok = all(r.success for r in results)
    print(f"{'done' if ok else 'FAILED'} in {elapsed:.1f} s")
    return ok


def show_scorecard() -> None:
    path = cast(WarehouseResource, resources()["warehouse"]).path
    if not isinstance(path, str):
        path = path.get_value()
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "select indicator_code, value, unit, as_of_date from gold.ioc_scorecard "
            "qualify row_number() over (partition by indicator_code order by as_of_date desc) = 1 "
            "order by indicator_code"
        ).fetchall()
    print(f"\ngold.ioc_scorecard in {path} (latest value of each indicator):")
    for code, value, unit, as_of in rows:
        if value is None:
            shown = "-"
        elif unit == "percent":
            shown = f"{value:,.4f}"
        else:
            shown = f"{value:,.0f}"
        print(f"  {code:<32} {shown:>14} {unit:<8} {as_of}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ioc_pipeline.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize every asset (refresh_all, then the changed dossier months)")
    run_parser.add_argument("--job", default=None, help="run one job instead (refresh_all, dossier_months, ...)")
    sub.add_parser("scorecard", help="print the published scorecard")
    args = parser.parse_args(argv)
    if args.command == "run":
        ok = run(args.job)
        if ok:
            show_scorecard()
        sys.exit(0 if ok else 1)
    show_scorecard()


if __name__ == "__main__":
    main()
