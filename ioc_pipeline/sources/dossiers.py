"""Feed 4 of the landing-zone contract: one-stop-shop dossiers, from the gateway API or its export.

    GET {IOC_DOSSIER_API_URL}/dossiers?updated_from=…&page=n   (pages of JSON, bearer token)
      or landing/public_service/dossiers_YYYYMM.ndjson          (the export, when no URL is set)
        │ polars reads each page / 32 MB batch of lines: every value as text, no row-by-row Python
        │ ChuHoSo ──► applicant_id (keyed HMAC of the citizen ID); the rest of ChuHoSo is dropped HERE
        ▼
    dlt resource (Arrow tables) ──► lake/bronze/dossiers/<load_id>.<file_id>.parquet (append-only)

Bronze keeps every version as delivered (pseudonymised) plus `_updated_at` (NgayCapNhat parsed:
the gateway cursor, and the version order) and `_month` (the month of receipt, the silver
partition the row belongs to, so a partition reads only its rows). The newest version of each
`MaHoSo` wins in silver: dlt's filesystem destination cannot merge plain Parquet.

Personal data never leaves this module: the applicant object is read as text, its citizen ID is
turned into a pseudonym and the column is dropped before the table is handed to dlt. Only the
contract's fields are kept (an allow-list: an unknown field of a personal-data feed may carry
personal data). Error messages name files, lines, pages and fields, never delivered values.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

from ioc_pipeline import faults, parsing, pii
from ioc_pipeline.lake import FileInfo, Lake, Landing
from ioc_pipeline.sources.files import (
    DETECT_BYTES,
    FILE_HASH,
    LOAD_ID,
    SETTLE_SECONDS,
    SNAPSHOT,
    SOURCE_FILE,
    SOURCE_ROW,
    Candidate,
    DeliveryError,
    Feed,
    IngestReport,
    Opened,
    contract_feed,
    detect_encoding,
    fate_of,
    file_resource,
    load,
    loaded_before,
    refused_earlier,
    snapshot_of,
    survey,
)

if TYPE_CHECKING:
    import requests
    from polars._typing import PolarsDataType

T = TypeVar("T")
TABLE = "dossiers"
FIRST_MONTH = date(2022, 1, 1)  # the first month partition; receipt dates before it are refused by the gate
UPDATED_AT = "_updated_at"
MONTH = "_month"
PARSE_ERROR = "_parse_error"
APPLICANT = "ChuHoSo"
CHUNK_BYTES = 32 * 1024 * 1024
TZ = ZoneInfo(parsing.TIMEZONE)

# contract field -> bronze column (the national dossier-synchronisation record's names)
FIELDS: dict[str, str] = {
    "MaHoSo": "dossier_code",
    "MaTTHC": "procedure_code",
    "DonViXuLy": "agency",
    "DonViHanhChinh": "unit",
    "KenhThucHien": "channel",
    "NgayTiepNhan": "received_at",
    "NgayHenTra": "due_at",
    "NgayKetThucXuLy": "finished_at",
    "NgayTra": "returned_at",
    "TrangThaiHoSo": "status",
    "SoLanBoSung": "supplement_count",
    "DuocThanhToanTrucTuyen": "paid_online",
    "HoSoCoThanhPhanSoHoa": "digitized",
    "CoKetQuaDienTu": "e_result",
    "NgayCapNhat": "updated_at",
}
# every field as text; of the applicant, only the citizen ID is ever parsed (an applicant that is not an
# object makes the line unreadable: it is quarantined with a reason that shows nothing of it)
READ_SCHEMA: dict[str, PolarsDataType] = {
    **{name: pl.String for name in FIELDS},
    APPLICANT: pl.Struct({"SoGiayTo": pl.String}),
}
BRONZE_COLUMNS = [*FIELDS.values(), "applicant_id", UPDATED_AT, MONTH, PARSE_ERROR]
LINEAGE = [SOURCE_FILE, SOURCE_ROW, SNAPSHOT, FILE_HASH]

_EXPORT_MONTH = re.compile(r"(\d{6})\.[a-z]+$")


def export_month(path: str) -> str:
    """The unit of an export file: its month (`dossiers_202205.json` and `.ndjson` are the same month)."""
    found = _EXPORT_MONTH.search(path.lower())
    return found.group(1) if found else path


FEED = contract_feed(
    Feed(
        table=TABLE,
        patterns=("public_service/dossiers_*.ndjson", "public_service/dossiers_*.json"),
        columns={k: v for k, v in FIELDS.items()},
        required=("dossier_code",),
        partition_of=export_month,
    )
)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


# --------------------------------------------------------------------------------------------------
# delivered records (text) -> bronze Arrow table
# --------------------------------------------------------------------------------------------------


def to_bronze(
    raw: pl.DataFrame,
    key: bytes,
    source_file: str | pl.Series,
    source_rows: Iterable[int],
    snapshot: str,
    digest: str | None,
    errors: pl.Series | None = None,
) -> pa.Table:
    """Delivered records (contract field names, text) -> the bronze table: pseudonymised, with the
    version's timestamp, its month partition and where it came from."""
    for name in READ_SCHEMA:
        if name not in raw.columns:
            raw = raw.with_columns(pl.lit(None, pl.String).alias(name))
    applicant = raw.get_column(APPLICANT)
    if isinstance(applicant.dtype, pl.Struct):
        citizen_id = applicant.struct.field("SoGiayTo").cast(pl.String)
    else:  # the object as JSON text (or whatever else was delivered: then no ID)
        citizen_id = applicant.str.json_path_match("$.SoGiayTo")
    frame = raw.select([pl.col(k).alias(v) for k, v in FIELDS.items()]).with_columns(
        pii.pseudonymise(citizen_id, key).alias("applicant_id")
    )
    del raw, citizen_id  # nothing of the applicant but the pseudonym goes further
    fallback = date.fromisoformat(snapshot)
    today = datetime.now(TZ).date()
    first, last = month_of(FIRST_MONTH), month_of(max(today, fallback))
    # each parse once (a polars expression used twice is computed twice)
    frame = frame.with_columns(
        parsing.datetime_local("updated_at").alias(UPDATED_AT),
        parsing.datetime_local("received_at").dt.strftime("%Y-%m").alias("_received_month"),
    )
    in_range = lambda m: pl.when((pl.col(m) >= first) & (pl.col(m) <= last)).then(pl.col(m))  # noqa: E731
    frame = frame.with_columns(pl.col(UPDATED_AT).dt.strftime("%Y-%m").alias("_updated_month")).with_columns(
        pl.coalesce(
            in_range("_received_month"),
            in_range("_updated_month"),
            pl.lit(min(max(month_of(fallback), first), last)),
        ).alias(MONTH),
        (errors if errors is not None else pl.lit(None, pl.String)).alias(PARSE_ERROR),
        (pl.lit(source_file) if isinstance(source_file, str) else source_file).alias(SOURCE_FILE),
        pl.Series(SOURCE_ROW, list(source_rows), pl.Int64),
        pl.lit(snapshot).alias(SNAPSHOT),
        pl.lit(digest, pl.String).alias(FILE_HASH),
    )
    return frame.select(BRONZE_COLUMNS + LINEAGE).sort(MONTH, maintain_order=True).to_arrow()


# --------------------------------------------------------------------------------------------------
# the export: public_service/dossiers_YYYYMM.ndjson, read in batches of lines
# --------------------------------------------------------------------------------------------------


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, each produced in a worker thread while the consumer handles the one before: parsing,
    typing and pseudonymising a batch (polars releases the GIL) overlaps dlt writing the previous one,
    so both cores work. Exceptions reach the consumer at the item that raised them."""
    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as worker:
        upcoming = worker.submit(next, items, done)
        while (item := upcoming.result()) is not done:
            upcoming = worker.submit(next, items, done)
            yield cast(T, item)


def _digest(landing: Landing, path: str) -> tuple[str, bool]:
    """SHA-256 of a file, streamed, and whether it holds anything but whitespace."""
    sha = hashlib.sha256()
    content = False
    with landing.open(path) as handle:
        while block := handle.read(CHUNK_BYTES):
            sha.update(block)
            content = content or bool(block.strip())
    return sha.hexdigest(), content


def _lines(data: bytes, first_line: int) -> tuple[list[int] | range, list[bytes] | None]:
    """Line numbers of the non-blank lines of a batch (and the lines, when some are blank)."""
    if not data.startswith((b"\n", b"\r")) and b"\n\n" not in data and b"\n\r\n" not in data and b"\n " not in data:
        return range(first_line, first_line + data.count(b"\n") + (0 if data.endswith(b"\n") else 1)), None
    numbers, kept = [], []
    for offset, line in enumerate(data.split(b"\n")):
        if line.strip():
            numbers.append(first_line + offset)
            kept.append(line)
    return numbers, kept


def _read_lines(lines: list[bytes]) -> pl.DataFrame:
    return pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=READ_SCHEMA)


def _parse_lines(
    kept: list[bytes] | None, data: bytes | None = None, count: int = 0
) -> tuple[pl.DataFrame, list[str | None]]:
    """Records of a batch of lines as text columns; an unreadable line becomes a row of nulls with
    the reason (the gate quarantines it) instead of failing a whole month's export. With `kept` None,
    `data` holds exactly `count` non-blank lines, split into a list only when one of them is unreadable."""
    expected = len(kept) if kept is not None else count
    try:
        frame = pl.read_ndjson(io.BytesIO(data), schema=READ_SCHEMA) if data is not None else _read_lines(kept or [])
        if frame.height == expected:
            return frame, [None] * expected
    except Exception:  # noqa: BLE001 - polars' message may quote the line: find the culprits ourselves
        pass
    if kept is None:
        kept = data.rstrip(b"\n").split(b"\n") if data is not None else []
    errors: list[str | None] = []
    for line in kept:
        try:
            item = json.loads(line)
            problem = None if isinstance(item, dict) else "the line is not a JSON object"
        except UnicodeDecodeError:
            problem = "the line is not UTF-8"
        except json.JSONDecodeError as error:
            problem = f"the line is not valid JSON ({error.msg} at column {error.colno})"
        errors.append(problem)
    try:
        _read_lines([line for line, problem in zip(kept, errors, strict=True) if problem is None])
    except Exception:  # noqa: BLE001 - rare: a value of a type polars cannot read as text; find it line by line
        for index, line in enumerate(kept):
            if errors[index] is None:
                try:
                    _read_lines([line])
                except Exception:  # noqa: BLE001
                    errors[index] = "a field of the line holds a value of a JSON type the contract does not allow"
    positions = [i for i, problem in enumerate(errors) if problem is None]
    parsed = _read_lines([kept[i] for i in positions]) if positions else pl.DataFrame(schema=READ_SCHEMA)
    frame = (
        pl.DataFrame({"_pos": range(len(kept))}, schema={"_pos": pl.Int64})
        .join(parsed.with_columns(pl.Series("_pos", positions, pl.Int64)), on="_pos", how="left")
        .drop("_pos")
    )
    return frame, errors


def _utf8_blocks(handle: Any, encoding: str) -> Iterator[bytes]:
    """The file's blocks as UTF-8 (an export saved as UTF-16 or Windows-1258 is transcoded as it is read)."""
    if encoding in ("utf-8", "utf-8-sig"):
        while block := handle.read(CHUNK_BYTES):
            yield block
        return
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    while block := handle.read(CHUNK_BYTES):
        yield decoder.decode(block).encode("utf-8")
    yield decoder.decode(b"", final=True).encode("utf-8")


def _encoding_of(landing: Landing, file: FileInfo) -> str:
    with landing.open(file.path) as handle:
        sample = handle.read(DETECT_BYTES)
    encoding = detect_encoding(sample)
    if encoding is None:
        raise DeliveryError(
            file.path,
            "the character encoding could not be recognised (save the file as UTF-8)",
            "không nhận ra bảng mã ký tự của tệp (hãy lưu tệp dưới dạng UTF-8)",
        )
    return encoding


def read_export(landing: Landing, file: FileInfo, feed: Feed, key: bytes, ahead: DigestsAhead | None = None) -> Opened:
    """The `files.Reader` of the export: its digest now, its batches as they are read (`.ndjson`: 32 MB of
    lines at a time; `.json`, a JSON array: whole, then in batches)."""
    snapshot = snapshot_of(file.path)
    digest, content = ahead.digest(landing, file, feed) if ahead else _digest(landing, file.path)

    def parse() -> tuple[str, Iterator[pa.Table]]:
        if not content:
            raise DeliveryError(file.path, "the file is empty", "tệp rỗng")
        encoding = _encoding_of(landing, file)
        if file.path.lower().endswith(".json"):
            frame, errors = _json_records(landing, file, encoding)  # whole: refused here, before any batch
            return encoding, read_ahead(_json_batches(frame, errors, file, key, snapshot, digest))
        return encoding, read_ahead(_ndjson_batches(landing, file, key, snapshot, digest, encoding))

    return Opened(digest, parse)


def _ndjson_batches(
    landing: Landing, file: FileInfo, key: bytes, snapshot: str, digest: str, encoding: str
) -> Iterator[pa.Table]:
    line = 1
    rest = b""
    with landing.open(file.path) as handle:
        blocks = _utf8_blocks(handle, encoding)
        while True:
            block = next(blocks, b"")
            data = rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
                if not data:
                    continue
            if line == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            if not data:
                break
            numbers, kept = _lines(data, line)
            line += data.count(b"\n")
            if numbers:
                frame, errors = _parse_lines(kept, data, len(numbers))
                error_series = pl.Series(PARSE_ERROR, errors, pl.String) if any(errors) else None
                faults.point("bronze_read")
                yield to_bronze(frame, key, file.path, numbers, snapshot, digest, error_series)
            if not block:
                break


JSON_BATCH_ROWS = 200_000


def _json_records(landing: Landing, file: FileInfo, encoding: str) -> tuple[pl.DataFrame, list[str | None]]:
    """A `.json` export (a JSON array of dossier records, the contract's record): element n is row n. An
    element that is no object becomes a row with its reason (quarantined), like an unreadable ndjson line."""
    with landing.open(file.path) as handle:
        data = b"".join(_utf8_blocks(handle, encoding))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        frame = pl.read_json(io.BytesIO(data), schema=READ_SCHEMA)
        errors: list[str | None] = [None] * frame.height
    except Exception:  # noqa: BLE001 - polars' message may quote personal values: element by element
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise DeliveryError(
                file.path,
                f"not valid JSON (at character {error.pos})",
                f"không phải JSON hợp lệ (tại ký tự {error.pos})",
            ) from None
        if not isinstance(items, list):
            raise DeliveryError(
                file.path, "expected a JSON array of objects", "cần một mảng JSON gồm các đối tượng"
            ) from None
        frame, errors = _parse_lines([orjson.dumps(item) for item in items])
    return frame, errors


def _json_batches(
    frame: pl.DataFrame, errors: list[str | None], file: FileInfo, key: bytes, snapshot: str, digest: str
) -> Iterator[pa.Table]:
    for first in range(0, frame.height, JSON_BATCH_ROWS):
        part = frame.slice(first, JSON_BATCH_ROWS)
        chunk = errors[first : first + part.height]
        numbers = range(first + 1, first + part.height + 1)
        error_series = pl.Series(PARSE_ERROR, chunk, pl.String) if any(chunk) else None
        yield to_bronze(part, key, file.path, numbers, snapshot, digest, error_series)


class DigestsAhead:
    """The SHA-256 of the next export file to load, computed in a thread while this one is parsed
    (hashlib releases the GIL: the second core hashes). SHA-256 runs at ~120 MB/s on this machine's
    CPUs (no SHA extensions): hashing 550 MB before reading was a tenth of the bronze step at S=1."""

    def __init__(self) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.pending: dict[str, Future] = {}

    def digest(self, landing: Landing, file: FileInfo, feed: Feed) -> tuple[str, bool]:
        mine = self.pending.pop(file.path, None)
        following = [f for f in landing.matching(feed.patterns) if f.path > file.path and not loaded_before(f)]
        if following and following[0].path not in self.pending:
            self.pool = self.pool or ThreadPoolExecutor(1, thread_name_prefix="sha256")
            self.pending[following[0].path] = self.pool.submit(_digest, landing, following[0].path)
        return mine.result() if mine is not None else _digest(landing, file.path)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def export_resource(
    landing: Landing,
    report: IngestReport,
    key: bytes,
    ahead: DigestsAhead | None = None,
    candidates: list[Candidate] | None = None,
    refused: dict[tuple[str, str], tuple[str, str]] | None = None,
    feed: Feed = FEED,
) -> Any:
    read = partial(read_export, key=key, ahead=ahead)
    return file_resource(feed, landing, report, read=read, candidates=candidates, refused=refused)


# --------------------------------------------------------------------------------------------------
# the gateway API
# --------------------------------------------------------------------------------------------------


class GatewayError(RuntimeError):
    """The gateway answered something the pipeline cannot use (after retries, where they apply)."""


class GatewayAuthError(GatewayError):
    """The gateway refused the token: retrying cannot help."""


def retried_errors() -> tuple[type[Exception], ...]:
    """What a dropped connection, a reset, a body cut short or a silent server raise: retried like a 5xx.
    (requests is imported by the gateway path only, not with the definitions.)"""
    import requests

    return (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )


@dataclass(frozen=True)
class Gateway:
    """How to reach the gateway; `token` is never logged or put in a message."""

    url: str
    token: str = field(repr=False)
    page_size: int = 20000
    timeout: float = 60.0  # seconds to connect, and between two bytes of an answer
    max_attempts: int = 6
    backoff: float = 1.0  # seconds before the first retry; doubled each time, at most 60 s
    first_updated_from: datetime = datetime(FIRST_MONTH.year, FIRST_MONTH.month, 1, tzinfo=TZ)
    lookback: timedelta = timedelta(days=2)  # asked again before the cursor: late, backdated versions
    reconcile_every: timedelta = timedelta(days=7)  # counts per month compared with the gateway's
    token_setting: str = "IOC_DOSSIER_API_TOKEN"  # named when the gateway refuses the token

    @classmethod
    def from_settings(cls, settings: Any, code: str | None = None) -> Gateway | None:
        """The client from the `gateway` resource's settings (`resources.DossierGatewayResource`): former
        province `code`'s gateway (`settings.endpoint`), or without `code` the unsuffixed one; None when no URL
        is set: the export files are read instead."""
        url, token, token_setting = settings.endpoint(code) if code else (settings.url.strip(), settings.token, "")
        if not url:
            return None
        return cls(
            url=url,
            token=token,
            token_setting=token_setting or cls.token_setting,
            page_size=settings.page_size,
            backoff=settings.backoff_seconds,
            max_attempts=settings.max_attempts,
            timeout=settings.timeout_seconds,
            lookback=timedelta(hours=settings.lookback_hours),
            reconcile_every=timedelta(days=settings.reconcile_days),
        )

    @property
    def host(self) -> str:
        """Which gateway, for metadata and messages: its host and port, never a credential of the URL."""
        parts = urlsplit(self.url)
        return f"{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


@dataclass
class GatewayStats:
    pages: int = 0
    requests: int = 0
    retries: int = 0
    rows: int = 0  # versions answered (those of the look-back window again: already in bronze, not appended)
    duplicates: int = 0  # versions answered that bronze (or an earlier page) already holds: not appended
    updated_from: str | None = None
    retried_statuses: dict[str, int] = field(default_factory=dict)
    reconciled: bool = False  # this load compared the counts per month with the gateway's
    reconciliation: dict[str, dict[str, int]] = field(default_factory=dict)  # month -> gateway/bronze, when unequal
    unplaced: int = 0  # versions in bronze whose NgayCapNhat is unreadable (in no month of the reconciliation)

    def metadata(self) -> dict[str, Any]:
        """Everything above, for the bronze materialization."""
        return {
            "updated_from": self.updated_from or "",
            "pages": self.pages,
            "versions_answered": self.rows,
            "versions_already_loaded": self.duplicates,
            "requests": self.requests,
            "retries": self.retries,
            "retried_statuses": self.retried_statuses,
            "reconciled": self.reconciled,
            "reconciliation_months_unequal": self.reconciliation,
            "versions_without_readable_updated_at": self.unplaced,
        }


def _page_request(
    session: requests.Session, gateway: Gateway, params: dict[str, Any], stats: GatewayStats, sleep: Callable
) -> bytes:
    """One page, with retries on 429, 5xx and broken connections (back-off, honouring Retry-After)."""
    url = f"{gateway.url.rstrip('/')}/dossiers"
    where = f"GET {url}?{urlencode(params)}"
    retried = retried_errors()
    for attempt in range(1, gateway.max_attempts + 1):
        stats.requests += 1
        try:
            answer = session.get(url, params=params, timeout=gateway.timeout)
        except retried as error:
            status, retry_after = type(error).__name__, None
        else:
            if answer.status_code == 200:
                return answer.content
            if answer.status_code in (401, 403):
                raise GatewayAuthError(
                    f"the dossier gateway refused the token (HTTP {answer.status_code}) for {where}: "
                    f"check {gateway.token_setting} (not retried)"
                )
            if answer.status_code != 429 and answer.status_code < 500:
                raise GatewayError(f"the dossier gateway answered HTTP {answer.status_code} for {where}")
            status, retry_after = str(answer.status_code), answer.headers.get("Retry-After")
        if attempt == gateway.max_attempts:
            raise GatewayError(f"the dossier gateway kept failing ({status}) for {where} after {attempt} attempts")
        stats.retries += 1
        stats.retried_statuses[status] = stats.retried_statuses.get(status, 0) + 1
        delay = min(gateway.backoff * 2 ** (attempt - 1), 60.0)
        if retry_after and retry_after.strip().isdigit():
            delay = min(max(delay, float(retry_after)), 60.0)
        sleep(delay)
    raise AssertionError("unreachable")


PAGE_SCHEMA: dict[str, PolarsDataType] = {
    "data": pl.List(pl.Struct({**{k: pl.String for k in FIELDS}, APPLICANT: pl.Struct({"SoGiayTo": pl.String})})),
    "page_size": pl.Int64,
    "total_pages": pl.Int64,
    "total": pl.Int64,
}


@dataclass
class Page:
    records: pl.DataFrame
    total_pages: int
    total: int | None  # versions the query matches (all pages), when the gateway says
    page_size: int | None  # the page size the gateway applied, when it says


def _read_page(body: bytes, where: str) -> Page:
    """A page's records as text columns: polars reads the page whole (fast); a page it cannot type
    (an applicant that is not an object, say) is re-read record by record through orjson."""
    try:
        page = pl.read_json(io.BytesIO(body), schema=PAGE_SCHEMA)
        total_pages, total, size = (page.get_column(c)[0] for c in ("total_pages", "total", "page_size"))
        records = page.select(pl.col("data").explode()).unnest("data")
        if records.height == 1 and all(v is None for v in records.row(0)):
            records = records.clear()  # "data": [] explodes into one null row
    except Exception:  # noqa: BLE001 - polars' message may quote delivered (personal) values
        try:
            parsed = orjson.loads(body)
            total_pages, total, size = (parsed.get(c) for c in ("total_pages", "total", "page_size"))
            data = parsed.get("data") or []
            records = _read_lines([orjson.dumps(item) for item in data]) if data else pl.DataFrame(schema=READ_SCHEMA)
            total, size = (int(v) if isinstance(v, int) else None for v in (total, size))
        except Exception as error:  # noqa: BLE001
            raise GatewayError(
                f"{where}: the answer is not the contract's JSON page ({type(error).__name__})"
            ) from None
    if total_pages is None:
        raise GatewayError(f"{where}: the answer has no total_pages")
    return Page(records, int(total_pages), total, size)


class Paging:
    """Bounds on what a gateway may announce: a page repeated, or more pages than its versions can fill,
    fails the load by name instead of paging forever (a gateway that always announced one more page
    made 6,181 requests in 150 s)."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.seen: dict[int, int] = {}  # fingerprint of a page's versions -> the page that had them

    def check(self, number: int, page: Page, where: str) -> None:
        size = page.page_size or self.page_size
        if page.records.height > size:
            raise GatewayError(f"{where}: {page.records.height} versions on a page of {size}")
        if page.total is not None:
            most = max(1, -(-page.total // max(size, 1)))
            if page.total_pages > most:
                raise GatewayError(
                    f"{where}: the gateway announces {page.total_pages} pages for {page.total} versions at "
                    f"{size} a page (at most {most}): paging stopped"
                )
        elif number < page.total_pages and not page.records.height:
            raise GatewayError(f"{where}: page {number} of {page.total_pages} is empty: paging stopped")
        if page.records.height:
            keys = page.records.select(pl.struct("MaHoSo", "NgayCapNhat").hash()).to_series()
            fingerprint = hash((page.records.height, tuple(keys.to_list())))
            if fingerprint in self.seen:
                raise GatewayError(
                    f"{where}: page {number} repeats the versions of page {self.seen[fingerprint]}: paging stopped"
                )
            self.seen[fingerprint] = number


# what makes two bronze rows the same version: the delivered fields (as text) and the pseudonym
CONTENT = [*FIELDS.values(), "applicant_id"]
VERSION_KEY = ["dossier_code", UPDATED_AT, "_content"]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _version_keys(frame: pl.DataFrame | pl.LazyFrame) -> Any:
    return frame.select(
        pl.col("dossier_code"),
        pl.col(UPDATED_AT).dt.convert_time_zone("UTC"),
        pl.struct(CONTENT).hash().alias("_content"),
    )


def _bronze(lake: Lake, rows: pl.Expr | None) -> pl.LazyFrame:
    """Bronze's dossier versions of the gateway being loaded: `rows` (its former province's), or all."""
    bronze = lake.scan("bronze", TABLE)
    return bronze if rows is None else bronze.filter(rows)


class Versions:
    """The versions bronze holds from `since` on (and those of this load so far): a version answered
    again (the look-back window, a reconciliation, a page shifted by a new version) is not appended
    twice. Same dossier, same NgayCapNhat, same delivered content: the same version. `rows`: which of
    bronze's rows are this gateway's (its former province's; None: all)."""

    def __init__(self, lake: Lake, since: datetime, rows: pl.Expr | None = None) -> None:
        known = pl.DataFrame(
            schema={"dossier_code": pl.String, UPDATED_AT: pl.Datetime("us", "UTC"), "_content": pl.UInt64}
        )
        if lake.exists("bronze", TABLE):
            window = pl.col(UPDATED_AT).is_null() | (pl.col(UPDATED_AT) >= _utc(since))
            found = _version_keys(_bronze(lake, rows).select(*CONTENT, UPDATED_AT).filter(window)).collect()
            known = pl.concat([known, found.cast(known.schema)])
        self.known = known.unique()

    def new_only(self, table: pa.Table) -> pa.Table:
        keys = _version_keys(pl.DataFrame(table)).with_columns(_k=pl.int_range(pl.len(), dtype=pl.Int64))
        fresh = keys.unique(VERSION_KEY, keep="first", maintain_order=True).join(
            self.known, on=VERSION_KEY, how="anti", nulls_equal=True
        )
        self.known = pl.concat([self.known, fresh.select(VERSION_KEY)])
        if fresh.height == table.num_rows:
            return table
        return table.take(pa.array(fresh.get_column("_k").sort().to_list(), pa.int64()))


def _boundaries(first: datetime, until: datetime) -> list[datetime]:
    """Local midnight of the first day of every month from `first`'s to `until`'s, then `until` itself."""
    starts, year, month = [], first.year, first.month
    while (year, month) <= (until.year, until.month):
        starts.append(datetime(year, month, 1, tzinfo=TZ))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return [*[start for start in starts if start < until], until]


def reconcile(
    lake: Lake,
    gateway: Gateway,
    session: requests.Session,
    stats: GatewayStats,
    until: datetime,
    sleep: Callable,
    rows: pl.Expr | None = None,
) -> datetime | None:
    """Versions per month of NgayCapNhat, the gateway's against bronze's, up to the cursor (`until`); the
    start of the first month where bronze holds fewer, counted from the first month on (versions the
    cursor passed by: a backdated version published later than the look-back window), from which the
    load then pulls again.

    The API has only `updated_from`, and answers `total`, the versions from that instant on: a month's
    count is the difference of the totals at its first and at the next month's first instant (one
    request of one version each). Asked from the newest month back, so a version arriving meanwhile can
    only make an older month look short (a harmless re-pull), never hide a missing one. Bronze counts
    its versions (each appended once); those whose NgayCapNhat it cannot read (quarantined in silver)
    belong to no month and count from the first one on. A month where bronze holds more (versions also
    delivered as export files, or twice by a load from before the de-duplication) is reported, not
    pulled. A gateway that answers no `total`: everything is pulled again. Bronze's rows are those of
    `rows` (the gateway's former province: another province's versions are no versions of this gateway).
    """
    starts = _boundaries(gateway.first_updated_from, until)
    totals: dict[datetime, int] = {}
    for start in reversed(starts):
        params = {"updated_from": start.isoformat(), "page": 1, "page_size": 1}
        where = f"gateway /dossiers?{urlencode(params)}"
        page = _read_page(_page_request(session, gateway, params, stats, sleep), where)
        if page.total is None:
            stats.reconciliation = {"all": {"gateway_total_missing": 1}}
            return gateway.first_updated_from
        totals[start] = page.total
    held: dict[str, int] = {}
    if lake.exists("bronze", TABLE):
        local = pl.col(UPDATED_AT).dt.convert_time_zone(parsing.TIMEZONE)
        in_range = pl.col(UPDATED_AT).is_between(_utc(starts[0]), _utc(until), closed="left")
        counted = (
            _bronze(lake, rows)
            .select(UPDATED_AT)
            .filter(in_range | pl.col(UPDATED_AT).is_null())
            .group_by(local.dt.strftime("%Y-%m").alias("month"))
            .len()
            .collect()
        )
        held = dict(counted.iter_rows())
    stats.unplaced = held.pop(None, 0)  # type: ignore[call-overload]  # versions with no readable month
    served_so_far, kept_so_far, first_short = 0, stats.unplaced, None
    for start, following in zip(starts, starts[1:], strict=False):
        month = month_of(start.date())
        served, kept = totals[start] - totals[following], held.get(month, 0)
        served_so_far, kept_so_far = served_so_far + served, kept_so_far + kept
        if served != kept:
            stats.reconciliation[month] = {"gateway": served, "bronze": kept}
        if served_so_far > kept_so_far and first_short is None:
            first_short = start
    return first_short


def _cursor(state: dict[str, Any]) -> datetime | None:
    """The newest NgayCapNhat loaded (kept in dlt's resource state; before the look-back window it was
    dlt's incremental `last_value`, read once when a lake from then is loaded again)."""
    value = state.get("cursor") or state.get("incremental", {}).get(UPDATED_AT, {}).get("last_value")
    if value is None:
        return None
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp.astimezone(TZ)


def gateway_resource(
    gateway: Gateway,
    key: bytes,
    stats: GatewayStats,
    lake: Lake,
    sleep: Callable = time.sleep,
    partition: str | None = None,
    rows: pl.Expr | None = None,
) -> Any:
    """Pages of dossier versions changed since the newest one loaded, minus the look-back window (versions
    published late with an older NgayCapNhat); every so often, from the first month whose count differs
    from the gateway's (`reconcile`). A version bronze already holds is not appended again.

    With a former province's `partition` (its gateway, `IOC_DOSSIER_API_URL_<code>`), a page's rows are named
    `<code>/gateway /dossiers?…` (a row's province is the first folder of its source, as for files), and only
    bronze's `rows` of that province are compared with the gateway's: the cursor is in the province's own dlt
    state (`ioc_dossiers_<code>`)."""
    import dlt
    import requests

    @dlt.resource(name=TABLE, write_disposition="append")
    def changed() -> Iterator[pa.Table]:
        state = dlt.current.resource_state()
        cursor = _cursor(state)
        now = datetime.now(TZ)
        since = (
            gateway.first_updated_from if cursor is None else max(gateway.first_updated_from, cursor - gateway.lookback)
        )
        snapshot = now.date().isoformat()
        with requests.Session() as session, ThreadPoolExecutor(1, thread_name_prefix="gateway") as fetcher:
            session.headers["Authorization"] = f"Bearer {gateway.token}"
            session.headers["Accept"] = "application/json"
            last = state.get("reconciled_at")
            if cursor is not None and (
                last is None or now - datetime.fromisoformat(str(last)) >= gateway.reconcile_every
            ):
                stats.reconciled = True
                short = reconcile(lake, gateway, session, stats, cursor, sleep, rows)
                if short is not None:
                    since = min(since, short)
            since_text = since.astimezone(TZ).isoformat()
            stats.updated_from = since_text
            versions = Versions(lake, since, rows)
            paging = Paging(gateway.page_size)

            def fetch(number: int) -> tuple[Page, pa.Table | None, str]:
                """One page fetched, read, pseudonymised and typed (in the fetcher thread)."""
                params = {"updated_from": since_text, "page": number, "page_size": gateway.page_size}
                where = f"gateway /dossiers?{urlencode(params)}"
                page = _read_page(_page_request(session, gateway, params, stats, sleep), where)
                stats.pages += 1
                if not page.records.height:
                    return page, None, where
                stats.rows += page.records.height
                numbers = range(1, page.records.height + 1)
                named = f"{partition}/{where}" if partition else where
                return page, to_bronze(page.records, key, named, numbers, snapshot, None), where

            number, total_pages, newest = 1, 1, cursor
            ahead = fetcher.submit(fetch, 1)
            while number <= total_pages:
                page, table, where = ahead.result()
                paging.check(number, page, where)
                total_pages = page.total_pages
                if number < total_pages:  # the next page travels and is typed while dlt writes this one
                    ahead = fetcher.submit(fetch, number + 1)
                if table is not None:
                    stamps = table.column(UPDATED_AT).drop_null()
                    if len(stamps):
                        top = pa.compute.max(stamps).as_py().astimezone(TZ)
                        newest = top if newest is None else max(newest, top)
                    fresh = versions.new_only(table)
                    stats.duplicates += table.num_rows - fresh.num_rows
                    if fresh.num_rows:
                        yield fresh
                number += 1
        if newest is not None:
            state["cursor"] = newest.isoformat()
        if cursor is None or stats.reconciled:  # a load from the first month is complete by construction
            state["reconciled_at"] = now.isoformat()

    return changed


# --------------------------------------------------------------------------------------------------
# one ingestion: API or export -> bronze, and which months it touched
# --------------------------------------------------------------------------------------------------


@dataclass
class DossierIngest:
    mode: str  # "api" or "export"
    report: IngestReport
    gateway: GatewayStats | None
    months: list[str]  # month partitions that received rows in this load


def loaded(lake: Lake, load_ids: list[str]) -> tuple[int, list[str]]:
    """Rows these loads wrote and the month partitions they landed in (read back from bronze:
    exactly what was written, after the de-duplication of versions bronze already held)."""
    if not load_ids or not lake.exists("bronze", TABLE):
        return 0, []
    found = lake.scan("bronze", TABLE).filter(pl.col(LOAD_ID).is_in(load_ids)).group_by(MONTH).len().collect()
    return int(found.get_column("len").sum()), sorted(m for m in found.get_column(MONTH).to_list() if m)


def ingest(
    lake: Lake,
    dlt_dir: str,
    landing: Landing,
    key: bytes,
    gateway: Gateway | None,
    sleep: Callable = time.sleep,
    settle_seconds: float = SETTLE_SECONDS,
    feed: Feed = FEED,
    partition: str | None = None,
    rows: pl.Expr | None = None,
) -> DossierIngest:
    """Load what is new into bronze: from the gateway when configured, else from the export files (`feed`:
    the dossier feed under a former province's landing folder, loaded into its `partition` of bronze; `rows`:
    which of bronze's rows are that province's, those a gateway's versions are compared with)."""
    report = IngestReport()
    stats = GatewayStats() if gateway else None
    ahead = DigestsAhead()
    candidates, fates = survey(feed, landing, settle_seconds)
    if gateway:  # the export files wait: the gateway is the source while it is configured
        why = (
            f"the gateway API is configured ({gateway.host}): export files are not read",
            f"đang dùng API của trục liên thông ({gateway.host}): không đọc tệp xuất",
        )
        fates += [fate_of(feed, c.file, "ignored", *why) for c in candidates]
        resource = gateway_resource(gateway, key, stats or GatewayStats(), lake, sleep, partition, rows)
    else:
        refused = refused_earlier(lake, TABLE, partition)
        resource = export_resource(landing, report, key, ahead, candidates=candidates, refused=refused, feed=feed)
    report.fates.extend(fates)
    try:
        report.load_ids = load(lake, dlt_dir, TABLE, resource, partition)  # crash-safe: finishes a killed run's
    finally:
        ahead.close()
    report.rows, months = loaded(lake, report.load_ids)
    return DossierIngest("api" if gateway else "export", report, stats, months)
