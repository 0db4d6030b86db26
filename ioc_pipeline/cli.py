"""`python -m ioc_pipeline.cli run`: materialize everything through Dagster, as `make run` does.

The run is recorded in the Dagster instance of `DAGSTER_HOME`, so it shows in the UI like any
other; the command exits non-zero when a step failed or a blocking check stopped the refresh.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

import dagster as dg

from ioc_pipeline.automation import recent_range_tags
from ioc_pipeline.definitions import build_defs
from ioc_pipeline.resources import resources
from ioc_pipeline.warehouse import connect


def run(job_name: str = "refresh_all") -> bool:
    defs = build_defs()
    started = time.monotonic()
    job = defs.resolve_job_def(job_name)
    tags = recent_range_tags(job, datetime.now(UTC))  # monthly-partitioned assets: this and last month
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    elapsed = time.monotonic() - started
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            print(f"FAILED {event.step_key}: {event.event_specific_data.error.message.strip()}", file=sys.stderr)
    print(f"run {result.run_id} {'succeeded' if result.success else 'FAILED'} in {elapsed:.1f} s")
    return result.success


def show_scorecard() -> None:
    path = resources()["warehouse"].path
    if not isinstance(path, str):
        path = path.get_value()
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "select indicator_code, round(value, 2), unit, as_of_date from gold.ioc_scorecard "
            "qualify row_number() over (partition by indicator_code order by as_of_date desc) = 1 "
            "order by indicator_code"
        ).fetchall()
    print(f"\ngold.ioc_scorecard in {path} (latest value of each indicator):")
    for code, value, unit, as_of in rows:
        print(f"  {code:<32} {value:>14,.2f} {unit:<8} {as_of}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ioc_pipeline.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize every asset (job refresh_all)")
    run_parser.add_argument("--job", default="refresh_all")
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
