"""`python -m bench.api_path --url URL --token T --work DIR`: dossier versions per second through the
dossier source (gateway pages → polars → pseudonym → dlt → bronze Parquet), as the bronze asset calls it.

Prints one JSON line; the time excludes the interpreter's start and imports (the harness measures the
process as a whole too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

# before the clock starts (the figure excludes imports): the source imports them at its first load, not with the code
import dlt  # noqa: F401
import requests  # noqa: F401

from ioc_pipeline.lake import Lake, Landing
from ioc_pipeline.pii import resolve_key
from ioc_pipeline.sources import dossiers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_path")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--key", default="bench-pseudonym-key-not-secret-0001")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    (args.work / "landing").mkdir(parents=True)
    lake = Lake(str(args.work / "lake"))
    gateway = dossiers.Gateway(url=args.url, token=args.token, page_size=args.page_size)
    started = time.monotonic()
    loaded = dossiers.ingest(
        lake, str(args.work / "dlt"), Landing(str(args.work / "landing")), resolve_key(args.key, "production"), gateway
    )
    seconds = time.monotonic() - started
    stats = loaded.gateway
    versions = stats.rows if stats else 0
    print(
        json.dumps(
            {
                "versions": versions,
                "rows_in_bronze": loaded.report.rows,
                "seconds": round(seconds, 3),
                "versions_per_second": round(versions / seconds) if seconds else None,
                "pages": stats.pages if stats else 0,
                "requests": stats.requests if stats else 0,
                "retries": stats.retries if stats else 0,
                "page_size": args.page_size,
                "months": loaded.months,
            }
        )
    )


if __name__ == "__main__":
    main()
