"""Sample delivery of the carriers' BTS registers: Sóc Trăng as of 2022-04-30, the founding report's figures.

1,268 sites (958 carrying 2G, 1,124 3G, 906 4G, 3 5G) as four carriers' registers, each in its own
shape (landing-zone contract, feed 2):

| file | shape |
|---|---|
| `viettel_20220430.csv` | UTF-8 with BOM, `;`-separated, `105,971234` decimals, `dd/mm/yyyy`, `2G, 3G` |
| `vinaphone_20220430.xlsx` | title rows above an upper-case header without accents; no `Doanh nghiệp`; `2G/3G` |
| `mobifone_20220430.csv` | `,`-separated, all quoted, NFD lower-case headers, mixed decimals, ISO dates, `2G+4G` |
| `vietnamobile_20220430.xlsx` | title row, no `Doanh nghiệp` and no district column (`P.1, TP Sóc Trăng`) |
| `viettel_20220131.xlsx` | Viettel's older register, superseded by its April file (both stay in bronze) |

Sites are shared between carriers by shared-site code (members up to 50 m apart), by distance
(≤ 15 m, including chains whose ends are more than 20 m apart), and by both; some distinct sites
stand 25–35 m apart and must stay two. `NO_SITE_COMMUNES` have no site, `NO_4G_COMMUNES` no 4G
site. `BAD_ROWS` lists each row the gate must refuse with the rule(s) it breaks. `design(seed)`
is the truth the tests compare the pipeline with.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path

from ioc_pipeline.sample.places import (
    DISTRICT_ABBREVIATIONS,
    METRES_PER_DEGREE,
    Commune,
    abbreviated,
    communes,
    district_spelling,
    district_type,
    metres,
    offset,
    plain,
)
from ioc_pipeline.sample.variations import nfd, vn_decimal

AS_OF = date(2022, 4, 30)
PREVIOUS = date(2022, 1, 31)
CARRIERS = ("viettel", "vinaphone", "mobifone", "vietnamobile")
FOLDER = "telecom/bts"
NEWEST_FILES = {
    "viettel": f"{FOLDER}/viettel_{AS_OF:%Y%m%d}.csv",
    "vinaphone": f"{FOLDER}/vinaphone_{AS_OF:%Y%m%d}.xlsx",
    "mobifone": f"{FOLDER}/mobifone_{AS_OF:%Y%m%d}.csv",
    "vietnamobile": f"{FOLDER}/vietnamobile_{AS_OF:%Y%m%d}.xlsx",
}
OLDER_FILE = f"{FOLDER}/viettel_{PREVIOUS:%Y%m%d}.xlsx"

# site technology sets: 1,268 sites; 2G 958, 3G 1,124, 4G 906, 5G 3 (the founding report)
TECH_MIX: dict[tuple[str, ...], int] = {
    ("2G", "3G", "4G"): 700,
    ("3G", "4G"): 150,
    ("2G", "3G"): 145,
    ("2G",): 91,
    ("3G",): 126,
    ("4G",): 33,
    ("2G", "4G"): 20,
    ("2G", "3G", "4G", "5G"): 2,
    ("3G", "4G", "5G"): 1,
}
NO_SITE_COMMUNES = ("31636", "31753")  # Xã An Thạnh Nam (Cù Lao Dung), Xã Mỹ Quới (Ngã Năm)
NO_4G_COMMUNES = ("31546", "31603", "31705", "31780", "31795")  # Ba Trinh, Mỹ Phước, Viên Bình, Châu Hưng, Vĩnh Hải
FIVE_G_DISTRICT = "941"  # the 5G trial sites are in TP Sóc Trăng

SHARED_BY_CODE = (90, 20)  # sites shared by code by two carriers, by three
SHARED_BY_DISTANCE = 60  # two carriers within 15 m, no code
CHAINS = 6  # three stations 12-15 m apart in a line, ends more than 20 m apart
CODE_AND_DISTANCE = 6  # two stations with a code 30-50 m apart, a third within 10 m of one, no code
SAME_CARRIER_PAIRS = 5  # one carrier's two stations on one mast (3-8 m)
NEAR_MISSES = 30  # pairs of distinct single-station sites 25-35 m apart: two sites each
MIN_SEPARATION_M = 150.0  # between site anchors
SINGLE_CARRIER_WEIGHTS = {"viettel": 0.42, "vinaphone": 0.25, "mobifone": 0.23, "vietnamobile": 0.10}
CODE_COLUMN_CARRIERS = ("viettel", "vinaphone", "mobifone")  # the registers with `Mã vị trí dùng chung`


# Rows the gate must refuse: (carrier, the rules each breaks, the change to a valid row).
BAD_ROWS: list[tuple[str, tuple[str, ...], dict[str, object]]] = [
    ("viettel", ("station_code_required",), {"code": ""}),
    ("mobifone", ("station_code_unique",), {"code": "MBF_STG_DUP"}),
    ("mobifone", ("station_code_unique",), {"code": "MBF_STG_DUP"}),
    ("viettel", ("carrier_known",), {"carrier": "Gtel Mobile"}),
    ("mobifone", ("carrier_matches_file",), {"carrier": "Viettel"}),
    ("viettel", ("longitude_required",), {"lon": ""}),
    ("vinaphone", ("latitude_required",), {"lat": None}),
    ("mobifone", ("longitude_numeric",), {"lon": "105°58'12\"E"}),
    ("viettel", ("latitude_numeric",), {"lat": "9,6O12"}),
    ("vinaphone", ("longitude_in_province",), {"lon": 106.78}),
    ("viettel", ("latitude_in_province",), {"lat": "10,045200"}),
    ("mobifone", ("longitude_in_province", "latitude_in_province"), {"swap": True}),
    ("vietnamobile", ("technologies_required",), {"tech": " "}),
    ("viettel", ("technology_known",), {"tech": "2G, LTE-A"}),
    ("mobifone", ("technology_known",), {"tech": "4G+6G"}),
    ("viettel", ("unit_unknown",), {"commune": "Phường 12", "district": "TP. Sóc Trăng"}),
    ("vinaphone", ("unit_unknown",), {"commune": "Xa An Hiep", "district": "Huyen Ke Sach"}),
    ("mobifone", ("unit_unknown",), {"commune": "Xã Tân Phú Thạnh"}),
    ("vietnamobile", ("unit_ambiguous",), {"commune": "Phường 1"}),
    ("viettel", ("unit_ambiguous",), {"commune": "Long Phú", "district": "Huyện Long Phú"}),
    ("mobifone", ("unit_missing",), {"commune": "N/A"}),
    ("viettel", ("on_air_date_date",), {"on_air": "31/02/2021"}),
]

STREETS = ["Trần Hưng Đạo", "Lê Hồng Phong", "Phú Lợi", "Nguyễn Văn Linh", "Lê Lợi", "Hùng Vương", "Mạc Đĩnh Chi"]
HAMLETS = ["Phú Thứ", "Tân Mỹ", "An Hòa", "Bưng Cốc", "Mỹ Hòa", "Hòa Thành", "Trà Canh", "Sóc Vồ", "Xóm Mới"]


@dataclass(frozen=True)
class Station:
    carrier: str
    code: str
    name: str
    lon: float
    lat: float
    commune: Commune
    technologies: tuple[str, ...]
    shared_code: str | None
    on_air: date
    address: str
    site: int  # index of the designed site


@dataclass
class Design:
    """The truth of the sample: stations (with the site each belongs to) and the sites' technologies."""

    stations: list[Station]
    site_technologies: list[tuple[str, ...]]
    site_kinds: list[str]
    older: list[Station] = field(default_factory=list)  # Viettel's January register

    def sites_of_commune(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for site in {(s.site, s.commune.code) for s in self.stations}:
            counts[site[1]] = counts.get(site[1], 0) + 1
        return counts


def _allocate(rng: random.Random, places: list[Commune]) -> dict[str, int]:
    """Sites per commune: weighted by unit type (wards and towns are denser), at least 3, total 1,268."""
    total = sum(TECH_MIX.values())
    weight = {"Phường": 2.2, "Thị trấn": 2.0, "Xã": 1.0}
    eligible = [c for c in places if c.code not in NO_SITE_COMMUNES]
    raw = {c.code: weight[c.unit_type] * rng.uniform(0.8, 1.2) for c in eligible}
    scale = total / sum(raw.values())
    counts = {code: max(3, int(w * scale)) for code, w in raw.items()}
    remainders = sorted(raw, key=lambda code: raw[code] * scale - int(raw[code] * scale), reverse=True)
    i = 0
    while sum(counts.values()) != total:
        code = remainders[i % len(remainders)]
        step = 1 if sum(counts.values()) < total else -1
        if counts[code] + step >= 3:
            counts[code] += step
        i += 1
    return counts


class _Placer:
    """Random points around commune centres, at least MIN_SEPARATION_M apart (a grid of that size)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cells: dict[tuple[int, int], list[tuple[float, float]]] = {}
        from ioc_pipeline.units import province_bbox

        min_lon, min_lat, max_lon, max_lat = province_bbox()
        self.box = (min_lon + 0.005, min_lat + 0.005, max_lon - 0.005, max_lat - 0.005)

    def _cell(self, lon: float, lat: float) -> tuple[int, int]:
        size = MIN_SEPARATION_M / METRES_PER_DEGREE
        return int(lon // size), int(lat // size)

    def _free(self, lon: float, lat: float) -> bool:
        cx, cy = self._cell(lon, lat)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for olon, olat in self.cells.get((cx + dx, cy + dy), ()):
                    if metres(lon, lat, olon, olat) < MIN_SEPARATION_M:
                        return False
        return True

    def place(self, commune: Commune) -> tuple[float, float]:
        radius = commune.radius_m
        while True:
            for _ in range(60):
                distance = radius * math.sqrt(self.rng.random())
                lon, lat = offset(commune.lon, commune.lat, distance, self.rng.uniform(0, 2 * math.pi))
                inside = self.box[0] < lon < self.box[2] and self.box[1] < lat < self.box[3]
                if inside and self._free(lon, lat):
                    self.cells.setdefault(self._cell(lon, lat), []).append((lon, lat))
                    return lon, lat
            radius *= 1.25  # crowded: widen the commune's circle a little


def _split_technologies(rng: random.Random, techs: tuple[str, ...], carriers: list[str]) -> list[tuple[str, ...]]:
    """Each station gets a non-empty share; together they carry exactly the site's set (5G only on Viettel)."""
    shares: list[set[str]] = []
    for carrier in carriers:
        pool = [t for t in techs if t != "5G" or carrier == "viettel"]
        shares.append(set(rng.sample(pool, rng.randint(1, len(pool)))) if pool else set())
    for tech in techs:
        if not any(tech in s for s in shares):
            holders = [i for i, c in enumerate(carriers) if tech != "5G" or c == "viettel"]
            shares[rng.choice(holders)].add(tech)
    for share in shares:
        if not share:
            share.add(next(t for t in techs if t != "5G"))
    return [tuple(sorted(s)) for s in shares]


def _weighted_carrier(rng: random.Random) -> str:
    return rng.choices(list(SINGLE_CARRIER_WEIGHTS), weights=list(SINGLE_CARRIER_WEIGHTS.values()))[0]


def design(seed: int) -> Design:
    """Sites, their technologies, communes and carriers; then each carrier's stations on them."""
    rng = random.Random(seed * 31 + 2)
    places = communes()
    by_code = {c.code: c for c in places}
    counts = _allocate(rng, places)
    slots = [code for code in sorted(counts) for _ in range(counts[code])]

    # technology sets to slots: 5G in TP Sóc Trăng, no 4G in NO_4G_COMMUNES, the rest at random
    sets = [techs for techs, n in TECH_MIX.items() for _ in range(n)]
    rng.shuffle(sets)
    techs_of: list[tuple[str, ...] | None] = [None] * len(slots)
    five_g = [t for t in sets if "5G" in t]
    without_4g = [t for t in sets if "4G" not in t]
    rest = [t for t in sets if "5G" not in t and "4G" in t]
    city = [i for i, code in enumerate(slots) if by_code[code].district_code == FIVE_G_DISTRICT]
    for i, techs in zip(rng.sample(city, len(five_g)), five_g, strict=True):
        techs_of[i] = techs
    for i, code in enumerate(slots):
        if code in NO_4G_COMMUNES:
            techs_of[i] = without_4g.pop()
    rest += without_4g
    rng.shuffle(rest)
    for i in range(len(slots)):
        if techs_of[i] is None:
            techs_of[i] = rest.pop()
    site_techs: list[tuple[str, ...]] = [t for t in techs_of if t is not None]

    # kinds of sites: near-miss pairs take two slots of one commune, the rest one slot each
    order = list(range(len(slots)))
    rng.shuffle(order)
    kinds = ["single"] * len(slots)
    five_g_sites = {i for i, t in enumerate(site_techs) if "5G" in t}
    paired: dict[int, int] = {}
    by_commune: dict[str, list[int]] = {}
    for i in order:
        if i not in five_g_sites:
            by_commune.setdefault(slots[i], []).append(i)
    for code in rng.sample(sorted(c for c, v in by_commune.items() if len(v) >= 2), NEAR_MISSES):
        first, second = by_commune[code][:2]
        paired[second] = first
        kinds[first] = kinds[second] = "near_miss"
    free = [i for i in order if kinds[i] == "single" and i not in five_g_sites]
    plan = [("code_2", SHARED_BY_CODE[0]), ("code_3", SHARED_BY_CODE[1]), ("distance", SHARED_BY_DISTANCE)] + [
        ("chain", CHAINS),
        ("code_and_distance", CODE_AND_DISTANCE),
        ("same_carrier", SAME_CARRIER_PAIRS),
    ]
    cursor = 0
    for kind, n in plan:
        for i in free[cursor : cursor + n]:
            kinds[i] = kind
        cursor += n

    placer = _Placer(rng)
    anchors: dict[int, tuple[float, float]] = {}
    for i in range(len(slots)):
        if i not in paired:
            anchors[i] = placer.place(by_code[slots[i]])
    for second, first in paired.items():
        lon, lat = anchors[first]
        anchors[second] = offset(lon, lat, rng.uniform(25.0, 35.0), rng.uniform(0, 2 * math.pi))

    # stations per site
    members: list[tuple[int, str, float, float, str | None]] = []  # site, carrier, lon, lat, shared code
    shared_codes = iter(f"HTDC-STG-{n:04d}" for n in rng.sample(range(1, 10000), 400))
    for i in range(len(slots)):
        lon, lat, kind = anchors[i][0], anchors[i][1], kinds[i]
        bearing = rng.uniform(0, 2 * math.pi)
        if kind in ("code_2", "code_3"):
            carriers = rng.sample(CODE_COLUMN_CARRIERS, 2 if kind == "code_2" else 3)
            code = next(shared_codes)
            members.append((i, carriers[0], lon, lat, code))
            for carrier in carriers[1:]:
                members.append((i, carrier, *offset(lon, lat, rng.uniform(5.0, 50.0), rng.uniform(0, 6.28)), code))
        elif kind == "distance":
            a, b = rng.sample(CARRIERS, 2)
            members += [(i, a, lon, lat, None), (i, b, *offset(lon, lat, rng.uniform(2.0, 15.0), bearing), None)]
        elif kind == "chain":
            a, b, c = rng.sample(CARRIERS, 3)
            d1, d2 = rng.uniform(12.0, 15.0), rng.uniform(12.0, 15.0)
            members += [
                (i, a, lon, lat, None),
                (i, b, *offset(lon, lat, d1, bearing), None),
                (i, c, *offset(lon, lat, d1 + d2, bearing), None),
            ]
        elif kind == "code_and_distance":
            a, b = rng.sample(CODE_COLUMN_CARRIERS, 2)
            code = next(shared_codes)
            apart = offset(lon, lat, rng.uniform(30.0, 50.0), bearing)
            members += [
                (i, a, lon, lat, code),
                (i, b, *apart, code),
                (i, "vietnamobile", *offset(*apart, rng.uniform(3.0, 10.0), bearing + 1.5), None),
            ]
        elif kind == "same_carrier":
            members += [
                (i, "viettel", lon, lat, None),
                (i, "viettel", *offset(lon, lat, rng.uniform(3.0, 8.0), bearing), None),
            ]
        else:
            carrier = "viettel" if "5G" in site_techs[i] else _weighted_carrier(rng)
            members.append((i, carrier, lon, lat, None))

    by_site: dict[int, list[int]] = {}
    for n, (site, *_rest) in enumerate(members):
        by_site.setdefault(site, []).append(n)
    station_techs: dict[int, tuple[str, ...]] = {}
    for site, indexes in by_site.items():
        carriers = [members[n][1] for n in indexes]
        for n, techs in zip(indexes, _split_technologies(rng, site_techs[site], carriers), strict=True):
            station_techs[n] = techs

    numbers = {c: iter(rng.sample(range(1, 9000), 2000)) for c in CARRIERS}
    stations = []
    for n, (site, carrier, lon, lat, shared) in enumerate(members):
        commune = by_code[slots[site]]
        number = next(numbers[carrier])
        stations.append(
            Station(
                carrier=carrier,
                code=_station_code(carrier, number),
                name=f"{_short(commune)}_{number:04d}",
                lon=lon,
                lat=lat,
                commune=commune,
                technologies=station_techs[n],
                shared_code=shared,
                on_air=date(2006, 1, 1) + timedelta(days=rng.randrange(0, (AS_OF - date(2006, 1, 1)).days)),
                address=_address(rng, commune),
                site=site,
            )
        )
    older = _older_register(rng, [s for s in stations if s.carrier == "viettel"], numbers["viettel"], by_code)
    return Design(stations, site_techs, kinds, older)


def _short(commune: Commune) -> str:
    """`Phường 8` -> `P8`, `Xã Thới An Hội` -> `ThoiAnHoi` (how carriers name stations)."""
    bare = plain(commune.bare).replace(" ", "")
    return f"P{bare}" if bare.isdigit() else bare


def _station_code(carrier: str, number: int) -> str:
    return {
        "viettel": f"STG{number:04d}",
        "vinaphone": f"ST-VNP-{number:04d}",
        "mobifone": f"MBF_STG_{number:04d}",
        "vietnamobile": f"VNM{number:05d}",
    }[carrier]


def _address(rng: random.Random, commune: Commune) -> str:
    if commune.unit_type == "Phường":
        return f"Số {rng.randint(1, 400)} đường {rng.choice(STREETS)}"
    return f"Ấp {rng.choice(HAMLETS)}"


def _older_register(
    rng: random.Random, viettel: list[Station], numbers: Iterator[int], by_code: dict[str, Commune]
) -> list[Station]:
    """Viettel's January register: the stations on air by then, some still without 4G, and a few
    stations dismantled since (so the April file really supersedes it)."""
    older = []
    for s in viettel:
        if s.on_air > PREVIOUS:
            continue
        techs = s.technologies
        if "4G" in techs and len(techs) > 1 and rng.random() < 0.1:
            techs = tuple(t for t in techs if t != "4G")
        older.append(replace(s, technologies=techs))
    gone = rng.sample(sorted(by_code), 8)
    for code in gone:
        commune = by_code[code]
        older.append(
            Station(
                "viettel",
                _station_code("viettel", next(numbers)),
                f"{_short(commune)}_cu",
                *offset(commune.lon, commune.lat, rng.uniform(100, 300), rng.uniform(0, 6.28)),
                commune,
                ("2G",),
                None,
                date(2009, 5, 1),
                _address(rng, commune),
                -1,
            )
        )
    return older


# ---------------------------------------------------------------------------------------------------
# how each carrier writes its register
# ---------------------------------------------------------------------------------------------------

FIELDS = ("code", "name", "carrier", "lon", "lat", "address", "commune", "district", "tech", "shared", "on_air")
HEADERS = {
    "code": "Mã trạm",
    "name": "Tên trạm",
    "carrier": "Doanh nghiệp",
    "lon": "Kinh độ",
    "lat": "Vĩ độ",
    "address": "Địa chỉ",
    "commune": "Xã/Phường/Thị trấn",
    "district": "Huyện/Thị xã/Thành phố",
    "tech": "Công nghệ",
    "shared": "Mã vị trí dùng chung",
    "on_air": "Ngày phát sóng",
}
CARRIER_NAMES = {
    "viettel": ["Viettel", "Tập đoàn Công nghiệp - Viễn thông Quân đội (Viettel)"],
    "mobifone": ["MobiFone", "Tổng công ty Viễn thông MobiFone"],
}
FILE_FIELDS = {
    "viettel": FIELDS,
    "vinaphone": tuple(f for f in FIELDS if f != "carrier"),
    "mobifone": (*FIELDS, "note"),
    "vietnamobile": tuple(f for f in FIELDS if f not in ("carrier", "district", "shared")),
}


def spell(carrier: str, commune: Commune, rng: random.Random) -> tuple[str, str | None]:
    """(commune, district) as the carrier's register writes them."""
    if carrier == "viettel":
        name = commune.name if rng.random() < 0.6 else abbreviated(commune, rng)
        return name, district_spelling(commune, rng)
    if carrier == "vinaphone":
        name = rng.choice([commune.name, abbreviated(commune, rng)])
        return plain(name), district_spelling(commune, rng, without_accents=True)
    if carrier == "mobifone":
        name = rng.choice([commune.name, commune.name.lower(), abbreviated(commune, rng)])
        return nfd(name), nfd(district_spelling(commune, rng))
    # vietnamobile: no district column; a name several districts share carries its district after a comma
    if not commune.typed_unique:
        kind = district_type(commune.district_name)
        district = f"{DISTRICT_ABBREVIATIONS[kind]} {commune.district_name[len(kind) + 1 :]}"
        return f"{abbreviated(commune, rng)}, {district}", None
    if commune.bare_unique and rng.random() < 0.3:
        return commune.bare, None
    return rng.choice([commune.name, abbreviated(commune, rng)]), None


def _coordinate(carrier: str, value: float, rng: random.Random) -> object:
    if carrier == "viettel":
        return vn_decimal(value, 6)
    if carrier == "vinaphone":
        return value
    if carrier == "mobifone":
        return vn_decimal(value, 6) if rng.random() < 0.3 else f"{value:.6f}"
    return vn_decimal(value, 6) if rng.random() < 0.5 else value


def _technologies(carrier: str, techs: tuple[str, ...], rng: random.Random) -> str:
    if carrier == "viettel":
        return ", ".join(techs)
    if carrier == "vinaphone":
        return "/".join(techs)
    if carrier == "mobifone":
        return rng.choice(["+", ";", "; "]).join(techs)
    return ",".join(techs)


def _on_air(carrier: str, day: date) -> object:
    if carrier == "vinaphone":
        return datetime(day.year, day.month, day.day)
    if carrier == "mobifone":
        return day.isoformat()
    return day.strftime("%d/%m/%Y")


def record(station: Station, rng: random.Random) -> dict[str, object]:
    """A station as its carrier's register writes it (field names of FIELDS)."""
    commune, district = spell(station.carrier, station.commune, rng)
    carrier_name = rng.choice(CARRIER_NAMES.get(station.carrier, [station.carrier]))
    return {
        "code": station.code,
        "name": station.name,
        "carrier": carrier_name,
        "lon": _coordinate(station.carrier, station.lon, rng),
        "lat": _coordinate(station.carrier, station.lat, rng),
        "address": station.address,
        "commune": commune,
        "district": district,
        "tech": _technologies(station.carrier, station.technologies, rng),
        "shared": station.shared_code or "",
        "on_air": _on_air(station.carrier, station.on_air),
        "note": "",
    }


def bad_records(carrier: str, rng: random.Random, places: list[Commune]) -> list[dict[str, object]]:
    """The carrier's BAD_ROWS as rows: a valid station changed the way BAD_ROWS says."""
    rows = []
    for n, (who, _, change) in enumerate(BAD_ROWS):
        if who != carrier:
            continue
        commune = places[(n * 7) % len(places)]
        lon, lat = offset(commune.lon, commune.lat, 120.0, 1.0)
        code = _station_code(carrier, 9000 + n)
        techs = ("2G", "4G")
        base = Station(carrier, code, f"LOI_{n:02d}", lon, lat, commune, techs, None, date(2015, 6, 1), "Ấp Mới", -1)
        row = record(base, rng)
        if change.get("swap"):
            row["lon"], row["lat"] = row["lat"], row["lon"]
        row.update({k: v for k, v in change.items() if k != "swap"})
        rows.append(row)
    return rows


def write(out: Path, seed: int) -> list[Path]:
    truth = design(seed)
    rng = random.Random(seed * 31 + 3)
    places = communes()
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for carrier in CARRIERS:
        rows = [record(s, rng) for s in truth.stations if s.carrier == carrier]
        rows += bad_records(carrier, rng, places)
        rng.shuffle(rows)
        path = out / NEWEST_FILES[carrier]
        WRITERS[carrier](path, rows, rng)
        written.append(path)
    older = [record(s, rng) for s in truth.older]
    rng.shuffle(older)
    titles = ["DANH SÁCH TRẠM BTS VIETTEL SÓC TRĂNG", f"Tháng {PREVIOUS:%m/%Y}"]
    _xlsx(out / OLDER_FILE, older, FIELDS, HEADERS.__getitem__, titles)
    written.append(out / OLDER_FILE)
    return written


def _viettel(path: Path, rows: list[dict[str, object]], rng: random.Random) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow([HEADERS[f] for f in FILE_FIELDS["viettel"]])
        writer.writerows([[row[f] if row[f] is not None else "" for f in FILE_FIELDS["viettel"]] for row in rows])


def _mobifone(path: Path, rows: list[dict[str, object]], rng: random.Random) -> None:
    fields = FILE_FIELDS["mobifone"]
    headers = {**HEADERS, "note": "Ghi chú"}
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=",", quoting=csv.QUOTE_ALL)
        writer.writerow([f" {nfd(headers[f].lower())} " for f in fields])
        writer.writerows([[row[f] if row[f] is not None else "" for f in fields] for row in rows])


def _vinaphone(path: Path, rows: list[dict[str, object]], rng: random.Random) -> None:
    titles = [
        "TẬP ĐOÀN BƯU CHÍNH VIỄN THÔNG VIỆT NAM - VNPT VINAPHONE",
        f"DANH SÁCH TRẠM BTS ĐẾN NGÀY {AS_OF:%d/%m/%Y}",
    ]
    _xlsx(path, rows, FILE_FIELDS["vinaphone"], lambda f: plain(HEADERS[f]).upper(), titles)


def _vietnamobile(path: Path, rows: list[dict[str, object]], rng: random.Random) -> None:
    _xlsx(path, rows, FILE_FIELDS["vietnamobile"], lambda f: HEADERS[f].title(), ["Vietnamobile - Sóc Trăng"])


def _xlsx(
    path: Path, rows: list[dict[str, object]], fields: tuple[str, ...], header: Callable[[str], str], titles: list[str]
) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "BTS"
    for title in titles:
        sheet.append([title])
    sheet.append([])
    sheet.append([header(f) for f in fields])
    for row in rows:
        sheet.append([row[f] for f in fields])
    book.save(path)


WRITERS = {"viettel": _viettel, "vinaphone": _vinaphone, "mobifone": _mobifone, "vietnamobile": _vietnamobile}
