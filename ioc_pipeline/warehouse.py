"""The analysts' DuckDB file: built aside from the lake's Parquet, then swapped in atomically.

An analyst's read-only connection holds the file it opened; `os.replace` gives new connections
the new file while the old one stays readable, whole, until it is closed. Only the publish step
ever writes a warehouse file, and it writes a fresh one: no two processes share a writer.
"""

from __future__ import annotations

import glob
import os
import uuid

import duckdb

from ioc_pipeline import faults
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc

SCHEMAS = ("silver", "gold", "quarantine", "ops")
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
# Analysts' tools lag behind the engine (the DuckDB CLI on PyPI is 1.5, DBeaver ships older
# drivers): write a storage format they can all open.
STORAGE_COMPATIBILITY = "v1.4.0"
# DuckDB's default is 80 % of the machine's memory: copying the silver tables in would keep pages
# cached up to that. The build streams Parquet into the file, so a modest limit costs nothing and
# keeps the publish step inside the pipeline's memory budget (benchmark target: < 1.5 GB at S=10).
BUILD_MEMORY_LIMIT = "512MB"


def connect(path: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(path, read_only=read_only, config=dict(OFFLINE))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def leftovers(path: str) -> list[str]:
    """Files of builds that never finished (a killed publish): `<path>.<uuid>.building` and its `.wal`."""
    pattern = f"{glob.escape(path)}.*.building"
    return sorted(glob.glob(pattern) + glob.glob(f"{pattern}.wal"))


def build(store: Lake, path: str, docs: dict[str, TableDoc]) -> dict[str, int]:
    """Write every silver, gold and quarantine table of the lake into a new DuckDB file at `path`.

    Files a killed publish left beside `path` are removed first: the publish step holds the
    `warehouse` pool's only slot, so no other build is running and every such file is dead."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for leftover in leftovers(path):
        os.remove(leftover)
    building = f"{path}.{uuid.uuid4().hex}.building"
    counts: dict[str, int] = {}
    try:
        con = duckdb.connect(
            building,
            config={
                **OFFLINE,
                "storage_compatibility_version": STORAGE_COMPATIBILITY,
                "memory_limit": BUILD_MEMORY_LIMIT,
            },
        )
        try:
            if (remote := store.object_store()) is not None:
                con.register_filesystem(remote)  # `read_parquet('s3://…')` through s3fs: no httpfs here
            for schema in SCHEMAS:
                con.execute(f"create schema {schema}")
                for table in store.tables(schema):
                    name = f"{schema}.{table}"
                    con.execute(
                        f"create table {name} as select * from read_parquet("
                        f"{_quote(store.glob(schema, table))}, hive_partitioning = true, union_by_name = true)"
                    )
                    counts[name] = con.execute(f"select count(*) from {name}").fetchall()[0][0]
                    doc = docs.get(name)
                    if doc:
                        con.execute(f"comment on table {name} is {_quote(doc.comment())}")
                        columns = {r[0] for r in con.execute(f"describe {name}").fetchall()}
                        for column in columns:
                            comment = doc.column_comment(column)
                            if comment:
                                con.execute(f'comment on column {name}."{column}" is {_quote(comment)}')
            faults.point("publish")  # the file built aside (and its .wal) exists, not yet swapped in
            con.execute("checkpoint")
        finally:
            con.close()
        os.replace(building, path)
    finally:
        for leftover in (building, f"{building}.wal"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return counts
