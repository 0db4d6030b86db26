"""`python -m bench.baseline --landing DIR --out DIR [--units CSV] [--feeds a,b]`: the bare-engine baseline.

Runs bench/baseline.sql with DuckDB alone (SQL only, no Python per row) over the landing files,
one section per feed, and prints a JSON line: seconds per section, rows read, rows in silver, and
what the baseline leaves out. The sections write the gold tables as Parquet into `--out`, where the
harness compares them with the pipeline's.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

SQL = Path(__file__).with_name("baseline.sql")
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

# section -> the landing files it needs (the section is skipped when there are none)
INPUTS = {
    "procedures": ["procedures/tthc_*.json"],
    "dossiers": ["public_service/dossiers_*.ndjson"],
}
# what the baseline does not do that the pipeline does: said in every result
LEAVES_OUT = [
    "xlsx snapshots (DuckDB cannot read xlsx offline: its excel extension would be downloaded); "
    "the newest procedure snapshot is JSON",
    "bronze (no copy of every delivered version), quarantine tables and the reasons of refused rows",
    "Great Expectations: the gate's rules are WHERE clauses",
    "the dlt load state (files loaded once by hash) and Dagster's run records and metadata",
    "the HMAC pseudonym (a SHA-256 digest of the normalised citizen ID instead; distinct counts are equal)",
    "unit resolution beyond the official names (exact folded names, common abbreviations, codes, "
    "'commune, district'); no post-2025 crosswalk columns",
    "the analysts' warehouse file (the publish step)",
]


def sections(sql: str) -> dict[str, str]:
    parts = re.split(r"^-- section: (\w+)\s*$", sql, flags=re.MULTILINE)
    return {name: body for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--units", default="", help="units reference CSV (needed by the dossier section)")
    parser.add_argument("--feeds", default=",".join(INPUTS))
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: all cores)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    landing = os.path.abspath(args.landing)
    values = {"landing": landing, "out": os.path.abspath(args.out), "units": os.path.abspath(args.units or "")}
    # when the dossier data left its source: the newest export file's delivery (its modification time), the
    # moment a month that is not over yet is judged at (the pipeline's `public_service.extracted_at`)
    exports = glob.glob(os.path.join(landing, "public_service", "dossiers_*"))
    newest = max((os.stat(f).st_mtime for f in exports), default=time.time())
    values["extracted_at"] = datetime.fromtimestamp(newest, UTC).isoformat()
    wanted = [f for f in args.feeds.split(",") if f]
    config = dict(OFFLINE)
    if args.threads:
        config["threads"] = args.threads
    con = duckdb.connect(":memory:", config=config)
    report: dict = {"sections": {}, "leaves_out": LEAVES_OUT, "duckdb": duckdb.__version__}
    started = time.monotonic()
    for name, body in sections(SQL.read_text(encoding="utf-8")).items():
        if name != "common":
            files = [f for pattern in INPUTS.get(name, []) for f in glob.glob(os.path.join(landing, pattern))]
            if name not in wanted or not files:
                continue
        text = body
        for key, value in values.items():
            text = text.replace("{" + key + "}", value.replace("'", "''"))
        began = time.monotonic()
        con.execute(text)
        report["sections"][name] = {"seconds": round(time.monotonic() - began, 3)}
    counts = {
        "procedures": ("proc_typed", "proc_silver"),
        "dossiers": (None, f"read_parquet('{values['out']}/silver_dossiers.parquet')"),
    }
    for name, (delivered, silver) in counts.items():
        if name in report["sections"]:
            entry = report["sections"][name]
            if delivered:
                entry["rows_in_newest_snapshot"] = con.execute(f"select count(*) from {delivered}").fetchone()[0]
            entry["silver_rows"] = con.execute(f"select count(*) from {silver}").fetchone()[0]
    report["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
