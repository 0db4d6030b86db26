"""The analysts' DuckDB file: built aside from the lake's Parquet, then swapped in atomically.

An analyst's read-only connection holds the file it opened; `os.replace` gives new connections
the new file while the old one stays readable, whole, until it is closed. Only the publish step
ever writes a warehouse file, and it writes a fresh one: no two processes share a writer.

A client that opened the published file in write mode (the DuckDB CLI does unless told `-readonly`)
holds a lock on it and keeps its changes in `ioc.duckdb.wal`, which new connections would try to
replay into the new file ("WAL does not match database file"). So the publish
- keeps such a file and its WAL, whole, in `orphaned/<timestamp>/` beside the warehouse (`set_aside`):
  the client's session goes on writing there, and the publish step logs and alerts what it kept;
- leaves `ioc.duckdb.wal` as a symlink that cannot be followed (`guard`): readers see no WAL, and a
  write-mode session fails at its first commit, loudly, instead of writing where nobody will look.
Analysts who want tables of their own use a scratch database that attaches the warehouse read-only
(`make sql`, `ioc_pipeline/sql.py`): their tables live there and survive every refresh.

A publish carries over what did not change: it starts from a copy of the published file and rebuilds only
the tables whose lake files (names, sizes, modification times), documentation or this module's code changed
since that file was built (`ops.warehouse_build.lake_fingerprint`), dropping the tables the lake no longer has;
the copy is then swapped in like a fresh build. A published file a client wrote to (`set_aside`), one built
before fingerprints, or one half free space is not copied: the build starts from an empty file.

Moments are stored in the lake as instants (UTC-based `TIMESTAMP WITH TIME ZONE`); the warehouse
shows them as Vietnam wall-clock time (`TIMESTAMP`, Asia/Ho_Chi_Minh), so every client shows local
time without a `SET TimeZone`. Month partitions (`month=YYYY-MM`) become a `DATE` (first day).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ioc_pipeline import faults, metadata
from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc

SCHEMAS = ("silver", "gold", "quarantine", "ops")
TIMEZONE = "Asia/Ho_Chi_Minh"
LOCAL_TIME = " (giờ Việt Nam / Vietnam time, Asia/Ho_Chi_Minh)"
MONTH_PARTITION = "month"  # the lake's hive partition month=YYYY-MM
SNAPSHOT_COLUMN = "as_of_date"  # gold tables that keep every snapshot get a `<table>_latest` view
ORPHANED = "orphaned"
# where `ioc.duckdb.wal` points: a folder that is never created, named for whoever reads the link
WAL_GUARD = "read-only--use-make-sql-or-duckdb-readonly/ioc.duckdb.wal"
BUILD_TABLE = "ops.warehouse_build"
BUILD_DOC = TableDoc(
    "Lần xuất bản kho dữ liệu này: mã, thời điểm và số dòng mỗi bảng",
    "This warehouse's publication: its id, when, and the rows of each table",
    {
        "build_id": ("Mã lần xuất bản", "publication id (one per warehouse file)"),
        "published_at": ("Thời điểm xuất bản", "published at"),
        "table_name": ("Bảng (lược đồ.bảng)", "table (schema.table)"),
        "row_count": ("Số dòng", "rows of the table in this publication"),
        "lake_fingerprint": (
            "Dấu vân tay của các tệp Parquet, tài liệu và mã tạo bảng (bảng không đổi thì được giữ nguyên)",
            "fingerprint of the table's Parquet files, docs and building code (an unchanged table is carried over)",
        ),
    },
)
# A copied warehouse is rebuilt from empty once this share of it is free space (dropped tables' blocks)
MAX_FREE_SHARE = 0.5
# How a table is presented and documented (this module, the docs' rendering) and stored: part of every fingerprint
_CODE = hashlib.sha256(
    b"".join(Path(m).read_bytes() for m in (__file__, metadata.__file__)) + duckdb.__version__.encode()
).hexdigest()[:16]
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


@dataclass(frozen=True)
class Published:
    """What a publish wrote: the rows of each table, and the tables carried over unchanged."""

    counts: dict[str, int]
    carried: list[str]


def build(
    store: Lake, path: str, docs: dict[str, TableDoc], on_orphan: Callable[[str], None] | None = None
) -> Published:
    """Write every silver, gold and quarantine table of the lake into a new DuckDB file at `path` (the unchanged
    ones carried over from the published file); `on_orphan(folder)` hears where a client's leftover warehouse was
    kept (see `set_aside`).

    Files a killed publish left beside `path` are removed first: the publish step holds the
    `warehouse` pool's only slot, so no other build is running and every such file is dead."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for leftover in leftovers(path):
        os.remove(leftover)
    building = f"{path}.{uuid.uuid4().hex}.building"
    counts: dict[str, int] = {}
    carried: list[str] = []
    try:
        previous = _copy_of_published(path, building)
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
            fingerprints: dict[str, str] = {}
            for schema in SCHEMAS:
                con.execute(f"create schema if not exists {schema}")
                for table in store.tables(schema):
                    name = f"{schema}.{table}"
                    fingerprints[name] = fingerprint(store, schema, table, docs.get(name))
                    if name in previous and previous[name][0] == fingerprints[name]:
                        counts[name] = previous[name][1]
                        carried.append(name)
                        continue
                    con.execute(f"drop view if exists {name}_latest")
                    con.execute(f"drop table if exists {name}")
                    con.execute(
                        f"create view _lake as select * from read_parquet("
                        f"{_quote(store.glob(schema, table))}, hive_partitioning = true, union_by_name = true)"
                    )
                    con.execute(f"create table {name} as {_presented('_lake', con)}")
                    con.execute("drop view _lake")
                    counts[name] = con.execute(f"select count(*) from {name}").fetchall()[0][0]
                    _comment(con, name, docs.get(name))
                    if schema == "gold":
                        _latest_view(con, name, docs.get(name))
            for gone in set(previous) - set(counts):  # tables the lake no longer has
                con.execute(f"drop view if exists {gone}_latest")
                con.execute(f"drop table if exists {gone}")
            _stamp(con, counts, fingerprints)
            faults.point("publish")  # the file built aside (and its .wal) exists, not yet swapped in
            con.execute("checkpoint")
        finally:
            con.close()
        moved = set_aside(path)
        os.replace(building, path)
        guard(path)
        if moved and on_orphan:
            on_orphan(moved)
    finally:
        for leftover in (building, f"{building}.wal"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return Published(counts, sorted(carried))


def fingerprint(store: Lake, schema: str, table: str, doc: TableDoc | None) -> str:
    """What a table of the warehouse is built from: its lake files (`Lake.fingerprints`), its docs and this
    module's code (how it is presented). Equal fingerprints, equal tables."""
    text = json.dumps([_CODE, sorted(store.fingerprints(schema, table).items()), repr(doc)])
    return hashlib.sha256(text.encode()).hexdigest()


def _copy_of_published(path: str, building: str) -> dict[str, tuple[str, int]]:
    """Copy the published file to `building` and return its tables' (fingerprint, rows); nothing (and no copy)
    when it cannot be the start of the next one: absent, written to by a client, built before fingerprints, or
    mostly free space."""
    if not os.path.isfile(path) or _real_wal(path) or _write_locked(path):
        return {}
    shutil.copyfile(path, building)
    try:
        with connect(building, read_only=True) as con:
            columns = {r[0] for r in con.execute(f"describe {BUILD_TABLE}").fetchall()}
            blocks = con.execute("select total_blocks, free_blocks from pragma_database_size()").fetchone()
            if "lake_fingerprint" in columns and blocks and blocks[1] <= MAX_FREE_SHARE * blocks[0]:
                rows = con.execute(f"select table_name, lake_fingerprint, row_count from {BUILD_TABLE}").fetchall()
                return {name: (mark, count) for name, mark, count in rows}
    except duckdb.Error:
        pass  # not a warehouse of ours (damaged, another format): start from empty
    os.remove(building)
    return {}


def _presented(source: str, con: duckdb.DuckDBPyConnection) -> str:
    """The select that shows a lake table to analysts: instants as Vietnam wall-clock time, the month
    partition as a DATE; every other column as it is."""
    changed = []
    for column, kind, *_ in con.execute(f"describe {source}").fetchall():
        if kind == "TIMESTAMP WITH TIME ZONE":
            changed.append(f'timezone(\'{TIMEZONE}\', "{column}") as "{column}"')
        elif column == MONTH_PARTITION and kind == "VARCHAR":
            changed.append(f'strptime("{column}", \'%Y-%m\')::date as "{column}"')
    return f"select * replace ({', '.join(changed)}) from {source}" if changed else f"select * from {source}"


def _comment(con: duckdb.DuckDBPyConnection, name: str, doc: TableDoc | None) -> None:
    if not doc:
        return
    con.execute(f"comment on table {name} is {_quote(doc.comment())}")
    for column, kind, *_ in con.execute(f"describe {name}").fetchall():
        comment = doc.column_comment(column)
        if comment and kind == "TIMESTAMP":  # an instant of the lake, shown as Vietnam time (`_presented`)
            comment = comment.replace(" (UTC)", "").replace(" (Asia/Ho_Chi_Minh)", "") + LOCAL_TIME
        if comment:
            con.execute(f'comment on column {name}."{column}" is {_quote(comment)}')


def _latest_view(con: duckdb.DuckDBPyConnection, name: str, doc: TableDoc | None) -> None:
    """`<table>_latest`: the newest snapshot of a gold table that keeps every snapshot (by `as_of_date`; the
    scorecard's per indicator), for the common question; the table itself answers trend questions."""
    columns = [r[0] for r in con.execute(f"describe {name}").fetchall()]
    if SNAPSHOT_COLUMN not in columns:
        return
    # newest per indicator (the scorecard), and per former province and scope (provinces.py) where present
    keys = [c for c in ("province_code", "province_scope", "indicator_code") if c in columns]
    per = f"partition by {', '.join(keys)}" if keys else ""
    view = f"{name}_latest"
    con.execute(
        f"create view {view} as select * from {name} qualify {SNAPSHOT_COLUMN} = max({SNAPSHOT_COLUMN}) over ({per})"
    )
    if doc:
        newest = (
            ("bản mới nhất mỗi chỉ số", "newest per indicator")
            if "indicator_code" in columns
            else ("bản chốt mới nhất", "newest snapshot")
        )
        latest = TableDoc(f"{doc.vi} ({newest[0]})", f"{doc.en} ({newest[1]})", doc.columns, doc.other)
        con.execute(f"comment on view {view} is {_quote(latest.comment())}")
        for column in columns:
            comment = latest.column_comment(column)
            if comment:
                con.execute(f'comment on column {view}."{column}" is {_quote(comment)}')


def _stamp(con: duckdb.DuckDBPyConnection, counts: dict[str, int], fingerprints: dict[str, str]) -> None:
    """`ops.warehouse_build`: which publication a reader sees, and what it holds (compare in one query)."""
    build_id = uuid.uuid4().hex
    con.execute(f"drop table if exists {BUILD_TABLE}")
    con.execute(
        f"create table {BUILD_TABLE} (build_id varchar, published_at timestamp, table_name varchar, row_count bigint, "
        "lake_fingerprint varchar)"
    )
    now = datetime.now(UTC)
    con.executemany(
        f"insert into {BUILD_TABLE} values (?, timezone('{TIMEZONE}', ?::timestamptz), ?, ?, ?)",
        [(build_id, now, name, count, fingerprints.get(name)) for name, count in sorted(counts.items())],
    )
    _comment(con, BUILD_TABLE, BUILD_DOC)


def _write_locked(path: str) -> bool:
    """True when another process holds the file in write mode (a read-only open is refused)."""
    try:
        connect(path, read_only=True).close()
    except duckdb.Error as error:
        # any other failure (a damaged file) is no client's work: the new warehouse replaces it
        return "lock" in str(error).lower()
    return False


def _real_wal(path: str) -> str | None:
    wal = f"{path}.wal"
    return wal if os.path.isfile(wal) and not os.path.islink(wal) else None


def set_aside(path: str) -> str | None:
    """Keep what a client wrote to the published file: when it has a WAL or is held in write mode, hard-link
    the file and its WAL into `orphaned/<timestamp>/` (the client's session writes on there) and remove the
    WAL from beside the warehouse. Returns that folder, or None when the file is clean. The file's name
    stays in place until `os.replace`, so a reader never finds the warehouse missing."""
    wal = _real_wal(path)
    if not os.path.exists(path) or not (wal or _write_locked(path)):
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = os.path.join(os.path.dirname(os.path.abspath(path)), ORPHANED, stamp)
    os.makedirs(folder, exist_ok=True)
    if wal:
        os.link(wal, os.path.join(folder, os.path.basename(wal)))
        os.remove(wal)
        guard(path)
    os.link(path, os.path.join(folder, os.path.basename(path)))
    return folder


def guard(path: str) -> None:
    """Make the published file read-only for every client: `ioc.duckdb.wal` is a symlink to a path that
    cannot exist, so readers find no WAL to replay while a write-mode session fails at its first commit
    ("Cannot open file …ioc.duckdb.wal") instead of leaving a WAL the next warehouse would not match."""
    wal = f"{path}.wal"
    if os.path.islink(wal) and os.readlink(wal) == WAL_GUARD:
        return
    if os.path.lexists(wal) and not os.path.islink(wal):
        return  # a real WAL: `set_aside` keeps it first
    if os.path.islink(wal):
        os.remove(wal)
    os.symlink(WAL_GUARD, wal)
