"""Every file access of the lake and the landing zone goes through here.

    landing zone (delivered files) ──► bronze ──► silver ──► gold
                                              └─► quarantine
    the pipeline's own operation (alerts) ──► ops
    gold, via the warehouse ──► report (self-contained HTML pages, not tables)

A table is a folder `<root>/<layer>/<table>/`, holding either one `data.parquet` or one
`<partition>/data.parquet` per partition (hive style, `month=2022-01`). Writes are atomic:
a local file is written beside its target and renamed over it, an object store put is atomic
by itself. The root is a local folder or an `s3://bucket/prefix` URL (s3fs; endpoint and credentials from
the standard AWS variables), which is why nothing else in the project opens lake paths directly.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

LAYERS = ("bronze", "silver", "gold", "quarantine", "ops", "report")
DATA_FILE = "data.parquet"


def _filesystem(root: str) -> tuple[fsspec.AbstractFileSystem, str]:
    if "://" not in root:
        root = os.path.abspath(root)
    fs, path = fsspec.core.url_to_fs(root)
    return fs, path.rstrip("/")


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


@dataclass(frozen=True)
class FileInfo:
    """A delivered file as the landing zone lists it."""

    path: str  # relative to the landing root, `/`-separated
    size: int
    modified: float
    link: bool = False  # a symbolic link (local landing zones only)


class Lake:
    """Parquet tables of the lake, addressed by layer and table name."""

    def __init__(self, root: str) -> None:
        self.fs, self.root = _filesystem(root)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.protocol = "" if _is_local(self.fs) else f"{protocols[0]}://"  # a filesystem may name one, not a tuple

    @property
    def url(self) -> str:
        """The root as other engines (dlt, DuckDB, polars) take it."""
        return f"{self.protocol}{self.root}"

    def object_store(self) -> fsspec.AbstractFileSystem | None:
        """The lake's fsspec filesystem when it is not a local folder, for engines that cannot reach object
        storage by themselves: DuckDB here cannot load httpfs, so it reads `s3://…` through this one."""
        return None if _is_local(self.fs) else self.fs

    def table_url(self, layer: str, table: str) -> str:
        assert layer in LAYERS, layer
        return f"{self.url}/{layer}/{table}"

    def glob(self, layer: str, table: str) -> str:
        """A glob of every Parquet file of a table, for `read_parquet` / `scan_parquet`."""
        return f"{self.table_url(layer, table)}/**/*.parquet"

    def exists(self, layer: str, table: str) -> bool:
        return bool(self.fs.glob(f"{self.root}/{layer}/{table}/**/*.parquet"))

    def tables(self, layer: str) -> list[str]:
        base = f"{self.root}/{layer}"
        if not self.fs.exists(base):
            return []
        names = [PurePosixPath(p).name for p in self.fs.ls(base, detail=False)]
        return sorted(n for n in names if not n.startswith(("_", ".")) and self.exists(layer, n))

    def partitions(self, layer: str, table: str) -> list[str]:
        base = f"{self.root}/{layer}/{table}"
        if not self.fs.exists(base):
            return []
        return sorted(PurePosixPath(p).name for p in self.fs.ls(base, detail=False) if "=" in PurePosixPath(p).name)

    def write(
        self,
        data: pl.DataFrame | pa.Table,
        layer: str,
        table: str,
        partition: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Replace a table (or one partition of it) atomically; returns the file's URL. `metadata`: key-value
        pairs stored in the Parquet file itself (written, and replaced, with the data)."""
        arrow = data.to_arrow() if isinstance(data, pl.DataFrame) else data
        if metadata:
            arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **metadata})
        folder = f"{self.root}/{layer}/{table}" + (f"/{partition}" if partition else "")
        target = f"{folder}/{DATA_FILE}"
        self.fs.makedirs(folder, exist_ok=True)
        if _is_local(self.fs):
            temporary = f"{folder}/.{DATA_FILE}.{uuid.uuid4().hex}.tmp"
            try:
                pq.write_table(arrow, temporary, compression="zstd")
                os.replace(temporary, target)
            finally:
                if os.path.exists(temporary):
                    os.remove(temporary)
        else:
            buffer = io.BytesIO()
            pq.write_table(arrow, buffer, compression="zstd")
            self.fs.pipe_file(target, buffer.getvalue())
        return f"{self.protocol}{target}"

    def url_of(self, relative_path: str) -> str:
        """The URL (a local path, or `s3://…`) of a file of the lake given by its `/`-separated path."""
        return f"{self.protocol}{self.root}/{relative_path.strip('/')}"

    def local_path(self, relative_path: str) -> str | None:
        """The OS path of a file of the lake when the lake is local (to serve it or link to it)."""
        return f"{self.root}/{relative_path.strip('/')}" if _is_local(self.fs) else None

    def write_bytes(self, relative_path: str, data: bytes) -> str:
        """Write one non-Parquet file (a report page) atomically, replacing it; returns its URL.

        Only the layers of LAYERS are writable, so a page never lands among the landing files."""
        relative = relative_path.strip("/")
        assert relative.split("/", 1)[0] in LAYERS and ".." not in relative.split("/"), relative_path
        target = f"{self.root}/{relative}"
        folder = target.rsplit("/", 1)[0]
        self.fs.makedirs(folder, exist_ok=True)
        if _is_local(self.fs):
            temporary = f"{folder}/.{target.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
            try:
                with open(temporary, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, target)
            finally:
                if os.path.exists(temporary):
                    os.remove(temporary)
        else:
            self.fs.pipe_file(target, data)
        return f"{self.protocol}{target}"

    def read_bytes(self, relative_path: str) -> bytes:
        return self.fs.cat_file(f"{self.root}/{relative_path.strip('/')}")

    def scan(self, layer: str, table: str) -> pl.LazyFrame:
        """The table over all its files, with the union of their columns: a file that lacks a column reads
        it as nulls, a file with an extra one (a delivery with an unknown column, kept in bronze) adds it.
        The union comes from the Parquet footers only; the scan stays lazy."""
        files = self.files(layer, table)
        schema: dict[str, pl.DataType] = {}
        conflict = False
        for file in files:
            for name, dtype in pl.read_parquet_schema(f"{self.protocol}{file}").items():
                known = schema.setdefault(name, dtype)
                conflict = conflict or known != dtype
        if conflict:  # rare: a column typed differently in two files; let polars find the common type
            return pl.concat(
                [pl.scan_parquet(f"{self.protocol}{f}", hive_partitioning=True) for f in files], how="diagonal_relaxed"
            )
        return pl.scan_parquet(
            self.glob(layer, table), hive_partitioning=True, missing_columns="insert", schema=schema or None
        )

    def files(self, layer: str, table: str) -> list[str]:
        """The table's Parquet files (fsspec paths), hidden and temporary files left out."""
        return sorted(self._listing(layer, table))

    def _listing(self, layer: str, table: str) -> dict[str, dict]:
        """`files`, each with what the listing says of it (size, modification time, ETag): one listing, no stat."""
        found = self.fs.glob(f"{self.root}/{layer}/{table}/**/*.parquet", detail=True)
        return {f: info for f, info in found.items() if not PurePosixPath(f).name.startswith((".", "_"))}

    def file_metadata(self, layer: str, table: str) -> dict[str, str]:
        """The key-value metadata `write(metadata=...)` stored in an unpartitioned table's file ({} without)."""
        target = f"{self.root}/{layer}/{table}/{DATA_FILE}"
        if not self.fs.exists(target):
            return {}
        with self.fs.open(target) as handle:
            stored = pq.read_schema(handle).metadata or {}
        return {k.decode(): v.decode() for k, v in stored.items() if not k.startswith(b"ARROW")}

    def fingerprints(self, layer: str, table: str) -> dict[str, str]:
        """A fingerprint of each partition of a table (its first-level `key=value` folder; "" for the files outside
        any): its files' names, sizes and modification times (and object stores' content hashes). A partition
        rewritten gets a new one; a lake copied elsewhere keeps them (names are relative to the table)."""
        files: dict[str, list[tuple]] = {}
        prefix = f"{self.root}/{layer}/{table}/"
        for path, info in self._listing(layer, table).items():
            relative = path.removeprefix(prefix)
            head = relative.split("/", 1)[0]
            stamp = (relative, info.get("size"), str(info.get("mtime") or info.get("LastModified")), info.get("ETag"))
            files.setdefault(head if "=" in head and "/" in relative else "", []).append(stamp)
        return {part: hashlib.sha256(repr(sorted(stamps)).encode()).hexdigest()[:32] for part, stamps in files.items()}

    def read(self, layer: str, table: str) -> pl.DataFrame:
        return self.scan(layer, table).collect()

    def read_partition(self, layer: str, table: str, partition: str) -> pl.DataFrame | None:
        target = f"{self.root}/{layer}/{table}/{partition}/{DATA_FILE}"
        if not self.fs.exists(target):
            return None
        return pl.read_parquet(f"{self.protocol}{target}")

    def delete_partition(self, layer: str, table: str, partition: str) -> None:
        folder = f"{self.root}/{layer}/{table}/{partition}"
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    def row_count(self, layer: str, table: str, partition: str | None = None) -> int:
        """Rows of a table, or of one partition of it (read from the Parquet footers)."""
        if partition is not None:
            target = f"{self.root}/{layer}/{table}/{partition}/{DATA_FILE}"
            if not self.fs.exists(target):
                return 0
            with self.fs.open(target) as handle:
                return pq.ParquetFile(handle).metadata.num_rows
        if not self.exists(layer, table):
            return 0
        return self.scan(layer, table).select(pl.len()).collect().item()


class Landing:
    """The landing zone: read-only for the pipeline (raw data is never deleted or rewritten)."""

    def __init__(self, root: str) -> None:
        self.fs, self.root = _filesystem(root)

    def files(self, pattern: str) -> list[FileInfo]:
        """Files matching a glob relative to the root (`telecom/bts/*.csv`), oldest name first."""
        found: list[FileInfo] = []
        for path, info in self.fs.glob(f"{self.root}/{pattern}", detail=True).items():
            if info.get("type") != "file":
                continue
            relative = path[len(self.root) + 1 :]
            found.append(FileInfo(relative, int(info.get("size") or 0), _modified(info)))
        return sorted(found, key=lambda f: f.path)

    def matching(self, patterns: tuple[str, ...]) -> list[FileInfo]:
        """Files matching any of the globs, the name compared case-insensitively (`…_20220531.CSV`)."""
        folders = sorted({posixpath.dirname(p) for p in patterns})
        files = {f.path: f for folder in folders for f in self.listing(folder) if matches(f.path, patterns)}
        return [files[p] for p in sorted(files)]

    def listing(self, folder: str) -> list[FileInfo]:
        """Every file under `folder` (relative to the root), subfolders included, links marked, by path."""
        base = f"{self.root}/{folder}".rstrip("/")
        if not self.fs.isdir(base):
            return []
        found = []
        for path, info in self.fs.find(base, detail=True, withdirs=False).items():
            relative = path[len(self.root) + 1 :]
            link = bool(info.get("islink"))
            if info.get("type") != "file" and not link:
                continue
            found.append(FileInfo(relative, int(info.get("size") or 0), _modified(info), link))
        return sorted(found, key=lambda f: f.path)

    def stat(self, path: str) -> FileInfo:
        """The file as it is now (to see whether it changed while it was read)."""
        info = self.fs.info(f"{self.root}/{path}")
        return FileInfo(path, int(info.get("size") or 0), _modified(info), bool(info.get("islink")))

    def read_bytes(self, path: str) -> bytes:
        return self.fs.cat_file(f"{self.root}/{path}")

    def open(self, path: str) -> io.BufferedReader:
        return self.fs.open(f"{self.root}/{path}", "rb")

    def local_path(self, path: str) -> str | None:
        """The OS path of a delivered file when the landing zone is local (some readers want one)."""
        return f"{self.root}/{path}" if _is_local(self.fs) else None

    def iter_lines(self, path: str) -> Iterator[bytes]:
        with self.open(path) as handle:
            yield from handle


def _modified(info: dict) -> float:
    stamp = info.get("mtime") or info.get("LastModified") or 0
    return stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether `path` matches a glob of the same folder (not a subfolder), the name compared case-insensitively
    (extensions arrive as `.CSV` too)."""
    folder, name = posixpath.split(path.lower())
    return any(
        folder == posixpath.dirname(pattern.lower()) and fnmatch.fnmatchcase(name, posixpath.basename(pattern.lower()))
        for pattern in patterns
    )
