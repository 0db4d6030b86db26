"""Sample one-stop-shop dossiers (feed 4): the export files `public_service/dossiers_YYYYMM.ndjson`.

Dossiers received January–April 2022 for the catalog's procedures and agencies (read from the
procedure sample generator), each delivered as several versions (one per status change, NgayCapNhat
increasing), in the month file of the change. Everything the contract varies is exercised: the three
channels by code or name, the ten statuses by code or name, booleans in every spelling, units by
name (several spellings) or GSO code, datetimes in every form; outcomes on time, late, still open
(overdue or not), supplemented more than once, withdrawn, refused, stopped; and `BAD_ROWS`, one or
more dossiers of each kind the gate refuses. `ChuHoSo` carries fake but realistic personal data
(Vietnamese names, 12-digit citizen IDs, phone numbers, addresses) so that tests can prove none of
it gets through.

`write` writes the small committed sample; `write_scaled` streams about N million versions a year
to disk (for the benchmark) without holding the history in memory.
"""

from __future__ import annotations

import calendar
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import IO, Any

from ioc_pipeline.sample import procedures
from ioc_pipeline.sample.variations import maybe_nfd
from ioc_pipeline.vocabularies import DOSSIER_CHANNELS, DOSSIER_STATUS_NAMES

YEAR = 2022
SAMPLE_MONTHS = 4
SAMPLE_DOSSIERS = 1000
VERSIONS_PER_DOSSIER = 4.6  # the scaled generator's average (every status change delivered), measured
FOLDER = "public_service"
SAMPLE_PROVINCE = "94"  # Sóc Trăng: the committed sample's
CODE_PREFIXES = {"94": "H60"}  # of a province's dossier codes; another province: H<code>
# district name prefixes and the short forms clerks type ("TP. Vị Thanh", "Q. Ninh Kiều")
DISTRICT_ABBREVIATIONS = {"Thành phố": "TP.", "Thị xã": "TX.", "Quận": "Q.", "Huyện": "H."}

TRUE_FORMS: list[Any] = [True, "true", 1, "1", "Có", "có", "CÓ", "Co", "TRUE"]
FALSE_FORMS: list[Any] = [False, "false", 0, "0", "Không", "không", "KHONG", "False"]
DEADLINE_DAYS = [1, 3, 5, 5, 7, 10, 10, 15, 20]

SURNAMES = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Huỳnh",
    "Hoàng",
    "Phan",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
    "Thạch",
    "Sơn",
    "Lâm",
    "Kim",
    "Danh",
    "Châu",
    "Tăng",
    "Quách",
]
MIDDLE_M = ["Văn", "Hữu", "Minh", "Quốc", "Thanh", "Đức", "Công", "Hoàng", "Tấn", "Ngọc"]
MIDDLE_F = ["Thị", "Ngọc", "Thanh", "Kim", "Mỹ", "Bích", "Hồng", "Thu", "Phương", "Diễm"]
GIVEN_M = [
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Hải",
    "Hiếu",
    "Hùng",
    "Khang",
    "Khoa",
    "Long",
    "Lộc",
    "Minh",
    "Nam",
    "Nghĩa",
    "Phúc",
    "Quang",
    "Sang",
    "Tài",
    "Thắng",
    "Toàn",
    "Trung",
    "Tuấn",
    "Vinh",
]
GIVEN_F = [
    "Anh",
    "Chi",
    "Diệp",
    "Dung",
    "Giang",
    "Hạnh",
    "Hương",
    "Lan",
    "Linh",
    "Loan",
    "Mai",
    "Ngân",
    "Nhung",
    "Oanh",
    "Phượng",
    "Quyên",
    "Thảo",
    "Trang",
    "Trinh",
    "Tuyết",
    "Vy",
    "Yến",
]
STREETS = [
    "Trần Hưng Đạo",
    "Lê Lợi",
    "Hùng Vương",
    "Nguyễn Huệ",
    "Phú Lợi",
    "Mạc Đĩnh Chi",
    "Lê Hồng Phong",
    "Tôn Đức Thắng",
    "Điện Biên Phủ",
    "Quốc lộ 1A",
]
PHONE_PREFIXES = [
    "090",
    "091",
    "093",
    "094",
    "096",
    "097",
    "098",
    "032",
    "033",
    "035",
    "037",
    "039",
    "070",
    "076",
    "077",
    "079",
    "081",
    "083",
    "085",
    "088",
]

# Dossiers the gate must refuse, each with the rule it breaks (the tests read this list).
# Each is a one-version dossier; `None` as a value deletes the field, "__line__" writes a broken line.
BAD_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("dossier_code_required", {"MaHoSo": ""}),
    ("dossier_code_required", {"MaHoSo": None}),
    ("status_required", {"TrangThaiHoSo": "-"}),
    ("status_known", {"TrangThaiHoSo": "11"}),
    ("status_known", {"TrangThaiHoSo": "Đang chờ duyệt"}),
    ("channel_required", {"KenhThucHien": None}),
    ("channel_known", {"KenhThucHien": 4}),
    ("channel_known", {"KenhThucHien": "Qua Zalo"}),
    ("agency_required", {"DonViXuLy": "N/A"}),
    ("received_at_required", {"NgayTiepNhan": ""}),
    ("received_at_datetime", {"NgayTiepNhan": "32/01/2022 08:00"}),
    ("received_in_range", {"NgayTiepNhan": "15/12/2021 08:00:00"}),
    ("updated_at_datetime", {"NgayCapNhat": "hôm qua"}),
    ("datetimes_readable", {"NgayHenTra": "31/04/2022"}),
    ("dates_in_order", {"NgayKetThucXuLy": "-1d"}),  # finished the day before receipt
    ("dates_in_order", {"NgayTra": "-2d"}),  # returned before it was finished
    ("dates_in_order", {"NgayHenTra": "-3d"}),  # due before receipt
    ("unit_resolved", {"DonViHanhChinh": "Xã Không Tồn Tại"}),
    ("unit_resolved", {"DonViHanhChinh": "Phường 1"}),  # three Phường 1 in Sóc Trăng: ambiguous
    ("supplement_count_valid", {"SoLanBoSung": "hai"}),
    ("supplement_count_valid", {"SoLanBoSung": -1}),
    ("flags_readable", {"DuocThanhToanTrucTuyen": "chưa rõ"}),
    ("record_readable", {"__line__": True}),
]
# Flagged by a warning check, kept in silver: a procedure code the catalog does not know.
UNKNOWN_PROCEDURES = ["2.999999", "1.000000"]


@dataclass(frozen=True)
class Procedure:
    code: str
    agency: str
    tier: str
    level: int


@dataclass(frozen=True)
class Person:
    name: str
    citizen_id: str
    phone: str
    address: str


@dataclass
class Context:
    procedures: list[Procedure]
    provincial_units: list[str]
    district_units: list[list[str]]  # spellings per district
    commune_units: list[list[str]]  # spellings per commune
    people: list[Person]
    prefix: str = "H60"  # of the dossier codes: Sóc Trăng's one-stop shop


def _unit_spellings(province: str = SAMPLE_PROVINCE) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Spellings of each unit of the former province that its resolver accepts (checked here, so the sample is
    consistent)."""
    from ioc_pipeline.units import UnitResolver, admin_units

    resolver = UnitResolver(province)
    units = admin_units((province,))
    old = units.filter((units["era"] == "pre_2025") & (units["province_code"] == province))
    names = dict(old.select("unit_code", "unit_name").iter_rows())
    districts: list[list[str]] = []
    communes: list[list[str]] = []
    for code, name in old.filter(old["level"] == "district").select("unit_code", "unit_name").iter_rows():
        short = name.split(" ", 2)[-1] if name.startswith(("Thành phố", "Thị xã")) else name.split(" ", 1)[-1]
        prefix = DISTRICT_ABBREVIATIONS[next(p for p in DISTRICT_ABBREVIATIONS if name.startswith(p))]
        options = [name, f"{prefix} {short}", name.upper(), code]
        districts.append([o for o in options if resolver.resolve(o, allow_district=True).unit_code == code])
    for code, name, parent in (
        old.filter(old["level"] == "commune").select("unit_code", "unit_name", "parent_code").iter_rows()
    ):
        district = names[parent]
        options = [
            f"{name}, {district}",
            name,
            code,
            f"{name.replace('Phường ', 'P.').replace('Thị trấn ', 'TT ').replace('Xã ', 'X. ')}, {district}",
        ]
        communes.append([o for o in options if resolver.resolve(o, allow_district=True).unit_code == code])
    return districts[0], districts, communes


def context(seed: int, province: str = SAMPLE_PROVINCE, catalog: list[dict[str, Any]] | None = None) -> Context:
    """What the dossiers refer to: the procedures of the catalog the province delivers (Sóc Trăng's: the
    procedure sample's), the province's own units."""
    if catalog is None:
        catalog = procedures.catalog(random.Random(seed))  # the same catalog the procedure sample delivers
    tiers = {"Cấp tỉnh": "province", "Cấp huyện": "district", "Cấp xã": "commune"}
    procs = []
    for row in catalog:
        tier = str(row["CapThucHien"]).replace(",", ";").split(";")[0].strip()
        level = int(str(row["MucDoDVC"])[-1])
        procs.append(Procedure(str(row["MaTTHC"]), str(row["CoQuanThucHien"]), tiers[tier], level))
    provincial, districts, communes = _unit_spellings(province)
    return Context(procs, provincial, districts, communes, [], CODE_PREFIXES.get(province, f"H{province}"))


def _person(rng: random.Random) -> Person:
    female = rng.random() < 0.5
    name = " ".join(
        [
            rng.choice(SURNAMES),
            rng.choice(MIDDLE_F if female else MIDDLE_M),
            rng.choice(GIVEN_F if female else GIVEN_M),
        ]
    )
    born = rng.randrange(1940, 2005)
    century = (0 if born < 2000 else 2) + (1 if female else 0)
    citizen_id = f"094{century}{born % 100:02d}{rng.randrange(10**6):06d}"
    phone = rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**7):07d}"
    address = f"Số {rng.randrange(1, 400)}, đường {rng.choice(STREETS)}, Phường {rng.randrange(1, 10)}, TP. Sóc Trăng"
    return Person(name, citizen_id, phone, address)


def _applicant(rng: random.Random, ctx: Context) -> dict[str, Any]:
    if ctx.people and rng.random() < 0.2:
        person = rng.choice(ctx.people)  # a repeat applicant
    else:
        person = _person(rng)
        if len(ctx.people) < 50_000:
            ctx.people.append(person)
        else:
            ctx.people[rng.randrange(len(ctx.people))] = person
    id_form = rng.random()
    citizen_id: Any = person.citizen_id
    if id_form < 0.05:
        citizen_id = int(person.citizen_id)  # a number: the leading zero is lost
    elif id_form < 0.1:
        citizen_id = " ".join(person.citizen_id[i : i + 3] for i in range(0, 12, 3))
    phone = person.phone if rng.random() < 0.8 else "+84" + person.phone[1:]
    return {
        "HoTen": maybe_nfd(rng, person.name),
        "SoGiayTo": citizen_id,
        "SoDienThoai": phone,
        "DiaChi": person.address,
    }


def _moment(rng: random.Random, moment: datetime) -> str:
    """A datetime in one of the contract's forms (whole minutes, so every form is exact)."""
    form = rng.randrange(5)
    if form == 0:
        return moment.strftime("%d/%m/%Y %H:%M:%S")
    if form == 1:
        return moment.strftime("%d/%m/%Y %H:%M")
    if form == 2:
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    if form == 3:
        return moment.strftime("%Y-%m-%dT%H:%M:%S+07:00")
    return (moment - timedelta(hours=7)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flag(rng: random.Random, value: bool | None) -> Any:
    if value is None:
        return None
    return rng.choice(TRUE_FORMS if value else FALSE_FORMS)


@cache
def _names() -> tuple[dict[int, str], dict[int, str]]:
    """Status and channel names as the pipeline reads them (`ioc_pipeline.vocabularies`)."""
    return DOSSIER_STATUS_NAMES, {code: name for code, (_, name) in DOSSIER_CHANNELS.items()}


def _code_or_name(rng: random.Random, code: int, names: dict[int, str]) -> Any:
    form = rng.randrange(4)
    return [code, str(code), names[code], maybe_nfd(rng, names[code].lower(), 0.5)][form]


def _working_time(rng: random.Random, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, rng.randrange(7, 17), rng.randrange(60))


def _add_working_days(moment: datetime, days: int) -> datetime:
    current = moment
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current.replace(hour=17, minute=0)


def dossier(
    rng: random.Random, ctx: Context, code: str, received: datetime, horizon: datetime, every_change: bool
) -> list[tuple[datetime, dict[str, Any]]]:
    """The versions of one dossier delivered up to `horizon`, oldest first (NgayCapNhat increasing)."""
    proc = rng.choice(ctx.procedures)
    online_share = {4: 0.65, 3: 0.4, 2: 0.05}[proc.level]
    roll = rng.random()
    channel = 2 if roll < online_share else (3 if roll > 0.95 else 1)
    if proc.tier == "province":
        unit = rng.choice(ctx.provincial_units)
    elif proc.tier == "district":
        unit = rng.choice(rng.choice(ctx.district_units))
    else:
        unit = rng.choice(rng.choice(ctx.commune_units))
    due = None if rng.random() < 0.05 else _add_working_days(received, rng.choice(DEADLINE_DAYS))
    has_fee = rng.random() < 0.5
    base = {
        "MaHoSo": code,
        "MaTTHC": proc.code,
        "DonViXuLy": maybe_nfd(rng, proc.agency, 0.05),
        "DonViHanhChinh": unit,
        "KenhThucHien": _code_or_name(rng, channel, _names()[1]),
        "NgayTiepNhan": _moment(rng, received),
        "NgayHenTra": _moment(rng, due) if due else rng.choice([None, "", "-"]),
        "SoLanBoSung": 0,
        "HoSoCoThanhPhanSoHoa": _flag(rng, rng.random() < 0.6),
        "ChuHoSo": _applicant(rng, ctx),
    }
    span = (due - received) if due else timedelta(days=rng.choice(DEADLINE_DAYS) * 1.4)
    outcome = rng.choices(
        ["on_time", "late", "stuck", "withdrawn", "refused", "stopped", "supplements"],
        [0.68, 0.12, 0.05, 0.04, 0.03, 0.03, 0.05],
    )[0]
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    start_status = 1 if channel == 2 else 2
    events.append((received, start_status, {}))
    if outcome == "refused":
        events = [(received, 3, {})]
    else:
        step = received + timedelta(minutes=rng.randrange(30, 600))
        if start_status == 1:
            events.append((step, 2, {}))
            step += timedelta(minutes=rng.randrange(10, 300))
        events.append((step, 4, {}))
        supplements = 2 if outcome == "supplements" else (1 if rng.random() < 0.1 else 0)
        for n in range(supplements):
            step += span * 0.1
            events.append((step, 5, {"SoLanBoSung": n + 1}))
            step += span * 0.05
            events.append((step, 4, {"SoLanBoSung": n + 1}))
        if has_fee and rng.random() < 0.3:
            step += timedelta(hours=rng.randrange(1, 24))
            events.append((step, 6, {}))
        if outcome == "withdrawn":
            events.append((step + span * 0.2, 7, {}))
        elif outcome == "stopped":
            events.append((step + span * 0.3, 8, {}))
        elif outcome != "stuck":
            if outcome == "late" and due:
                finished = due + timedelta(hours=rng.randrange(2, 240))
            else:
                finished = max(step + timedelta(minutes=30), received + span * rng.uniform(0.3, 0.95))
            finished = finished.replace(second=0, microsecond=0)
            returned = finished + timedelta(hours=rng.randrange(1, 72))
            paid = has_fee and channel == 2 and rng.random() < 0.7
            e_result = rng.random() < (0.7 if channel == 2 else 0.2)
            finish_fields = {
                "NgayKetThucXuLy": _moment(rng, finished),
                "DuocThanhToanTrucTuyen": _flag(rng, paid),
                "CoKetQuaDienTu": _flag(rng, e_result),
            }
            events.append((finished, 9, finish_fields))
            events.append((returned, 10, {**finish_fields, "NgayTra": _moment(rng, returned)}))
    events = [(t.replace(second=0, microsecond=0), s, f) for t, s, f in events if t <= horizon]
    if not every_change and len(events) > 2:  # the committed sample keeps a few versions per dossier
        middle = [e for e in events[1:-1] if rng.random() < 0.25]
        events = [events[0], *middle, events[-1]]
    versions = []
    state = dict(base)
    previous = None
    for moment, status, fields in events:
        if previous is not None and moment <= previous:
            moment = previous + timedelta(minutes=1)
        previous = moment
        state.update(fields)
        record = {
            **state,
            "TrangThaiHoSo": _code_or_name(rng, status, _names()[0]),
            "NgayCapNhat": _moment(rng, moment),
        }
        versions.append((moment, record))
    return versions


def _bad(rng: random.Random, ctx: Context, n: int, change: dict[str, Any], month: date) -> tuple[datetime, Any]:
    received = _working_time(rng, month + timedelta(days=3 + n % 20))
    due = _add_working_days(received, 5)
    finished = received + timedelta(days=2)
    record: dict[str, Any] = {
        "MaHoSo": f"{ctx.prefix}-{received:%y%m%d}-X{n:04d}",
        "MaTTHC": ctx.procedures[n % len(ctx.procedures)].code,
        "DonViXuLy": ctx.procedures[n % len(ctx.procedures)].agency,
        "DonViHanhChinh": ctx.provincial_units[0],
        "KenhThucHien": 1,
        "NgayTiepNhan": _moment(rng, received),
        "NgayHenTra": _moment(rng, due),
        "NgayKetThucXuLy": _moment(rng, finished),
        "NgayTra": _moment(rng, finished + timedelta(hours=3)),
        "TrangThaiHoSo": 10,
        "SoLanBoSung": 0,
        "DuocThanhToanTrucTuyen": False,
        "HoSoCoThanhPhanSoHoa": True,
        "CoKetQuaDienTu": False,
        "ChuHoSo": _applicant(rng, ctx),
        "NgayCapNhat": _moment(rng, finished + timedelta(hours=3)),
    }
    shifts = {
        "-1d": received - timedelta(days=1),
        "-2d": finished - timedelta(days=2),
        "-3d": received - timedelta(days=3),
    }
    for field, value in change.items():
        if value is None:
            record.pop(field, None)
        elif isinstance(value, str) and value in shifts:
            record[field] = _moment(rng, shifts[value])
        else:
            record[field] = value
    if "__line__" in record:
        applicant = json.dumps(record["ChuHoSo"], ensure_ascii=False)
        return finished, f'{{"MaHoSo": "{record["MaHoSo"]}", "TrangThaiHoSo": 4, "ChuHoSo": {applicant}'
    return finished + timedelta(hours=3), record


def _months(first: date, count: int) -> list[date]:
    out, current = [], first
    for _ in range(count):
        out.append(current)
        current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out


def _end(month: date) -> datetime:
    return datetime(month.year, month.month, calendar.monthrange(month.year, month.month)[1], 23, 59)


class _Files:
    """One open export file per month of change: versions are streamed to the month they changed in."""

    def __init__(self, out: Path, months: list[date]) -> None:
        folder = out / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = {(m.year, m.month): folder / f"dossiers_{m:%Y%m}.ndjson" for m in months}
        self.handles: dict[tuple[int, int], IO[str]] = {
            k: p.open("w", encoding="utf-8", newline="\n") for k, p in self.paths.items()
        }

    def write(self, moment: datetime, record: Any) -> None:
        line = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        self.handles[(moment.year, moment.month)].write(line + "\n")

    def close(self) -> list[Path]:
        for handle in self.handles.values():
            handle.close()
        return list(self.paths.values())


def _receipts(rng: random.Random, months: list[date], per_month: int) -> Iterator[datetime]:
    """Receipt times, in order, on working days."""
    for month in months:
        days = [
            d
            for d in range(1, calendar.monthrange(month.year, month.month)[1] + 1)
            if date(month.year, month.month, d).weekday() < 5
        ]
        counts = [0] * len(days)
        for _ in range(per_month):
            counts[rng.randrange(len(days))] += 1
        for day, count in zip(days, counts, strict=True):
            yield from sorted(_working_time(rng, date(month.year, month.month, day)) for _ in range(count))


def generate(
    out: Path, seed: int, dossiers_per_month: int, months: int, every_change: bool, ctx: Context | None = None
) -> list[Path]:
    """`ctx` names another former province's procedures and units (`context`); the dossier codes stay unique
    across provinces (each one-stop shop numbers its own)."""
    rng = random.Random(seed + 4)
    if ctx is None:
        ctx = context(seed)
    month_list = _months(date(YEAR, 1, 1), months)
    horizon = _end(month_list[-1])
    files = _Files(out, month_list)
    try:
        for n, received in enumerate(_receipts(rng, month_list, dossiers_per_month), start=1):
            code = f"{ctx.prefix}-{received:%y%m%d}-{n:07d}"
            for moment, record in dossier(rng, ctx, code, received, horizon, every_change):
                if n % 97 == 0 and len(record) and rng.random() < 0.5:
                    record = {**record, "MaTTHC": rng.choice(UNKNOWN_PROCEDURES)}
                if n % 89 == 0:
                    record = {**record, "GhiChu": "Cột thêm của hệ thống một cửa"}  # an unknown field
                files.write(moment, record)
        for index, month in enumerate(month_list):
            for n, (_, change) in enumerate(BAD_ROWS):
                if n % len(month_list) == index:
                    moment, record = _bad(rng, ctx, n + 100 * index, change, month)
                    files.write(min(moment, horizon), record)
    finally:
        paths = files.close()
    return paths


def write(out: Path, seed: int) -> list[Path]:
    """The committed sample: about 1,000 dossiers received January–April 2022, 2–3 versions each."""
    return generate(out, seed, SAMPLE_DOSSIERS // SAMPLE_MONTHS, SAMPLE_MONTHS, every_change=False)


def write_scaled(out: Path, seed: int, scale: float, months: int = 12, ctx: Context | None = None) -> list[Path]:
    """About `scale` million dossier versions a year (every status change), streamed to disk; `ctx`: another
    former province's (`context`)."""
    per_month = int(scale * 1_000_000 / VERSIONS_PER_DOSSIER / 12)
    return generate(out, seed, per_month, months, every_change=True, ctx=ctx)
