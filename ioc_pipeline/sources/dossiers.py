"""Feed 4 of the landing-zone contract: one-stop-shop dossiers, from the gateway API or its export.

    GET {IOC_DOSSIER_API_URL}/dossiers?updated_from=…&page=n   (pages of JSON, bearer token)
      or landing/public_service/dossiers_YYYYMM.ndjson          (the export, when no URL is set)
        │ polars reads each page / 32 MB batch of lines: every value as text, no row-by-row Python
        │ ChuHoSo ──► applicant_id (keyed HMAC of the citizen ID); the rest of ChuHoSo is dropped HERE
        ▼
    dlt resource (Arrow tables) ──► lake/bronze/dossiers/<load_id>.<file_id>.parquet (append-only)

Bronze keeps every version as delivered (pseudonymised) plus `_updated_at` (NgayCapNhat parsed:
dlt's incremental cursor, and the version order) and `_month` (the month of receipt, the silver
partition the row belongs to, so a partition reads only its rows). The newest version of each
`MaHoSo` wins in silver: dlt's filesystem destination cannot merge plain Parquet.

Personal data never leaves this module: the applicant object is read as text, its citizen ID is
turned into a pseudonym and the column is dropped before the table is handed to dlt. Only the
contract's fields are kept (an allow-list: an unknown field of a personal-data feed may carry
personal data). Error messages name files, lines, pages and fields, never delivered values.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import dlt
import orjson
import polars as pl
import pyarrow as pa
import requests

from ioc_pipeline import parsing, pii
from ioc_pipeline.lake import FileInfo, Lake, Landing
from ioc_pipeline.sources.files import (
    FILE_HASH,
    LOAD_ID,
    SNAPSHOT,
    SOURCE_FILE,
    SOURCE_ROW,
    DeliveryError,
    Feed,
    IngestReport,
    file_resource,
    loaded_before,
    pipeline,
    snapshot_of,
)

if TYPE_CHECKING:
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

FEED = Feed(
    table=TABLE,
    patterns=("public_service/dossiers_*.ndjson",),
    columns={k: v for k, v in FIELDS.items()},
    required=("dossier_code",),
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


def read_export(
    landing: Landing, file: FileInfo, feed: Feed, key: bytes, ahead: DigestsAhead | None = None
) -> tuple[str, Iterator[pa.Table]]:
    """The `files.Reader` of the export: its digest now, its batches as they are read."""
    snapshot = snapshot_of(file.path)
    digest, content = ahead.digest(landing, file, feed) if ahead else _digest(landing, file.path)
    if not content:
        raise DeliveryError(file.path, "the file is empty")

    def batches() -> Iterator[pa.Table]:
        line = 1
        rest = b""
        with landing.open(file.path) as handle:
            while True:
                block = handle.read(CHUNK_BYTES)
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
                    yield to_bronze(frame, key, file.path, numbers, snapshot, digest, error_series)
                if not block:
                    break

    return digest, read_ahead(batches())


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


def export_resource(landing: Landing, report: IngestReport, key: bytes, ahead: DigestsAhead | None = None) -> Any:
    return file_resource(FEED, landing, report, read=partial(read_export, key=key, ahead=ahead))


# --------------------------------------------------------------------------------------------------
# the gateway API
# --------------------------------------------------------------------------------------------------


class GatewayError(RuntimeError):
    """The gateway answered something the pipeline cannot use (after retries, where they apply)."""


class GatewayAuthError(GatewayError):
    """The gateway refused the token: retrying cannot help."""


@dataclass(frozen=True)
class Gateway:
    """How to reach the gateway; `token` is never logged or put in a message."""

    url: str
    token: str = field(repr=False)
    page_size: int = 20000
    timeout: float = 60.0
    max_attempts: int = 6
    backoff: float = 1.0  # seconds before the first retry; doubled each time, at most 60 s
    first_updated_from: datetime = datetime(FIRST_MONTH.year, FIRST_MONTH.month, 1, tzinfo=TZ)


@dataclass
class GatewayStats:
    pages: int = 0
    requests: int = 0
    retries: int = 0
    rows: int = 0  # versions answered (the boundary version is answered again, and dropped by dlt)
    updated_from: str | None = None
    retried_statuses: dict[str, int] = field(default_factory=dict)


def _page_request(
    session: requests.Session, gateway: Gateway, params: dict[str, Any], stats: GatewayStats, sleep: Callable
) -> bytes:
    """One page, with retries on 429, 5xx and broken connections (back-off, honouring Retry-After)."""
    url = f"{gateway.url.rstrip('/')}/dossiers"
    where = f"GET {url}?{urlencode(params)}"
    for attempt in range(1, gateway.max_attempts + 1):
        stats.requests += 1
        try:
            answer = session.get(url, params=params, timeout=gateway.timeout)
        except (requests.ConnectionError, requests.Timeout) as error:
            status, retry_after = type(error).__name__, None
        else:
            if answer.status_code == 200:
                return answer.content
            if answer.status_code in (401, 403):
                raise GatewayAuthError(
                    f"the dossier gateway refused the token (HTTP {answer.status_code}) for {where}: "
                    "check IOC_DOSSIER_API_TOKEN (not retried)"
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
    "total_pages": pl.Int64,
}


def _read_page(body: bytes, where: str) -> tuple[pl.DataFrame, int]:
    """A page's records as text columns: polars reads the page whole (fast); a page it cannot type
    (an applicant that is not an object, say) is re-read record by record through orjson."""
    try:
        page = pl.read_json(io.BytesIO(body), schema=PAGE_SCHEMA)
        total_pages = page.get_column("total_pages")[0]
        records = page.select(pl.col("data").explode()).unnest("data")
        if records.height == 1 and all(v is None for v in records.row(0)):
            records = records.clear()  # "data": [] explodes into one null row
    except Exception:  # noqa: BLE001 - polars' message may quote delivered (personal) values
        try:
            parsed = orjson.loads(body)
            total_pages = parsed.get("total_pages")
            data = parsed.get("data") or []
            records = _read_lines([orjson.dumps(item) for item in data]) if data else pl.DataFrame(schema=READ_SCHEMA)
        except Exception as error:  # noqa: BLE001
            raise GatewayError(
                f"{where}: the answer is not the contract's JSON page ({type(error).__name__})"
            ) from None
    if total_pages is None:
        raise GatewayError(f"{where}: the answer has no total_pages")
    return records, int(total_pages)


def gateway_resource(gateway: Gateway, key: bytes, stats: GatewayStats, sleep: Callable = time.sleep) -> Any:
    """Pages of changed dossier versions since the last successful load (dlt incremental state)."""

    @dlt.resource(name=TABLE, write_disposition="append")
    def changed(
        updated: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008 - dlt's idiom
            UPDATED_AT,
            initial_value=gateway.first_updated_from,
            primary_key=("dossier_code", UPDATED_AT),
            on_cursor_value_missing="include",
        ),
    ) -> Iterator[pa.Table]:
        since = updated.last_value or gateway.first_updated_from
        since_text = since.astimezone(TZ).isoformat()
        stats.updated_from = since_text
        snapshot = datetime.now(TZ).date().isoformat()
        with requests.Session() as session, ThreadPoolExecutor(1, thread_name_prefix="gateway") as fetcher:
            session.headers["Authorization"] = f"Bearer {gateway.token}"
            session.headers["Accept"] = "application/json"

            def fetch(page: int) -> tuple[pa.Table | None, int]:
                """One page fetched, read, pseudonymised and typed (in the fetcher thread)."""
                params = {"updated_from": since_text, "page": page, "page_size": gateway.page_size}
                where = f"gateway /dossiers?{urlencode(params)}"
                records, total = _read_page(_page_request(session, gateway, params, stats, sleep), where)
                stats.pages += 1
                if not records.height:
                    return None, total
                stats.rows += records.height
                return to_bronze(records, key, where, range(1, records.height + 1), snapshot, None), total

            page, total_pages = 1, 1
            ahead = fetcher.submit(fetch, 1)
            while page <= total_pages:
                table, total_pages = ahead.result()
                if page < total_pages:  # the next page travels and is typed while dlt writes this one
                    ahead = fetcher.submit(fetch, page + 1)
                if table is not None:
                    yield table
                page += 1

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
    exactly what was written, after dlt's incremental de-duplication of the boundary version)."""
    if not load_ids or not lake.exists("bronze", TABLE):
        return 0, []
    found = lake.scan("bronze", TABLE).filter(pl.col(LOAD_ID).is_in(load_ids)).group_by(MONTH).len().collect()
    return int(found.get_column("len").sum()), sorted(m for m in found.get_column(MONTH).to_list() if m)


def ingest(
    lake: Lake, dlt_dir: str, landing: Landing, key: bytes, gateway: Gateway | None, sleep: Callable = time.sleep
) -> DossierIngest:
    """Load what is new into bronze: from the gateway when configured, else from the export files."""
    report = IngestReport()
    stats = GatewayStats() if gateway else None
    ahead = DigestsAhead()
    resource = (
        gateway_resource(gateway, key, stats, sleep)
        if gateway and stats
        else export_resource(landing, report, key, ahead)
    )
    try:
        info = pipeline(lake, dlt_dir, TABLE).run(resource, loader_file_format="parquet")
    finally:
        ahead.close()
    info.raise_on_failed_jobs()
    report.load_ids = list(info.loads_ids)
    report.rows, months = loaded(lake, report.load_ids)
    return DossierIngest("api" if gateway else "export", report, stats, months)
