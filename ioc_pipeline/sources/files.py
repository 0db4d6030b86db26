"""Delivered files → Arrow tables → dlt → bronze Parquet, shared by every file feed.

    landing/<feed>/<name>_YYYYMMDD.{json,csv,xlsx,ndjson}
        │ read_delivery: header folding, every value as text, file + row of origin
        ▼
    dlt resource (one Arrow table per file; files already loaded are skipped by content hash)
        ▼
    lake/bronze/<table>/<load_id>.<file_id>.parquet

A file that cannot be read (not UTF-8, not JSON, not xlsx, empty, a required column missing)
raises `DeliveryError` naming the file and the problem; it is not marked as loaded, so a
corrected re-delivery is picked up, and the other files of the feed still load.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import dagster as dg
import dlt
import pyarrow as pa
from dlt.destinations import filesystem

from ioc_pipeline import faults
from ioc_pipeline.lake import FileInfo, Lake, Landing
from ioc_pipeline.parsing import fold_header

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
SNAPSHOT = "_snapshot"
FILE_HASH = "_file_sha256"
LOAD_ID = "_dlt_load_id"
LINEAGE = (SOURCE_FILE, SOURCE_ROW, SNAPSHOT, FILE_HASH)

dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True


class DeliveryError(ValueError):
    """A delivered file the pipeline cannot read at all."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class Feed:
    """A file feed of the landing-zone contract: where its files are and what its headers mean."""

    table: str  # bronze table name
    patterns: tuple[str, ...]  # globs relative to the landing root
    columns: dict[str, str]  # any spelling of a header -> bronze column name
    required: tuple[str, ...] = ()  # bronze columns a file must have
    title_hint: int = 2  # an xlsx header row holds at least this many known headers
    partition_of: Callable[[str], str] | None = None  # file name -> the feed's unit of supersession
    folded: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folded", {fold_header(k): v for k, v in self.columns.items()})

    def column_for(self, header: str) -> str:
        folded = fold_header(header)
        return self.folded.get(folded, folded)


_SNAPSHOT = re.compile(r"_(\d{8}|\d{6})\.[a-z]+$")


def snapshot_of(path: str) -> str:
    """`tthc_20220430.json` -> `2022-04-30`; `dossiers_202201.ndjson` -> `2022-01-01`."""
    found = _SNAPSHOT.search(path.lower())
    if not found:
        raise DeliveryError(path, "the file name carries no snapshot date (…_YYYYMMDD or …_YYYYMM)")
    digits = found.group(1) + ("01" if len(found.group(1)) == 6 else "")
    try:
        return datetime.strptime(digits, "%Y%m%d").date().isoformat()
    except ValueError as error:
        raise DeliveryError(path, f"the snapshot date in the file name is not a date ({error})") from None


def as_text(value: Any) -> str | None:
    """Every delivered value as text, the way a person reads it in the file."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DeliveryError(path, f"not UTF-8 (byte {error.start})") from None


def _records_json(path: str, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        parsed = json.loads(_decode(path, data))
    except json.JSONDecodeError as error:
        raise DeliveryError(path, f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    if not isinstance(parsed, list):
        raise DeliveryError(path, "expected a JSON array of objects")
    for number, item in enumerate(parsed, start=1):
        if not isinstance(item, dict):
            raise DeliveryError(path, f"element {number} is not an object")
        yield number, item


def _records_ndjson(path: str, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(_decode(path, data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DeliveryError(path, f"line {number} is not valid JSON: {error.msg}") from None
        if not isinstance(item, dict):
            raise DeliveryError(path, f"line {number} is not a JSON object")
        yield number, item


def _records_csv(path: str, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    text = _decode(path, data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = row
            continue
        yield reader.line_num, dict(zip(header, row, strict=False))


def _records_xlsx(path: str, data: bytes, feed: Feed) -> Iterator[tuple[int, dict[str, Any]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types for a broken file
        raise DeliveryError(path, f"not a readable .xlsx workbook ({type(error).__name__}: {error})") from None
    try:
        sheet = workbook.worksheets[0]
        header: list[str] | None = None
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [as_text(c) for c in row]
            if not any(c and c.strip() for c in cells):
                continue
            if header is None:
                known = sum(1 for c in cells if c and fold_header(c) in feed.folded)
                if known >= feed.title_hint:
                    header = [c or "" for c in cells]
                continue  # a title or date line above the header
            yield number, dict(zip(header, cells, strict=False))
        if header is None:
            raise DeliveryError(path, "no header row with the feed's column names in the first sheet")
    finally:
        workbook.close()


def read_delivery(landing: Landing, file: FileInfo, feed: Feed) -> pa.Table:
    """One delivered file as an Arrow table of text columns, named as bronze names them."""
    data = landing.read_bytes(file.path)
    if not data.strip():
        raise DeliveryError(file.path, "the file is empty")
    suffix = file.path.rsplit(".", 1)[-1].lower()
    readers = {
        "json": lambda: _records_json(file.path, data),
        "ndjson": lambda: _records_ndjson(file.path, data),
        "csv": lambda: _records_csv(file.path, data),
        "xlsx": lambda: _records_xlsx(file.path, data, feed),
    }
    if suffix not in readers:
        raise DeliveryError(file.path, f"unsupported file type .{suffix}")
    snapshot = snapshot_of(file.path)
    digest = hashlib.sha256(data).hexdigest()
    columns: dict[str, list[str | None]] = {}
    rows: list[int] = []
    for number, record in readers[suffix]():
        for header, value in record.items():
            name = feed.column_for(str(header))
            columns.setdefault(name, [None] * len(rows)).append(as_text(value))
        rows.append(number)
        for values in columns.values():
            if len(values) < len(rows):
                values.append(None)
    if not rows:
        raise DeliveryError(file.path, "the file has no data rows")
    missing = [c for c in feed.required if c not in columns]
    if missing:
        raise DeliveryError(
            file.path,
            f"required column(s) missing: {', '.join(missing)} (found: {', '.join(sorted(columns))})",
        )
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    return (
        table.append_column(SOURCE_FILE, pa.array([file.path] * len(rows), pa.string()))
        .append_column(SOURCE_ROW, pa.array(rows, pa.int64()))
        .append_column(SNAPSHOT, pa.array([snapshot] * len(rows), pa.string()))
        .append_column(FILE_HASH, pa.array([digest] * len(rows), pa.string()))
    )


@dataclass
class IngestReport:
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[DeliveryError] = field(default_factory=list)
    rows: int = 0
    load_ids: list[str] = field(default_factory=list)


Reader = Callable[[Landing, FileInfo, Feed], tuple[str, Iterable[pa.Table]]]


def whole_file(landing: Landing, file: FileInfo, feed: Feed) -> tuple[str, Iterable[pa.Table]]:
    """The default reader: the file as one Arrow table (registers, catalogs: small files)."""
    table = read_delivery(landing, file, feed)
    return table.column(FILE_HASH)[0].as_py(), [table]


def stat_key(file: FileInfo) -> str:
    """What identifies a delivered file without reading it: path, size and modification time. A file
    whose three are unchanged since its digest was taken is not hashed again (a nightly run would
    otherwise read every delivered file, gigabytes, to find the one new export)."""
    return f"{file.path}|{file.size}|{file.modified!r}"


def loaded_before(file: FileInfo) -> bool:
    """Inside a file resource: whether this very file (same path, size and modification time) was
    loaded by an earlier run."""
    state = dlt.current.resource_state()
    return state.get("file_digests", {}).get(stat_key(file)) in state.get("loaded_files", {})


def file_resource(feed: Feed, landing: Landing, report: IngestReport, read: Reader = whole_file) -> Any:
    """A dlt resource yielding the Arrow tables of every new file; a file whose content was loaded
    before (same SHA-256, whatever its name) is skipped; a file seen before with the same path, size and
    modification time is skipped without being read (`stat_key`). `read` returns a file's digest and its
    tables (one, or a stream of batches for large files): nothing is yielded before the digest is
    known, and a reader raises `DeliveryError` before its first table when the file is unreadable."""

    @dlt.resource(name=feed.table, write_disposition="append")
    def delivered() -> Iterator[pa.Table]:
        state = dlt.current.resource_state()
        seen: dict[str, str] = state.setdefault("loaded_files", {})
        digests: dict[str, str] = state.setdefault("file_digests", {})
        for file in landing.matching(feed.patterns):
            if loaded_before(file):  # the very file loaded before, unchanged: not read again
                report.skipped.append(file.path)
                continue
            try:
                digest, tables = read(landing, file, feed)
            except DeliveryError as error:
                report.errors.append(error)
                continue
            digests[stat_key(file)] = digest
            if digest in seen:
                report.skipped.append(file.path)
                continue
            seen[digest] = file.path
            report.loaded.append(file.path)
            for table in tables:
                report.rows += table.num_rows
                yield table

    return delivered


def pipeline(lake: Lake, dlt_dir: str, name: str) -> dlt.Pipeline:
    """The dlt pipeline of one feed: Parquet files in `<lake>/bronze/<table>/`."""
    return dlt.pipeline(
        pipeline_name=f"ioc_{name}",
        pipelines_dir=dlt_dir,
        destination=filesystem(bucket_url=lake.url, layout="{table_name}/{load_id}.{file_id}.{ext}"),
        dataset_name="bronze",
    )


class DiskFullError(dg.Failure):
    """The disk (the lake's or dlt's) filled up during a load: what the load had written was discarded.
    A `Failure`, so that the step's message in the UI and in `cli run` is this one line."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message)


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


def _disk_full(error: BaseException) -> str | None:
    """The disk-full error behind `error`, as one line (dlt wraps the OS error of a failed copy, or keeps
    only its text in a retried job's traceback)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return str(seen)
        lines = [line.strip() for line in str(seen).splitlines() if any(t in line for t in DISK_FULL_TEXTS)]
        if lines:
            return lines[-1]
        seen = seen.__cause__ or seen.__context__
    return None


_LOADED_FILE = re.compile(r"(\d+(?:\.\d+)?)\.[0-9a-zA-Z_]+\.[a-z]+")  # the layout: {load_id}.{file_id}.{ext}


def _load_id(file_name: str) -> str | None:
    """`1796124553.7638469.cf02f76780.parquet` -> `1796124553.7638469`; None for a name dlt did not write."""
    found = _LOADED_FILE.fullmatch(file_name)
    return found.group(1) if found else None


def unfinished_files(lake: Lake, p: dlt.Pipeline, table: str) -> list[str]:
    """Files in bronze of loads that never completed and are not pending in dlt's working folder: a load
    killed mid-copy whose package was lost or discarded. dlt records each completed load in
    `bronze/_dlt_loads/<pipeline>__<load_id>.jsonl`; a reader of bronze must never see the others."""
    root = f"{lake.root}/bronze"
    prefix = f"{p.pipeline_name}__"
    completed = {
        name[len(prefix) : -len(".jsonl")]
        for name in (PurePosixPath(f).name for f in _listing(lake, f"{root}/_dlt_loads"))
        if name.startswith(prefix) and name.endswith(".jsonl")
    }
    keep = completed | set(p.list_normalized_load_packages()) | set(p.list_extracted_load_packages())
    found = [
        f
        for f in _listing(lake, f"{root}/{table}")
        if (load_id := _load_id(PurePosixPath(f).name)) is not None and load_id not in keep
    ]
    found += [
        f
        for f in _listing(lake, f"{root}/_dlt_pipeline_state")
        if PurePosixPath(f).name.startswith(prefix)
        and PurePosixPath(f).name[len(prefix) :].split("__", 1)[0] not in keep
    ]
    return sorted(found)


def _listing(lake: Lake, folder: str) -> list[str]:
    return list(lake.fs.ls(folder, detail=False)) if lake.fs.exists(folder) else []


_EXTRACT_FOLDER = re.compile(r"[0-9a-f]{16}")  # dlt's folder of a package being extracted (uniq_id(8))


def stray_extracts(p: dlt.Pipeline) -> list[Path]:
    """Folders of extractions a killed run left in dlt's working folder (never committed, never loaded:
    dlt creates a new one per run, so each dead run's stays for good)."""
    folder = Path(p.working_dir) / "normalize"
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir() if f.is_dir() and _EXTRACT_FOLDER.fullmatch(f.name))


def discard_unfinished(lake: Lake, p: dlt.Pipeline, table: str) -> list[str]:
    """Abort dlt's pending packages (dlt restores its state as it was before them, so their files are
    not marked loaded) and remove from bronze every file of a load that did not complete."""
    if p.has_pending_data:
        p.abort_packages()
    removed = unfinished_files(lake, p, table)
    for path in removed:
        lake.fs.rm(path)
    return removed


def load(lake: Lake, dlt_dir: str, table: str, resource: Any) -> list[str]:
    """Run dlt for one feed, crash-safe; returns the ids of the loads now in bronze.

    First what a killed run left: `run()` without data syncs the state with the lake and loads the
    packages that were extracted or normalized but not loaded (their rows were taken from the landing
    zone and marked loaded in dlt's state: they must arrive, once); then bronze files of loads that never
    completed (a lost package) are removed. A full disk discards the load whole and says so."""
    p = pipeline(lake, dlt_dir, table)
    try:
        load_ids: list[str] = []
        pending = p.run()
        if pending is not None:
            pending.raise_on_failed_jobs()
            load_ids += pending.loads_ids
        for path in unfinished_files(lake, p, table):
            lake.fs.rm(path)
        for folder in stray_extracts(p):  # the bronze pool's slot: no other extraction of this feed runs
            shutil.rmtree(folder, ignore_errors=True)
        p.extract(resource, loader_file_format="parquet")
        p.normalize()
        faults.point("dlt_load")
        info = p.load()
        info.raise_on_failed_jobs()
        return load_ids + list(info.loads_ids)
    except Exception as error:
        full = _disk_full(error)
        if full is None:
            raise
        try:
            discard_unfinished(lake, p, table)
        except Exception as cleanup:  # noqa: BLE001 - still full: the next run retries the clean-up
            raise DiskFullError(f"disk full while loading {table}: {full}; clean-up not finished ({cleanup})") from None
        raise DiskFullError(
            f"disk full while loading {table}: {full} (the load was discarded: free space and run again)"
        ) from None


def ingest(feed: Feed, landing: Landing, lake: Lake, dlt_dir: str) -> IngestReport:
    report = IngestReport()
    report.load_ids = load(lake, dlt_dir, feed.table, file_resource(feed, landing, report))
    return report
