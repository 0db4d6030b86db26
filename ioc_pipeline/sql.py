"""`make sql`: a DuckDB prompt on the analyst's own scratch database, the warehouse attached read-only.

    data/warehouse/scratch/<user>.duckdb   (yours: `create table` lands here and survives every refresh)
        └── ATTACH data/warehouse/ioc.duckdb AS ioc (READ_ONLY)   (select … from ioc.gold.ioc_scorecard)

The published warehouse is replaced by every refresh; a session that opened it in write mode would
lose its tables (or, before the publish guarded it, break the next readers). The scratch file is the
one place an analyst writes. An attached warehouse stays the version it opened (whole, never half
of two refreshes): re-run `make sql`, or `DETACH ioc;` and the ATTACH again, to see a newer one.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import sys

from ioc_pipeline.resources import data_dir, resolved
from ioc_pipeline.warehouse import TIMEZONE

ALIAS = "ioc"


def scratch_path(warehouse: str, user: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(warehouse)), "scratch", f"{user}.duckdb")


def startup(warehouse: str) -> str:
    """The statements the prompt runs first: the warehouse attached read-only, Vietnam time."""
    quoted = "'" + os.path.abspath(warehouse).replace("'", "''") + "'"
    return (
        f"SET autoinstall_known_extensions = false; SET TimeZone = '{TIMEZONE}'; "
        f"ATTACH {quoted} AS {ALIAS} (READ_ONLY);"
    )


def command(warehouse: str, scratch: str, duckdb_cli: str) -> list[str]:
    return [duckdb_cli, scratch, "-cmd", startup(warehouse)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default=getpass.getuser(), help="whose scratch database (default: you)")
    parser.add_argument("sql", nargs="*", help="statements to run instead of a prompt")
    args = parser.parse_args(argv)
    warehouse = resolved("warehouse").path
    if not os.path.exists(warehouse):
        sys.exit(f"no warehouse at {warehouse} yet: run `make run` first (IOC_DATA_DIR={data_dir()})")
    scratch = scratch_path(warehouse, args.user)
    os.makedirs(os.path.dirname(scratch), exist_ok=True)
    cli = shutil.which("duckdb", path=os.path.dirname(sys.executable)) or shutil.which("duckdb")
    if not cli:
        sys.exit("the DuckDB command line is not installed (it comes with `make .venv/.installed`)")
    extra = ["-c", " ".join(args.sql)] if args.sql else []
    print(f"your scratch database: {scratch}; the warehouse is `{ALIAS}` (read-only)", file=sys.stderr)
    os.execv(cli, [*command(warehouse, scratch, cli), *extra])


if __name__ == "__main__":
    main()
