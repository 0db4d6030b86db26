"""Delivered files → Arrow tables → dlt → bronze Parquet, shared by every file feed.

    landing/<feed folder>/*            every file gets one fate (sources/fates.py): loaded, already_loaded,
        │ survey                       refused, ignored (temporary, link, no pattern), deferred (still changing)
        │ read_delivery: encoding detected, header folding, every value as text, file + row of origin
        ▼
    dlt resource (one Arrow table per file; files already loaded are skipped by content hash)
        ▼
    lake/bronze/<table>/<load_id>.<file_id>.parquet

A file that cannot be read (undecodable, not JSON, not xlsx, empty, a CSV whose records do not account for
its lines, a header that is ambiguous or lacks a required column, `.xls`) is refused: `DeliveryError` names
the file and the problem in English and Vietnamese, nothing of it reaches bronze, and the other files of the
feed still load. Refused files are recorded once (path + content hash) and skipped by later runs until new
content arrives. A file younger than the settle interval, or one that changed while it was read, is deferred
to a later run (it is probably still being written).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import errno
import hashlib
import io
import json
import posixpath
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa

from ioc_pipeline import faults
from ioc_pipeline.lake import FileInfo, Lake, Landing, matches
from ioc_pipeline.parsing import fold_header
from ioc_pipeline.sources.fates import FileFate, refused_earlier

if TYPE_CHECKING:
    import dlt

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
SNAPSHOT = "_snapshot"
FILE_HASH = "_file_sha256"
LOAD_ID = "_dlt_load_id"
LINEAGE = (SOURCE_FILE, SOURCE_ROW, SNAPSHOT, FILE_HASH)
EXTRA_CELLS = "extra_cells"  # cells of a CSV row beyond its header, kept rather than dropped
# Names that editors, copy tools and browsers give a file while it is still being written, and lock files.
TEMPORARY_NAMES = ("*.tmp", "*.temp", "*.part", "*.partial", "*.crdownload", "*.filepart", "*.swp", "~$*", ".*")
SETTLE_SECONDS = 2.0  # a file modified more recently than this is left to a later run
DETECT_BYTES = 256 * 1024  # what the encoding detector looks at
MAX_RECORD_LINES = 10  # a CSV record spanning more lines than this has swallowed rows (an unclosed quote)


class DeliveryError(ValueError):
    """A delivered file the pipeline cannot read at all; `problem_vi` tells the department in Vietnamese."""

    def __init__(self, path: str, problem: str, problem_vi: str | None = None) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.problem_vi = problem_vi or problem


def is_temporary(path: str) -> bool:
    """A name that a file still being written carries (`x.csv.part`, `~$x.xlsx`, `.x.csv.a1b2`)."""
    name = posixpath.basename(path)
    return any(fnmatch(name, pattern) for pattern in TEMPORARY_NAMES)


@dataclass(frozen=True)
class Feed:
    """A file feed of the landing-zone contract: where its files are and what its headers mean."""

    table: str  # bronze table name
    patterns: tuple[str, ...]  # globs relative to the landing root (the name matched case-insensitively)
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

    @property
    def folders(self) -> tuple[str, ...]:
        """The landing folders the feed's files are delivered to (the directory part of its patterns)."""
        return tuple(sorted({posixpath.dirname(p) for p in self.patterns}))

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(sorted({p.rsplit(".", 1)[-1].lower() for p in self.patterns}))

    def under(self, prefix: str) -> Feed:
        """The same feed delivered under `<landing>/<prefix>/` (a former province's folder; '' = the root)."""
        if not prefix:
            return self
        return dataclasses.replace(self, patterns=tuple(f"{prefix}/{p}" for p in self.patterns))

    def named_like(self, path: str) -> bool:
        """Named as one of the feed's deliveries (`enterprises_20220531.xls`) whatever the extension."""
        stems = tuple(p.rsplit(".", 1)[0] + ".*" for p in self.patterns)
        return matches(path, stems) and bool(_SNAPSHOT.search(path.lower()))


# The contract's feeds, registered by their source modules: a folder shared by two feeds (postal) gives each
# file to the feed it is named for.
CONTRACT_FEEDS: dict[str, Feed] = {}


def contract_feed(feed: Feed) -> Feed:
    CONTRACT_FEEDS[feed.table] = feed
    return feed


_SNAPSHOT = re.compile(r"_(\d{8}|\d{6})\.[a-z0-9]+$")


def snapshot_of(path: str) -> str:
    """`tthc_20220430.json` -> `2022-04-30`; `dossiers_202201.ndjson` -> `2022-01-01`."""
    found = _SNAPSHOT.search(path.lower())
    if not found:
        raise DeliveryError(
            path,
            "the file name carries no snapshot date (…_YYYYMMDD or …_YYYYMM)",
            "tên tệp không có ngày chốt dữ liệu (…_YYYYMMDD hoặc …_YYYYMM)",
        )
    digits = found.group(1) + ("01" if len(found.group(1)) == 6 else "")
    try:
        return datetime.strptime(digits, "%Y%m%d").date().isoformat()
    except ValueError as error:
        raise DeliveryError(
            path,
            f"the snapshot date in the file name is not a date ({error})",
            "ngày chốt dữ liệu trong tên tệp không phải ngày hợp lệ",
        ) from None


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


# --------------------------------------------------------------------------------------------------
# encodings
# --------------------------------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def detect_encoding(sample: bytes) -> str | None:
    """The encoding of a delivered text file from its first bytes: a BOM, else UTF-8 when the bytes are valid
    UTF-8 (preferred), else charset-normalizer's best guess (UTF-16 without BOM, Windows-1258/1252, …)."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(sample) - 4 and len(sample) >= DETECT_BYTES:
            return "utf-8"  # a character cut by the end of the sample
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    return codecs.lookup(best.encoding).name if best is not None else None


def decode(path: str, data: bytes) -> tuple[str, str]:
    """A delivered text file as text, and the encoding it was read with."""
    encoding = detect_encoding(data[:DETECT_BYTES])
    if encoding is None:
        raise DeliveryError(
            path,
            "the character encoding could not be recognised (save the file as UTF-8)",
            "không nhận ra bảng mã ký tự của tệp (hãy lưu tệp dưới dạng UTF-8)",
        )
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as error:
        raise DeliveryError(
            path,
            f"not readable as {encoding} (byte {error.start}; save the file as UTF-8)",
            f"không đọc được theo bảng mã {encoding} (byte {error.start}; hãy lưu tệp dưới dạng UTF-8)",
        ) from None


# --------------------------------------------------------------------------------------------------
# readers: records of a file, with the line (or element) each starts on
# --------------------------------------------------------------------------------------------------


def _check_header(path: str, header: list[str], feed: Feed) -> list[str]:
    """Bronze column names of a header row; two cells naming one column are ambiguous: refused."""
    names = [feed.column_for(cell) if cell.strip() else f"column_{i + 1}" for i, cell in enumerate(header)]
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            first = seen[name]
            raise DeliveryError(
                path,
                f"columns {first + 1} ({header[first].strip()!r}) and {index + 1} ({header[index].strip()!r}) "
                f"both name {name}: ambiguous header, refused",
                f"cột {first + 1} ({header[first].strip()!r}) và cột {index + 1} ({header[index].strip()!r}) "
                f"trùng tên ({name}): tiêu đề không rõ ràng, tệp bị từ chối",
            )
        seen[name] = index
    return names


def _records_json(path: str, data: bytes) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
    text, encoding = decode(path, data)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise DeliveryError(
            path,
            f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
            f"không phải JSON hợp lệ: lỗi ở dòng {error.lineno}, cột {error.colno}",
        ) from None
    if not isinstance(parsed, list):
        raise DeliveryError(path, "expected a JSON array of objects", "cần một mảng JSON gồm các đối tượng")
    for number, item in enumerate(parsed, start=1):
        if not isinstance(item, dict):
            raise DeliveryError(
                path, f"element {number} is not an object", f"phần tử thứ {number} không phải một đối tượng JSON"
            )
    return encoding, iter(enumerate(parsed, start=1))


def _records_ndjson(path: str, data: bytes) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
    text, encoding = decode(path, data)
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DeliveryError(
                path,
                f"line {number} is not valid JSON: {error.msg}",
                f"dòng {number} không phải JSON hợp lệ",
            ) from None
        if not isinstance(item, dict):
            raise DeliveryError(path, f"line {number} is not a JSON object", f"dòng {number} không phải đối tượng JSON")
        records.append((number, item))
    return encoding, iter(records)


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _records_csv(path: str, data: bytes, feed: Feed) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
    """Every record of a CSV (`,` `;` or tab), checked to account for the file's lines: a quote that is never
    closed, or a quoted field that swallows whole rows, refuses the file with the line where it starts."""
    text, encoding = decode(path, data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = _delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    names: list[str] = []
    records: list[tuple[int, dict[str, Any]]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                raise DeliveryError(
                    path,
                    f'line {start}: a quote (") opened in this record is never closed: the rest of the file '
                    f"({reader.line_num - start + 1} lines) would be one value",
                    f'dòng {start}: dấu ngoặc kép (") mở ở bản ghi này không bao giờ được đóng: phần còn lại của tệp '
                    f"({reader.line_num - start + 1} dòng) sẽ thành một giá trị",
                ) from None
            raise DeliveryError(
                path,
                f"line {reader.line_num}: malformed quoting ({error})",
                f"dòng {reader.line_num}: dấu ngoặc kép đặt sai ({error})",
            ) from None
        end = reader.line_num
        span = end - start + 1
        if span > 1 and header is not None:
            swallowed = max(2, len(header) // 2)
            looks_like_rows = any(
                line.count(delimiter) >= swallowed for cell in row if "\n" in cell for line in cell.split("\n")[1:]
            )
            if span > MAX_RECORD_LINES or looks_like_rows:
                raise DeliveryError(
                    path,
                    f"line {start}: a quoted value runs over {span} lines (to line {end}) and holds what look like "
                    'whole rows: probably an unclosed quote (")',
                    f"dòng {start}: một giá trị trong ngoặc kép kéo dài {span} dòng (đến dòng {end}) và chứa "
                    'những gì giống các dòng dữ liệu: có lẽ thiếu dấu đóng ngoặc kép (")',
                )
        if any(cell.strip() for cell in row):
            if header is None:
                header, names = row, _check_header(path, row, feed)
            else:
                record = dict(zip(names, row, strict=False))
                if len(row) > len(names) and any(c.strip() for c in row[len(names) :]):
                    record[EXTRA_CELLS] = delimiter.join(row[len(names) :])
                records.append((start, record))
        start = end + 1
    return encoding, iter(records)


def _header_continuation(cells: list[str | None], header: list[str], feed: Feed) -> bool:
    """Whether the row under an xlsx header is the second row of a two-row (merged) header: it names a
    column of the feed that the first row does not."""
    named = {feed.folded.get(fold_header(c)) for c in header if c}
    return any(c and fold_header(c) in feed.folded and feed.folded[fold_header(c)] not in named for c in cells)


def _records_xlsx(path: str, data: bytes, feed: Feed) -> tuple[None, Iterator[tuple[int, dict[str, Any]]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types for a broken file
        raise DeliveryError(
            path,
            f"not a readable .xlsx workbook ({type(error).__name__}: {error})",
            "không phải tệp .xlsx đọc được (tệp hỏng hoặc sai định dạng)",
        ) from None
    records: list[tuple[int, dict[str, Any]]] = []
    try:
        rows = [[as_text(c) for c in row] for row in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()
    header: list[str] | None = None
    names: list[str] = []
    continuation_checked = False
    for number, cells in enumerate(rows, start=1):
        if not any(c and c.strip() for c in cells):
            continue
        if header is None:
            known = sum(1 for c in cells if c and fold_header(c) in feed.folded)
            if known >= feed.title_hint:
                header = [c or "" for c in cells]
                names = _check_header(path, header, feed)
            continue  # a title or date line above the header
        if not continuation_checked:
            continuation_checked = True
            if _header_continuation(cells, header, feed):
                # a merged two-row header: the lower cell names the column, the upper one where it is empty
                width = max(len(header), len(cells))
                header = [
                    (cells[i] if i < len(cells) and (cells[i] or "").strip() else None)
                    or (header[i] if i < len(header) else "")
                    for i in range(width)
                ]
                names = _check_header(path, header, feed)
                continue
        records.append((number, dict(zip(names, cells, strict=False))))
    if header is None:
        raise DeliveryError(
            path,
            "no header row with the feed's column names in the first sheet",
            "không tìm thấy dòng tiêu đề có tên cột của nguồn dữ liệu trong trang tính đầu tiên",
        )
    return None, iter(records)


def read_delivery(
    landing: Landing, file: FileInfo, feed: Feed, data: bytes | None = None
) -> tuple[pa.Table, str | None]:
    """One delivered file as an Arrow table of text columns, named as bronze names them, and its encoding."""
    data = landing.read_bytes(file.path) if data is None else data
    if not data.strip():
        raise DeliveryError(file.path, "the file is empty", "tệp rỗng")
    suffix = file.path.rsplit(".", 1)[-1].lower()
    readers = {
        "json": lambda: _records_json(file.path, data),
        "ndjson": lambda: _records_ndjson(file.path, data),
        "csv": lambda: _records_csv(file.path, data, feed),
        "xlsx": lambda: _records_xlsx(file.path, data, feed),
    }
    if suffix not in readers:
        raise unsupported(file.path, feed)
    snapshot = snapshot_of(file.path)
    digest = hashlib.sha256(data).hexdigest()
    encoding, records = readers[suffix]()
    columns: dict[str, list[str | None]] = {}
    spelled: dict[str, str] = {}  # bronze column -> the header that named it (JSON keys: per file)
    rows: list[int] = []
    for number, record in records:
        for header, value in record.items():
            name = feed.column_for(str(header)) if suffix in ("json", "ndjson") else str(header)
            if spelled.setdefault(name, str(header)) != str(header):
                raise DeliveryError(
                    file.path,
                    f"keys {spelled[name]!r} and {header!r} both name {name}: ambiguous, refused",
                    f"hai khóa {spelled[name]!r} và {header!r} cùng chỉ cột {name}: không rõ ràng, tệp bị từ chối",
                )
            columns.setdefault(name, [None] * len(rows)).append(as_text(value))
        rows.append(number)
        for values in columns.values():
            if len(values) < len(rows):
                values.append(None)
    if not rows:
        raise DeliveryError(file.path, "the file has no data rows", "tệp không có dòng dữ liệu")
    # a column with neither a header nor a value (an xlsx sheet's formatted but empty cells) is no column
    columns = {k: v for k, v in columns.items() if not (k.startswith("column_") and all(x is None for x in v))}
    missing = [c for c in feed.required if c not in columns]
    if missing:
        raise DeliveryError(
            file.path,
            f"required column(s) missing: {', '.join(missing)} (found: {', '.join(sorted(columns))})",
            f"thiếu cột bắt buộc: {', '.join(missing)} (các cột có trong tệp: {', '.join(sorted(columns))})",
        )
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    table = (
        table.append_column(SOURCE_FILE, pa.array([file.path] * len(rows), pa.string()))
        .append_column(SOURCE_ROW, pa.array(rows, pa.int64()))
        .append_column(SNAPSHOT, pa.array([snapshot] * len(rows), pa.string()))
        .append_column(FILE_HASH, pa.array([digest] * len(rows), pa.string()))
    )
    return table, encoding


def unsupported(path: str, feed: Feed) -> DeliveryError:
    """The refusal of a file named as the feed's delivery but of a type it does not take."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in posixpath.basename(path) else ""
    takes = " or ".join(f".{e}" for e in feed.extensions)
    if suffix == "xls":
        return DeliveryError(
            path,
            f"the old Excel format .xls (97-2003) is not read: save the file as .xlsx (the feed takes {takes})",
            "định dạng Excel cũ .xls (97-2003) không được hỗ trợ: hãy lưu lại dưới dạng .xlsx",
        )
    return DeliveryError(
        path,
        f"unsupported file type .{suffix}: the feed takes {takes}",
        f"loại tệp .{suffix} không được hỗ trợ: nguồn dữ liệu này nhận {takes.replace(' or ', ' hoặc ')}",
    )


# --------------------------------------------------------------------------------------------------
# survey: every file of the feed's folder and what this run will do with it
# --------------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A file the run will hash and read (or refuse by name: `refusal` is set)."""

    file: FileInfo
    refusal: DeliveryError | None = None


def fate_of(feed: Feed, file: FileInfo, fate: str, reason: str | None = None, reason_vi: str | None = None, **kw: Any):
    return FileFate(feed.table, file.path, file.size, file.modified, fate, reason, reason_vi, **kw)


def _owner(path: str, feed: Feed, siblings: list[Feed]) -> Feed | None:
    """The feed a file of a (possibly shared) folder belongs to: the one whose pattern it matches, else the
    one it is named for, else (a stray file) the first feed of the folder, so that it gets one fate."""
    for test in (lambda f: matches(path, f.patterns), lambda f: f.named_like(path)):
        found = [f for f in siblings if test(f)]
        if found:
            return feed if feed in found else found[0]
    return siblings[0]


def owned_files(feed: Feed, landing: Landing, folder: str) -> list[FileInfo]:
    """Every file under one of the feed's folders that is the feed's, in a folder it may share (postal)."""
    sharing = {f.table: f for f in [feed, *CONTRACT_FEEDS.values()] if folder in f.folders}
    siblings = sorted(sharing.values(), key=lambda f: f.table)
    return [file for file in landing.listing(folder) if _owner(file.path, feed, siblings) is feed]


def survey(
    feed: Feed, landing: Landing, settle_seconds: float, now: float | None = None
) -> tuple[list[Candidate], list[FileFate]]:
    """Every file under the feed's folder(s): the candidates to read, and the fates of the others."""
    now = time.time() if now is None else now
    candidates: list[Candidate] = []
    fates: list[FileFate] = []
    for folder in feed.folders:
        for file in owned_files(feed, landing, folder):
            if file.link:
                fates.append(
                    fate_of(
                        feed,
                        file,
                        "ignored",
                        "a symbolic link, not a delivered file: deliver the file itself",
                        "liên kết tượng trưng (symlink), không phải tệp được giao: hãy giao chính tệp dữ liệu",
                    )
                )
            elif posixpath.dirname(file.path) != folder:
                fates.append(
                    fate_of(
                        feed,
                        file,
                        "ignored",
                        f"in a subfolder of {folder}/: only files directly in it are read",
                        f"nằm trong thư mục con của {folder}/: chỉ đọc các tệp nằm trực tiếp trong thư mục này",
                    )
                )
            elif is_temporary(file.path):
                fates.append(
                    fate_of(
                        feed,
                        file,
                        "ignored",
                        "a temporary or lock file (still being written or open in an editor)",
                        "tệp tạm hoặc tệp khóa (đang được ghi hoặc đang mở trong trình soạn thảo)",
                    )
                )
            elif not matches(file.path, feed.patterns) and not feed.named_like(file.path):
                fates.append(
                    fate_of(
                        feed,
                        file,
                        "ignored",
                        f"matches no file name of the feed ({', '.join(feed.patterns)})",
                        f"tên tệp không khớp mẫu nào của nguồn dữ liệu ({', '.join(feed.patterns)})",
                    )
                )
            elif now - file.modified < settle_seconds:
                fates.append(
                    fate_of(
                        feed,
                        file,
                        "deferred",
                        f"modified {now - file.modified:.1f} s ago (less than {settle_seconds:g} s): probably still "
                        "being written, left to a later run",
                        f"vừa thay đổi {now - file.modified:.1f} giây trước: có thể đang được ghi, để lần chạy sau",
                    )
                )
            elif matches(file.path, feed.patterns):
                candidates.append(Candidate(file))
            else:
                candidates.append(Candidate(file, unsupported(file.path, feed)))
    return candidates, fates


# --------------------------------------------------------------------------------------------------
# the dlt resource
# --------------------------------------------------------------------------------------------------


@dataclass
class Opened:
    """A file hashed and ready to read: `parse()` returns its encoding and its tables (one, or a stream of
    batches), raising `DeliveryError` before its first table when the file is unreadable."""

    digest: str
    parse: Callable[[], tuple[str | None, Iterable[pa.Table]]]


Reader = Callable[[Landing, FileInfo, Feed], Opened]


def whole_file(landing: Landing, file: FileInfo, feed: Feed) -> Opened:
    """The default reader: the file as one Arrow table (registers, catalogs: small files)."""
    data = landing.read_bytes(file.path)

    def parse() -> tuple[str | None, list[pa.Table]]:
        table, encoding = read_delivery(landing, file, feed, data)
        return encoding, [table]

    return Opened(hashlib.sha256(data).hexdigest(), parse)


def sha256_of(landing: Landing, path: str) -> str:
    sha = hashlib.sha256()
    with landing.open(path) as handle:
        while block := handle.read(8 * 1024 * 1024):
            sha.update(block)
    return sha.hexdigest()


@dataclass
class IngestReport:
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[DeliveryError] = field(default_factory=list)  # files refused by this run (new or earlier)
    rows: int = 0
    load_ids: list[str] = field(default_factory=list)
    fates: list[FileFate] = field(default_factory=list)
    rows_read: dict[str, int] = field(default_factory=dict)  # loaded file -> rows its reader yielded
    encodings: dict[str, str] = field(default_factory=dict)  # loaded text file -> encoding used

    def fate(self, path: str) -> FileFate | None:
        return next((f for f in self.fates if f.path == path), None)

    def merge(self, other: IngestReport) -> IngestReport:
        """Add another load's report (a former province's) to this one: one report for the feed's step."""
        self.loaded += other.loaded
        self.skipped += other.skipped
        self.errors += other.errors
        self.rows += other.rows
        self.load_ids += other.load_ids
        self.fates += other.fates
        self.rows_read.update(other.rows_read)
        self.encodings.update(other.encodings)
        return self


def stat_key(file: FileInfo) -> str:
    """What identifies a delivered file without reading it: path, size and modification time. A file
    whose three are unchanged since its digest was taken is not hashed again (a nightly run would
    otherwise read every delivered file, gigabytes, to find the one new export)."""
    return f"{file.path}|{file.size}|{file.modified!r}"


def loaded_before(file: FileInfo) -> bool:
    """Inside a file resource: whether this very file (same path, size and modification time) was
    loaded by an earlier run."""
    import dlt

    state = dlt.current.resource_state()
    return state.get("file_digests", {}).get(stat_key(file)) in state.get("loaded_files", {})


def file_resource(
    feed: Feed,
    landing: Landing,
    report: IngestReport,
    read: Reader = whole_file,
    candidates: list[Candidate] | None = None,
    refused: dict[tuple[str, str], tuple[str, str]] | None = None,
) -> Any:
    """A dlt resource yielding the Arrow tables of every new file among `candidates` (default: every file
    matching the feed's patterns), recording each file's fate in `report`:

    - the very file loaded before (same path, size, modification time): already_loaded, not read again;
    - content loaded before (same SHA-256, whatever its name): already_loaded;
    - (path, SHA-256) refused by an earlier run (`refused`): refused, not read again;
    - unreadable: refused (`DeliveryError`), nothing of it yielded;
    - changed while it was read: deferred, nothing of it yielded;
    - else loaded."""
    import dlt

    refused = refused or {}

    @dlt.resource(name=feed.table, write_disposition="append")
    def delivered() -> Iterator[pa.Table]:
        state = dlt.current.resource_state()
        seen: dict[str, str] = state.setdefault("loaded_files", {})
        digests: dict[str, str] = state.setdefault("file_digests", {})
        chosen = candidates if candidates is not None else [Candidate(f) for f in landing.matching(feed.patterns)]
        for candidate in chosen:
            file = candidate.file
            if candidate.refusal is None and loaded_before(file):  # the very file, unchanged: not read again
                report.skipped.append(file.path)
                digest = digests.get(stat_key(file))
                first = seen.get(digest or "", file.path)
                why = "loaded before" if first == file.path else f"same content as {first}, loaded before"
                report.fates.append(fate_of(feed, file, "already_loaded", why, "đã nạp trước đó", sha256=digest))
                continue
            try:
                try:
                    opened = read(landing, file, feed) if candidate.refusal is None else None
                except DeliveryError as error:  # unreadable before its digest (an empty export)
                    opened, candidate.refusal = None, error
                digest = opened.digest if opened else sha256_of(landing, file.path)
                now = landing.stat(file.path)
            except FileNotFoundError:  # renamed or removed since the folder was listed (a copy tool finishing)
                gone = ("the file disappeared while it was read", "tệp đã biến mất trong khi đang được đọc")
                report.fates.append(fate_of(feed, file, "deferred", *gone))
                continue
            if (now.size, now.modified) != (file.size, file.modified):  # it changed while it was hashed / read
                report.fates.append(
                    fate_of(
                        feed,
                        file,
                        "deferred",
                        "the file changed while it was read: probably still being written, left to a later run",
                        "tệp thay đổi trong khi đang đọc: có thể đang được ghi, để lần chạy sau",
                    )
                )
                continue
            if (file.path, digest) in refused:
                reason, reason_vi = refused[(file.path, digest)]
                earlier = DeliveryError(file.path, f"refused earlier: {reason}", f"đã bị từ chối trước đó: {reason_vi}")
                report.errors.append(earlier)
                report.fates.append(fate_of(feed, file, "refused", earlier.problem, earlier.problem_vi, sha256=digest))
                continue
            if digest in seen:
                digests[stat_key(file)] = digest
                report.skipped.append(file.path)
                why = "loaded before" if seen[digest] == file.path else f"same content as {seen[digest]}, loaded before"
                report.fates.append(fate_of(feed, file, "already_loaded", why, "đã nạp trước đó", sha256=digest))
                continue
            try:
                if candidate.refusal is not None or opened is None:
                    raise candidate.refusal or DeliveryError(file.path, "unreadable", "không đọc được")
                encoding, tables = opened.parse()
            except DeliveryError as error:
                report.errors.append(error)
                report.fates.append(fate_of(feed, file, "refused", error.problem, error.problem_vi, sha256=digest))
                continue
            digests[stat_key(file)] = digest
            seen[digest] = file.path
            report.loaded.append(file.path)
            rows = 0
            for table in tables:
                rows += table.num_rows
                yield table
            report.rows += rows
            report.rows_read[file.path] = rows
            if encoding:
                report.encodings[file.path] = encoding
            report.fates.append(fate_of(feed, file, "loaded", sha256=digest, rows=rows, encoding=encoding))

    return delivered


def pipeline(lake: Lake, dlt_dir: str, name: str, partition: str | None = None) -> dlt.Pipeline:
    """The dlt pipeline of one feed: Parquet files in `<lake>/bronze/<table>/` (a former province's in
    `<table>/<partition>/`, under a pipeline of its own: its state and load records never meet another's).
    dlt is imported here, at the first load, not with the definitions (a second of imports that most
    processes never need)."""
    import dlt
    from dlt.destinations import filesystem

    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    return dlt.pipeline(
        pipeline_name=f"ioc_{name}" + (f"_{partition}" if partition else ""),
        pipelines_dir=dlt_dir,
        destination=filesystem(
            bucket_url=lake.url,
            layout="{table_name}/" + (f"{partition}/" if partition else "") + "{load_id}.{file_id}.{ext}",
        ),
        dataset_name="bronze",
    )


def account(lake: Lake, table: str, report: IngestReport) -> dict[str, int]:
    """Rows each loaded file has in bronze under this run's load ids (read back from bronze), set on the
    files' fates with the load id: rows read from a file must equal its rows in bronze."""
    import polars as pl

    if not report.load_ids or not report.loaded or not lake.exists("bronze", table):
        return {}
    found = (
        lake.scan("bronze", table)
        .filter(pl.col(LOAD_ID).is_in(report.load_ids))
        .group_by(SOURCE_FILE, LOAD_ID)
        .len()
        .collect()
    )
    in_bronze: dict[str, int] = {}
    for path, load_id, rows in found.iter_rows():
        in_bronze[path] = in_bronze.get(path, 0) + rows
        fate = report.fate(path)
        if fate is not None and fate.fate == "loaded":
            fate.load_id = load_id
            fate.rows = in_bronze[path]
    for path in report.loaded:
        in_bronze.setdefault(path, 0)
    return in_bronze


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


def unfinished_files(lake: Lake, p: dlt.Pipeline, table: str, partition: str | None = None) -> list[str]:
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
        for f in _listing(lake, f"{root}/{table}" + (f"/{partition}" if partition else ""))
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


def discard_unfinished(lake: Lake, p: dlt.Pipeline, table: str, partition: str | None = None) -> list[str]:
    """Abort dlt's pending packages (dlt restores its state as it was before them, so their files are
    not marked loaded) and remove from bronze every file of a load that did not complete."""
    if p.has_pending_data:
        p.abort_packages()
    removed = unfinished_files(lake, p, table, partition)
    for path in removed:
        lake.fs.rm(path)
    return removed


def load(lake: Lake, dlt_dir: str, table: str, resource: Any, partition: str | None = None) -> list[str]:
    """Run dlt for one feed, crash-safe; returns the ids of the loads now in bronze.

    First what a killed run left: `run()` without data syncs the state with the lake and loads the
    packages that were extracted or normalized but not loaded (their rows were taken from the landing
    zone and marked loaded in dlt's state: they must arrive, once); then bronze files of loads that never
    completed (a lost package) are removed. A full disk discards the load whole and says so."""
    p = pipeline(lake, dlt_dir, table, partition)
    try:
        load_ids: list[str] = []
        pending = p.run()
        if pending is not None:
            pending.raise_on_failed_jobs()
            load_ids += pending.loads_ids
        for path in unfinished_files(lake, p, table, partition):
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
            discard_unfinished(lake, p, table, partition)
        except Exception as cleanup:  # noqa: BLE001 - still full: the next run retries the clean-up
            raise DiskFullError(f"disk full while loading {table}: {full}; clean-up not finished ({cleanup})") from None
        raise DiskFullError(
            f"disk full while loading {table}: {full} (the load was discarded: free space and run again)"
        ) from None


def ingest(
    feed: Feed,
    landing: Landing,
    lake: Lake,
    dlt_dir: str,
    settle_seconds: float = SETTLE_SECONDS,
    partition: str | None = None,
) -> IngestReport:
    """Load the settled files of `feed` (already `under` its province's folder) into bronze, in the
    province's `partition` of the table when there is one."""
    report = IngestReport()
    candidates, fates = survey(feed, landing, settle_seconds)
    report.fates.extend(fates)
    resource = file_resource(
        feed, landing, report, candidates=candidates, refused=refused_earlier(lake, feed.table, partition)
    )
    report.load_ids = load(lake, dlt_dir, feed.table, resource, partition)
    return report
