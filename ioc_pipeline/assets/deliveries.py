"""What a bronze step reports about the delivered files: fates, refusals, row accounting, two checks.

    ingest report ──► log (one line per file) ──► ops/landing_files (the feed's rows replaced)
                  └─► files refused for the first time ──► ops/refused_files + one alert each (kind file_refused)
                  └─► checks on the bronze asset (non-blocking, ERROR):
                        delivered_files_readable   fails while a newest delivery of the feed is refused
                        delivered_rows_accounted   fails when a loaded file's rows in bronze differ from its rows read

A refused file no longer fails the step: the other files load, the step succeeds, and the check shows the
refusal red in the UI until the department delivers a file that can be read.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ioc_pipeline import provinces
from ioc_pipeline.alerts import Alert, raise_alert
from ioc_pipeline.lake import Lake
from ioc_pipeline.sources.fates import FileFate, record_fates, record_refused
from ioc_pipeline.sources.files import Feed, IngestReport, account, snapshot_of

READABLE_CHECK = "delivered_files_readable"
ROWS_CHECK = "delivered_rows_accounted"


def check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            READABLE_CHECK,
            asset=key,
            blocking=False,
            description="The newest delivered file of the feed (of each carrier / month) could be read; "
            "fails while it is refused (the reason is in ops.refused_files and the check's metadata).",
        ),
        dg.AssetCheckSpec(
            ROWS_CHECK,
            asset=key,
            blocking=False,
            description="Every file loaded by the run has as many rows in bronze as were read from it.",
        ),
    ]


def _unit(feed: Feed, path: str) -> tuple[str, str]:
    """What a newer file supersedes within: the former province, and the feed's own unit (carrier, month)."""
    return provinces.of_path(path), feed.partition_of(path) if feed.partition_of else ""


def _order(fate: FileFate) -> tuple[str, float]:
    try:
        snapshot = snapshot_of(fate.path)
    except ValueError:
        snapshot = "9999-99-99"  # no date in its name: nothing newer can supersede it
    return snapshot, fate.modified


def newest_refused(feed: Feed, fates: list[FileFate]) -> list[FileFate]:
    """Refused files that are the newest delivery of their unit (the feed, a carrier, a month): what the
    feed's published data now lacks. An older refused file superseded by a newer readable one is not."""
    newest: dict[tuple[str, str], FileFate] = {}
    for fate in fates:
        if fate.fate in ("loaded", "already_loaded", "refused"):
            unit = _unit(feed, fate.path)
            if unit not in newest or _order(fate) > _order(newest[unit]):
                newest[unit] = fate
    return sorted((f for f in newest.values() if f.fate == "refused"), key=lambda f: f.path)


def report_deliveries(
    context: dg.AssetExecutionContext,
    store: Lake,
    feed: Feed,
    report: IngestReport,
    webhook_url: str | None,
    province: str | None = None,
) -> tuple[dict[str, Any], list[dg.AssetCheckResult]]:
    """Log, record and check what the run did with every file of the feed (of former province `province`'s lake
    partition, when its step loads it alone); returns metadata and checks."""
    in_bronze = account(store, feed.table, report)
    fates = sorted(report.fates, key=lambda f: f.path)
    for fate in fates:
        log = context.log.warning if fate.fate in ("refused", "deferred", "ignored") else context.log.info
        log(fate.line())
    record_fates(store, feed.table, fates, province=province)
    new = record_refused(store, feed.table, fates, context.run_id, province)
    for fate in new:
        alert = Alert(  # one per refused file and content: `ops/alerts` keeps one row per alert id
            kind="file_refused",
            job_name=context.run.job_name,
            run_id=context.run_id,
            message=f"{feed.table}: {fate.path} refused: {fate.reason} / {fate.reason_vi}",
            subject=f"{fate.path}@{(fate.sha256 or '')[:16]}",
        )
        raise_alert(store, alert, webhook_url)
    key = dg.AssetKey(["bronze", feed.table])
    blocking = newest_refused(feed, fates)
    readable = dg.AssetCheckResult(
        asset_key=key,
        check_name=READABLE_CHECK,
        passed=not blocking,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "; ".join(f"{f.path}: {f.reason}" for f in blocking)
            if blocking
            else "the newest delivered file(s) of the feed were read"
        ),
        metadata={"refused_newest": [f.path for f in blocking], "refused_files": _refused(fates)},
    )
    mismatched = {p: (report.rows_read.get(p), in_bronze.get(p)) for p in report.loaded}
    mismatched = {p: rows for p, rows in mismatched.items() if rows[0] != rows[1]}
    accounted = dg.AssetCheckResult(
        asset_key=key,
        check_name=ROWS_CHECK,
        passed=not mismatched,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "; ".join(f"{p}: {read} rows read, {bronze} in bronze" for p, (read, bronze) in mismatched.items())
            if mismatched
            else f"{len(report.loaded)} file(s) loaded, every row read is in bronze"
        ),
        metadata={"rows_by_file": in_bronze},
    )
    metadata = {
        "files_loaded": report.loaded,
        "files_skipped_already_loaded": report.skipped,
        "files_refused": _refused(fates),
        "files_deferred": {f.path: f.reason or "" for f in fates if f.fate == "deferred"},
        "files_ignored": {f.path: f.reason or "" for f in fates if f.fate == "ignored"},
        "rows_by_file": in_bronze,
        "encodings": report.encodings,
    }
    return metadata, [readable, accounted]


def _refused(fates: list[FileFate]) -> dict[str, str]:
    return {f.path: f.reason or "" for f in fates if f.fate == "refused"}
