"""Administrative units of Sóc Trăng before and after the 2025 reform, and a resolver for their names.

Why this module exists: every feed of the landing zone names communes and districts in free text
(`TP. Sóc Trăng`, `P.2`, `tt Ke Sach`, NFC or NFD) and the IOC must report them under official GSO
codes, both as they were on the snapshot date and as they are after the 2025 reform (Sóc Trăng,
code 94, merged into Cần Thơ city, code 92; district level abolished). The contract forbids a
hand-written list of units, so everything here is read from the maintained package
`vietnamadminunits` (its SQLite file `data/dataset.db` and its old -> new conversion table
`data/converter_2025.json`).

No network, ever: the package's `convert_address` calls an online geocoder (ArcGIS) for split
communes when an address carries a street. This module never imports the package (importing it
loads `geopy` and builds that geocoder); it locates the package's data files with
`importlib.util.find_spec` and reads them directly (SQLite opened read-only, JSON), and builds the
crosswalk itself from the package's conversion data.

Tables (both cached, cheap to call repeatedly):

- `admin_units()` -> silver.admin_units, one row per (unit_code, era).
- `admin_unit_crosswalk()` -> silver.admin_unit_crosswalk, old Sóc Trăng commune -> new unit(s).

Names are resolved with `UnitResolver.resolve` / `resolve_many`.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import json
import math
import re
import sqlite3
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

import polars as pl

__all__ = [
    "NEW_PROVINCE_CODE",
    "OLD_PROVINCE_CODE",
    "REFORM_DATE",
    "Resolution",
    "UnitResolver",
    "admin_unit_crosswalk",
    "admin_units",
    "normalize_unit_name",
    "province_bbox",
    "resolve_columns",
]

REFORM_DATE: dt.date = dt.date(2025, 7, 1)
"""First day of the post-reform units (the 2025 arrangement took effect on 2025-07-01)."""
LAST_PRE_REFORM_DAY: dt.date = REFORM_DATE - dt.timedelta(days=1)
OLD_PROVINCE_CODE = "94"
NEW_PROVINCE_CODE = "92"

ERA_PRE = "pre_2025"
ERA_POST = "post_2025"

SOURCE_PACKAGE = "vietnamadminunits"

# Same missing tokens as ioc_pipeline.parsing.MISSING_TOKENS (compared case-insensitively, trimmed).
_MISSING_TOKENS = frozenset({"", "-", "n/a", "na", "null", "none"})

# The fixed vocabulary of Vietnamese unit types (not a list of units): used to split an official
# name into its type and its bare name, longest first so that "Thị xã" wins over "Xã".
_UNIT_TYPES: tuple[str, ...] = (
    "Thành phố",
    "Thị trấn",
    "Thị xã",
    "Đặc khu",
    "Phường",
    "Huyện",
    "Quận",
    "Tỉnh",
    "Xã",
)
_DISTRICT_TYPES = frozenset({"Thành phố", "Thị xã", "Huyện", "Quận"})
# Abbreviations accepted in front of a name (folded tokens -> unit type).
_ABBREVIATIONS: dict[tuple[str, ...], str] = {
    ("tp",): "Thành phố",
    ("tx",): "Thị xã",
    ("h",): "Huyện",
    ("q",): "Quận",
    ("p",): "Phường",
    ("tt",): "Thị trấn",
    ("x",): "Xã",
    ("t",): "Tỉnh",
}

_DOTTED_PAIR = re.compile(r"\bt\s*\.\s*([ptx])\b\.?")  # "T.P." / "T. X." / "T.T." -> "tp" / "tx" / "tt"
_WORD = re.compile(r"[^\W_]+")
_LETTERS_OR_DIGITS = re.compile(r"\d+|[^\W\d_]+")
_BOUNDS = re.compile(r"-?\d+(?:\.\d+)?")


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------


def _fold_token(token: str) -> str:
    """Lower-case token -> ASCII: diacritics dropped, "đ" -> "d"."""
    decomposed = unicodedata.normalize("NFD", token.replace("đ", "d"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """Split a name into aligned (folded, accented) token lists.

    NFC, lower case, "T.P."-style abbreviations joined, punctuation dropped, letters and digits
    separated ("P.2", "P2" -> "p", "2") and leading zeros removed from numbers ("02" -> "2").
    """
    text = unicodedata.normalize("NFC", text).lower()
    text = _DOTTED_PAIR.sub(lambda m: f" t{m.group(1)} ", text)
    accented: list[str] = []
    for word in _WORD.findall(text):
        for piece in _LETTERS_OR_DIGITS.findall(word):
            accented.append(str(int(piece)) if piece.isdigit() else piece)
    return [_fold_token(t) for t in accented], accented


def _prefix_tokens() -> list[tuple[tuple[str, ...], str]]:
    """Every accepted type prefix as folded tokens, longest first."""
    prefixes = {tuple(_tokens(t)[0]): t for t in _UNIT_TYPES}
    prefixes.update(_ABBREVIATIONS)
    return sorted(prefixes.items(), key=lambda kv: -len(kv[0]))


_PREFIXES = _prefix_tokens()


@dataclass(frozen=True)
class _Reading:
    """One way to read a name: an optional unit type and the bare name after it."""

    unit_type: str | None
    bare: str  # folded, spaceless
    bare_accented: str  # NFC lower case, spaceless


def _readings(folded: list[str], accented: list[str]) -> list[_Reading]:
    """All readings of a token list: the whole as a bare name, and each matching type prefix + rest.

    Both are kept because a bare name may begin like a prefix ("Xà Phiên" folds to "xa phien").
    """
    out = [_Reading(None, "".join(folded), "".join(accented))]
    for prefix, unit_type in _PREFIXES:
        n = len(prefix)
        if len(folded) > n and tuple(folded[:n]) == prefix:
            out.append(_Reading(unit_type, "".join(folded[n:]), "".join(accented[n:])))
    return out


def normalize_unit_name(text: str) -> str:
    """Folded comparison form of a name: "Phường 02" -> "phuong 2", "TP. Sóc Trăng" -> "tp soc trang"."""
    return " ".join(_tokens(text)[0])


def _split_official(name: str) -> tuple[str, str]:
    """Official name -> (unit type, bare name): "Thị trấn Kế Sách" -> ("Thị trấn", "Kế Sách")."""
    for unit_type in _UNIT_TYPES:
        if name.startswith(unit_type + " "):
            return unit_type, name[len(unit_type) + 1 :].strip()
    raise ValueError(f"unit name without a known type prefix: {name!r}")


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value).strip().lower() in _MISSING_TOKENS


# --------------------------------------------------------------------------------------------------
# Loading the package's data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    code: str
    name: str
    unit_type: str
    level: str  # "province" | "district" | "commune"
    era: str
    parent_code: str | None
    province_code: str
    district_code: str | None  # old district of a pre-reform commune (itself for a district)
    latitude: float | None
    longitude: float | None
    bare: str
    bare_accented: str


@dataclass(frozen=True)
class _Data:
    old_province: _Unit
    old_districts: dict[str, _Unit]
    old_communes: dict[str, _Unit]
    new_province: _Unit
    new_units: dict[str, _Unit]
    aliases: dict[str, tuple[str, ...]]  # old commune code -> package aliases (folded, spaceless keys)
    crosswalk: list[dict[str, Any]]
    primary: dict[str, str]  # old commune code -> primary new unit code
    bounds: tuple[float, float, float, float]  # (min_lon, min_lat, max_lon, max_lat)


def _data_dir() -> Path:
    """The package's data directory, found without importing the package (no geopy, no geocoder)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{SOURCE_PACKAGE} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _query(sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    uri = (_data_dir() / "dataset.db").as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def _make_unit(
    code: str,
    name: str,
    level: str,
    era: str,
    parent_code: str | None,
    province_code: str,
    district_code: str | None,
    lat: float | None,
    lon: float | None,
) -> _Unit:
    name = unicodedata.normalize("NFC", name).strip()
    unit_type, bare = _split_official(name)
    folded, accented = _tokens(bare)
    return _Unit(
        code=code,
        name=name,
        unit_type=unit_type,
        level=level,
        era=era,
        parent_code=parent_code,
        province_code=province_code,
        district_code=district_code,
        latitude=lat,
        longitude=lon,
        bare="".join(folded),
        bare_accented="".join(accented),
    )


def _parse_bounds(text: str | None) -> list[tuple[float, float]]:
    """'lat,lon – lat,lon' (the package's format) -> [(lat, lon), (lat, lon)]."""
    if not text:
        return []
    numbers = [float(x) for x in _BOUNDS.findall(text)]
    if len(numbers) != 4:
        return []
    return [(numbers[0], numbers[1]), (numbers[2], numbers[3])]


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def _unit_km(a: _Unit, b: _Unit) -> float | None:
    """Centroid distance between two units in km (2 decimals), None without coordinates."""
    if a.latitude is None or a.longitude is None or b.latitude is None or b.longitude is None:
        return None
    return round(_km(a.latitude, a.longitude, b.latitude, b.longitude), 2)


@functools.cache
def _load(old_province_code: str = OLD_PROVINCE_CODE) -> _Data:
    """Read one former province (pre-reform: Sóc Trăng 94 by default, or Hậu Giang 93, old Cần Thơ 92) and
    Cần Thơ city (92, post-reform), and build the crosswalk."""
    OLD_PROVINCE_CODE = old_province_code  # noqa: N806 - the rest of this function reads the one given
    old_rows = _query("SELECT * FROM admin_units_legacy WHERE provinceCode = ? ORDER BY wardCode", (OLD_PROVINCE_CODE,))
    new_rows = _query("SELECT * FROM admin_units WHERE provinceCode = ? ORDER BY wardCode", (NEW_PROVINCE_CODE,))
    if not old_rows or not new_rows:
        raise RuntimeError(f"{SOURCE_PACKAGE}: no units for province {OLD_PROVINCE_CODE} or {NEW_PROVINCE_CODE}")

    first = old_rows[0]
    old_province = _make_unit(
        OLD_PROVINCE_CODE,
        first["province"],
        "province",
        ERA_PRE,
        None,
        OLD_PROVINCE_CODE,
        None,
        first["provinceLat"],
        first["provinceLon"],
    )
    old_districts: dict[str, _Unit] = {}
    old_communes: dict[str, _Unit] = {}
    aliases: dict[str, tuple[str, ...]] = {}
    corners: list[tuple[float, float]] = _parse_bounds(first["provinceBounds"])
    for r in old_rows:
        dcode = r["districtCode"]
        if dcode not in old_districts:
            old_districts[dcode] = _make_unit(
                dcode,
                r["district"],
                "district",
                ERA_PRE,
                OLD_PROVINCE_CODE,
                OLD_PROVINCE_CODE,
                dcode,
                r["districtLat"],
                r["districtLon"],
            )
            corners += _parse_bounds(r["districtBounds"])
        old_communes[r["wardCode"]] = _make_unit(
            r["wardCode"],
            r["ward"],
            "commune",
            ERA_PRE,
            dcode,
            OLD_PROVINCE_CODE,
            dcode,
            r["wardLat"],
            r["wardLon"],
        )
        corners += _parse_bounds(r["wardBounds"])
        if r["wardAlias"]:
            aliases[r["wardCode"]] = tuple(json.loads(r["wardAlias"]))

    nfirst = new_rows[0]
    new_province = _make_unit(
        NEW_PROVINCE_CODE,
        nfirst["province"],
        "province",
        ERA_POST,
        None,
        NEW_PROVINCE_CODE,
        None,
        nfirst["provinceLat"],
        nfirst["provinceLon"],
    )
    new_units = {
        r["wardCode"]: _make_unit(
            r["wardCode"],
            r["ward"],
            "commune",
            ERA_POST,
            NEW_PROVINCE_CODE,
            NEW_PROVINCE_CODE,
            None,
            r["wardLat"],
            r["wardLon"],
        )
        for r in new_rows
    }
    new_by_key = {r["wardKey"]: new_units[r["wardCode"]] for r in new_rows}

    crosswalk, primary = _build_crosswalk(old_rows, old_communes, old_districts, new_by_key, nfirst["provinceKey"])
    lats = [c[0] for c in corners]
    lons = [c[1] for c in corners]
    return _Data(
        old_province=old_province,
        old_districts=old_districts,
        old_communes=old_communes,
        new_province=new_province,
        new_units=new_units,
        aliases=aliases,
        crosswalk=crosswalk,
        primary=primary,
        bounds=(min(lons), min(lats), max(lons), max(lats)),
    )


def _build_crosswalk(
    old_rows: list[dict[str, Any]],
    old_communes: dict[str, _Unit],
    old_districts: dict[str, _Unit],
    new_by_key: dict[str, _Unit],
    new_province_key: str,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Old commune -> new unit(s), from the package's `converter_2025.json` (no geocoding).

    The package keys old communes as "<provinceKey>_<districtKey>_<wardKey>". An old commune either
    appears in exactly one new unit's list (`DICT_PROVINCE_WARD_NO_DIVIDED`: not split) or has a list
    of candidate new units (`DICT_PROVINCE_WARD_DIVIDED`: split). Primary target, deterministically:
    the candidate the package marks `isDefaultNewWard` (the one its own `convert_address` returns
    for an address without a street); if none or several are marked, the candidate whose centroid
    is nearest the old commune's centroid; remaining ties by the lowest new unit code.
    """
    conv = json.loads((_data_dir() / "converter_2025.json").read_text(encoding="utf-8"))
    old_province_key = old_rows[0]["provinceKey"]
    merged_into = [k for k, v in conv["DICT_PROVINCE"].items() if old_province_key in v]
    if merged_into != [new_province_key]:
        raise RuntimeError(
            f"{SOURCE_PACKAGE}: province {old_province_key} merges into {merged_into}, expected {new_province_key}"
        )
    whole: dict[str, list[str]] = {}
    for new_key, old_keys in conv["DICT_PROVINCE_WARD_NO_DIVIDED"].get(new_province_key, {}).items():
        for old_key in old_keys:
            whole.setdefault(old_key, []).append(new_key)
    divided: dict[str, list[dict[str, Any]]] = conv["DICT_PROVINCE_WARD_DIVIDED"].get(new_province_key, {})

    rows: list[dict[str, Any]] = []
    primary: dict[str, str] = {}
    new_by_code = {u.code: u for u in new_by_key.values()}
    for r in old_rows:
        old = old_communes[r["wardCode"]]
        key = f"{r['provinceKey']}_{r['districtKey']}_{r['wardKey']}"
        candidates: dict[str, bool] = {}  # new unit code -> marked default by the package
        for new_key in whole.get(key, []):
            candidates[new_by_key[new_key].code] = True
        for cand in divided.get(key, []):
            code = new_by_key[cand["newWardKey"]].code
            candidates[code] = candidates.get(code, False) or bool(cand["isDefaultNewWard"])
        if not candidates:
            raise RuntimeError(f"{SOURCE_PACKAGE}: no post-reform unit for old commune {old.code} {old.name}")

        dist = {code: _unit_km(old, new_by_code[code]) for code in candidates}
        defaults = [c for c, is_default in candidates.items() if is_default]
        pool = defaults if len(defaults) == 1 else (defaults or list(candidates))
        chosen = min(pool, key=lambda c: (math.inf if dist[c] is None else dist[c], c))
        primary[old.code] = chosen
        district = old_districts[old.district_code or ""]
        for code in sorted(candidates, key=lambda c: (c != chosen, c)):
            rows.append(
                {
                    "old_commune_code": old.code,
                    "old_commune_name": old.name,
                    "old_district_code": district.code,
                    "old_district_name": district.name,
                    "new_unit_code": code,
                    "new_unit_name": new_by_code[code].name,
                    "is_primary": code == chosen,
                    "is_split": len(candidates) > 1,
                    "distance_km": dist[code],
                }
            )
    return rows, primary


# --------------------------------------------------------------------------------------------------
# Public tables
# --------------------------------------------------------------------------------------------------

_ADMIN_UNITS_SCHEMA = {
    "unit_code": pl.String,
    "unit_name": pl.String,
    "unit_type": pl.String,
    "level": pl.String,
    "parent_code": pl.String,
    "province_code": pl.String,
    "era": pl.String,
    "valid_from": pl.Date,
    "valid_to": pl.Date,
    "latitude": pl.Float64,
    "longitude": pl.Float64,
}

_CROSSWALK_SCHEMA = {
    "old_commune_code": pl.String,
    "old_commune_name": pl.String,
    "old_district_code": pl.String,
    "old_district_name": pl.String,
    "new_unit_code": pl.String,
    "new_unit_name": pl.String,
    "is_primary": pl.Boolean,
    "is_split": pl.Boolean,
    "distance_km": pl.Float64,
}


@functools.cache
def _admin_units_frame(provinces: tuple[str, ...] = (OLD_PROVINCE_CODE,)) -> pl.DataFrame:
    units: list[_Unit] = []
    for code in provinces:
        d = _load(code)
        units += [d.old_province, *d.old_districts.values(), *d.old_communes.values()]
    units += [d.new_province, *d.new_units.values()]
    level_order = {"province": 0, "district": 1, "commune": 2}
    units.sort(key=lambda u: (u.era != ERA_PRE, level_order[u.level], u.code))
    return pl.DataFrame(
        [
            {
                "unit_code": u.code,
                "unit_name": u.name,
                "unit_type": u.unit_type,
                "level": u.level,
                "parent_code": u.parent_code,
                "province_code": u.province_code,
                "era": u.era,
                "valid_from": REFORM_DATE if u.era == ERA_POST else None,
                "valid_to": LAST_PRE_REFORM_DAY if u.era == ERA_PRE else None,
                "latitude": u.latitude,
                "longitude": u.longitude,
            }
            for u in units
        ],
        schema=_ADMIN_UNITS_SCHEMA,
        orient="row",
    )


def admin_units(provinces: Iterable[str] = (OLD_PROVINCE_CODE,)) -> pl.DataFrame:
    """silver.admin_units: the former provinces (default Sóc Trăng, 94) with their districts and communes
    before the reform, and Cần Thơ (92) with ALL of its 103 post-reform units (not only those the former
    provinces' communes became). Old Cần Thơ city and new Cần Thơ city share the code 92: `era` tells them apart.

    Key (unit_code, era): GSO reuses codes across eras (31507 = old Phường 6 and new Phường Sóc Trăng).
    unit_type comes from the official name's prefix (the package's `wardType` column disagrees with the
    name for two Cần Thơ units). valid_from is null before the reform: the package holds only the last
    pre-reform state, not when each unit began. latitude/longitude are the package's centroids.
    """
    return _admin_units_frame(tuple(provinces)).clone()


@functools.cache
def _crosswalk_frame(provinces: tuple[str, ...] = (OLD_PROVINCE_CODE,)) -> pl.DataFrame:
    rows = [row for code in provinces for row in _load(code).crosswalk]
    return pl.DataFrame(rows, schema=_CROSSWALK_SCHEMA, orient="row")


def admin_unit_crosswalk(provinces: Iterable[str] = (OLD_PROVINCE_CODE,)) -> pl.DataFrame:
    """silver.admin_unit_crosswalk: every old Sóc Trăng commune -> its post-reform unit(s) in 92.

    One row per (old commune, candidate new unit); `is_split` marks old communes with several candidates,
    and exactly one row per old commune has `is_primary` (the package's default target; see
    `_build_crosswalk` for the tie rule). Extra column `distance_km`: centroid distance old -> new,
    to judge a candidate (the package's split candidates far from the old commune come from a name
    shared with a commune of Hậu Giang / old Cần Thơ).
    """
    return _crosswalk_frame(tuple(provinces)).clone()


def province_bbox(province: str = OLD_PROVINCE_CODE) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of old Sóc Trăng: the union of the package's bounds of the
    province, its 11 districts and 108 communes (geocoder extents, WGS84, not surveyed boundaries)."""
    return _load(province).bounds


def province_name(province: str) -> str:
    """The official name of a former (pre-2025) province, from the package: "Tỉnh Hậu Giang"."""
    return _load(province).old_province.name


@functools.cache
def _merged_into(new_province: str) -> tuple[str, ...]:
    conv = json.loads((_data_dir() / "converter_2025.json").read_text(encoding="utf-8"))
    new_key = _query("SELECT provinceKey FROM admin_units WHERE provinceCode = ? LIMIT 1", (new_province,))
    if not new_key:
        return ()
    old_keys = set(conv["DICT_PROVINCE"].get(new_key[0]["provinceKey"], []))
    rows = _query("SELECT DISTINCT provinceCode, provinceKey FROM admin_units_legacy", ())
    return tuple(sorted(r["provinceCode"] for r in rows if r["provinceKey"] in old_keys))


def merged_into(new_province: str) -> list[str]:
    """The pre-2025 province codes the package merges into `new_province` (92: 92, 93, 94); read once."""
    return list(_merged_into(new_province))


# --------------------------------------------------------------------------------------------------
# Resolver
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """Outcome of resolving one unit name. `error` is None when resolved (then `detail` may carry a note)."""

    unit_code: str | None = None
    unit_name: str | None = None
    level: str | None = None
    district_code: str | None = None
    new_unit_code: str | None = None
    new_unit_name: str | None = None
    error: str | None = None
    detail: str | None = None


RESOLUTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Resolution))


@dataclass(frozen=True)
class _Index:
    units: dict[str, _Unit]  # commune-level units of the era by code
    districts: dict[str, _Unit]  # district-level units (pre-reform only)
    by_bare: dict[str, list[_Unit]]
    district_by_bare: dict[str, list[_Unit]]
    by_alias: dict[str, list[_Unit]]  # package aliases: folded spaceless whole name


def _index(units: Iterable[_Unit], districts: Iterable[_Unit], aliases: dict[str, tuple[str, ...]]) -> _Index:
    units = list(units)
    districts = list(districts)
    by_bare: dict[str, list[_Unit]] = {}
    for u in units:
        by_bare.setdefault(u.bare, []).append(u)
    district_by_bare: dict[str, list[_Unit]] = {}
    for u in districts:
        district_by_bare.setdefault(u.bare, []).append(u)
    by_alias: dict[str, list[_Unit]] = {}
    for u in units:
        for alias in aliases.get(u.code, ()):
            by_alias.setdefault("".join(_tokens(alias)[0]), []).append(u)
    return _Index({u.code: u for u in units}, {u.code: u for u in districts}, by_bare, district_by_bare, by_alias)


@functools.cache
def _indexes(province: str = OLD_PROVINCE_CODE) -> dict[str, _Index]:
    d = _load(province)
    return {
        ERA_PRE: _index(d.old_communes.values(), d.old_districts.values(), d.aliases),
        ERA_POST: _index(d.new_units.values(), (), {}),
    }


@dataclass(frozen=True)
class _Part:
    text: str
    folded: list[str]
    accented: list[str]


@functools.cache
def _province_phrases(province: str = OLD_PROVINCE_CODE) -> tuple[tuple[str | None, str], ...]:
    """(type, folded bare) of both provinces: "Tỉnh Sóc Trăng"/"Sóc Trăng", "Thành phố Cần Thơ"/"Cần Thơ"."""
    d = _load(province)
    out: list[tuple[str | None, str]] = []
    for p in (d.old_province, d.new_province):
        out += [(None, p.bare), (p.unit_type, p.bare)]
    return tuple(out)


def _is_province(part: _Part, province: str = OLD_PROVINCE_CODE) -> bool:
    phrases = _province_phrases(province)
    return any((r.unit_type, r.bare) in phrases for r in _readings(part.folded, part.accented))


def _strip_province_suffix(part: _Part, province: str = OLD_PROVINCE_CODE) -> _Part:
    """Drop a trailing "tỉnh Sóc Trăng" / "TP Cần Thơ" written without a comma (with its type word only:
    a bare trailing "Sóc Trăng" is kept, "TP Sóc Trăng" is a district)."""
    for p_type, p_bare in _province_phrases(province):
        if p_type is None:
            continue
        for prefix, unit_type in _PREFIXES:
            if unit_type != p_type:
                continue
            for n in range(1, len(part.folded)):
                head, tail = part.folded[:n], part.folded[n:]
                if tuple(tail[: len(prefix)]) == prefix and "".join(tail[len(prefix) :]) == p_bare:
                    return _Part(part.text, head, part.accented[:n])
    return part


def _parts(text: str, province: str = OLD_PROVINCE_CODE) -> list[_Part]:
    """Comma-separated parts of a name, trailing province parts removed (the first part is always kept)."""
    parts = []
    for raw in text.split(","):
        folded, accented = _tokens(raw)
        if folded:
            parts.append(_Part(raw.strip(), folded, accented))
    while len(parts) > 1 and _is_province(parts[-1], province):
        parts.pop()
    if parts:
        parts[-1] = _strip_province_suffix(parts[-1], province)
    return parts


def _quote(text: str) -> str:
    return '"' + unicodedata.normalize("NFC", text).strip() + '"'


class UnitResolver:
    """Resolve unit names in any spelling of the contract to GSO codes, before or after the reform.

    Accepted: NFC or NFD, any case, with or without diacritics ("đ" = "d"), extra spaces/punctuation,
    the type written out or abbreviated ("Thành phố"/"TP."/"TP"/"T.P.", "Thị xã"/"TX", "Huyện"/"H.",
    "Phường"/"P."/"P.2"/"P. 2"/"Phường 02", "Thị trấn"/"TT", "Xã"/"X.") or left out (except a bare
    number: "2" is refused), the package's declared aliases of a commune (e.g. "Gia Hòa II" for
    "Xã Gia Hòa 2", "Phường 9" for the Phường 1 of TP Sóc Trăng that absorbed it), a GSO code
    (5 digits: commune, 3 digits: district), and trailing province words (", Sóc Trăng",
    "tỉnh Sóc Trăng", ", TP Cần Thơ"). "<commune>, <district>" in the name is read as commune plus
    district when no `district` argument is given. Nothing fuzzier: anything else is "unit_unknown".
    """

    def __init__(self, province: str = OLD_PROVINCE_CODE) -> None:
        """`province`: the former province whose pre-reform names are read (92, 93 or 94); the post-reform
        units are Cần Thơ city's (92) whatever the former province."""
        self.province = province
        self._idx = _indexes(province)
        self._data = _load(province)
        self._cached = functools.lru_cache(maxsize=65536)(self._resolve_era)

    # -- public -------------------------------------------------------------------------------------

    def resolve(
        self,
        name: str | None,
        district: str | None = None,
        as_of: dt.date | None = None,
        allow_district: bool = False,
    ) -> Resolution:
        """Resolve one commune-level name (or district-level one with `allow_district`) as of `as_of`.

        `as_of` None means before the reform. From REFORM_DATE on, names resolve among Cần Thơ's
        post-reform units and `district` is ignored. Errors: "unit_missing" (empty, "-", "N/A"),
        "unit_unknown" (no unit of that name in force, or it contradicts `district`), "unit_ambiguous"
        (several units and nothing separates them). Never guesses.
        """
        name_s = None if _is_missing(name) else unicodedata.normalize("NFC", str(name)).strip()
        district_s = None if _is_missing(district) else unicodedata.normalize("NFC", str(district)).strip()
        return self._cached(name_s, district_s, _era(as_of), bool(allow_district))

    def resolve_many(
        self,
        pairs: Iterable[tuple[str | None, str | None]],
        as_of: dt.date | None = None,
        allow_district: bool = False,
    ) -> pl.DataFrame:
        """Resolve (name, district) pairs; one output row per input pair, in order, each unique pair
        resolved once. Columns: name, district, then the Resolution fields."""
        rows: list[dict[str, Any]] = []
        seen: dict[tuple[Any, Any], Resolution] = {}
        for name, district in pairs:
            key = (name, district)
            if key not in seen:
                seen[key] = self.resolve(name, district, as_of=as_of, allow_district=allow_district)
            res = seen[key]
            row: dict[str, Any] = {
                "name": None if name is None else str(name),
                "district": None if district is None else str(district),
            }
            row.update({f: getattr(res, f) for f in RESOLUTION_FIELDS})
            rows.append(row)
        schema = {"name": pl.String, "district": pl.String, **{f: pl.String for f in RESOLUTION_FIELDS}}
        return pl.DataFrame(rows, schema=schema, orient="row")

    # -- internals ----------------------------------------------------------------------------------

    def _resolve_era(self, name: str | None, district: str | None, era: str, allow_district: bool) -> Resolution:
        if name is None:
            return Resolution(error="unit_missing", detail="no unit given")
        idx = self._idx[era]

        if re.fullmatch(r"\d{3}|\d{5}", name):
            return self._resolve_code(name, era, allow_district)

        parts = _parts(name, self.province)
        if not parts or len(parts) > 2:
            return Resolution(error="unit_unknown", detail=f"{_quote(name)} is not a unit name")
        part = parts[0]
        if district is None and len(parts) == 2 and era == ERA_PRE:
            district = parts[1].text

        readings = _readings(part.folded, part.accented)
        communes = self._match(readings, idx.by_bare, idx.by_alias, "".join(part.folded))
        districts = self._match(readings, idx.district_by_bare, {}, "") if era == ERA_PRE else []
        district_prefixed = any(r.unit_type in _DISTRICT_TYPES for r in readings[1:])

        if (
            allow_district
            and districts
            and not district_prefixed
            and not communes
            and _is_province(part, self.province)
        ):
            province, district_name = self._data.old_province.name, districts[0].name
            return Resolution(
                error="unit_ambiguous",
                detail=f"{_quote(part.text)} names both the province {province} and the district "
                f"{district_name}; write the unit type",
            )
        if allow_district and districts and (district_prefixed or not communes):
            if len(districts) > 1:
                listed = ", ".join(f"{u.name} ({u.code})" for u in districts)
                return Resolution(error="unit_ambiguous", detail=f"{_quote(part.text)} matches {listed}")
            return self._district_resolution(districts[0])

        if not communes:
            return Resolution(error="unit_unknown", detail=self._unknown_detail(part, readings, era, districts))
        if era == ERA_POST:
            if len(communes) > 1:
                listed = ", ".join(f"{u.name} ({u.code})" for u in communes)
                return Resolution(error="unit_ambiguous", detail=f"{_quote(part.text)} matches {listed}")
            return self._commune_resolution(communes[0])

        note = None
        if district is not None:
            hinted = self._districts_of(district)
            if hinted:
                inside = [u for u in communes if u.district_code in {d.code for d in hinted}]
                if not inside:
                    where = ", ".join(sorted({self._data.old_districts[u.district_code or ""].name for u in communes}))
                    return Resolution(
                        error="unit_unknown",
                        detail=f"commune {_quote(part.text)} is not in district {_quote(district)} (it is in {where})",
                    )
                communes = inside
            else:
                note = f"district {_quote(district)} not recognised; ignored"
        if len(communes) > 1:
            return Resolution(error="unit_ambiguous", detail=self._ambiguous_detail(part, communes, note))
        res = self._commune_resolution(communes[0])
        return Resolution(**{**{f: getattr(res, f) for f in RESOLUTION_FIELDS}, "detail": note})

    @staticmethod
    def _match(
        readings: list[_Reading],
        by_bare: dict[str, list[_Unit]],
        by_alias: dict[str, list[_Unit]],
        whole: str,
    ) -> list[_Unit]:
        """Units matching any reading; if several, keep those whose accented name equals the input's
        (only when the input has diacritics and that leaves at least one)."""
        hits: list[tuple[_Unit, str | None]] = []
        for r in readings:
            if r.unit_type is None and r.bare.isdigit():
                continue  # a bare number ("2") is not a unit name
            hits += [(u, r.bare_accented) for u in by_bare.get(r.bare, []) if r.unit_type in (None, u.unit_type)]
        hits += [(u, None) for u in by_alias.get(whole, [])]
        units = sorted({u.code: u for u, _ in hits}.values(), key=lambda u: u.code)
        if len(units) > 1:
            exact = {u.code for u, acc in hits if acc is not None and acc == u.bare_accented and not acc.isascii()}
            if exact:
                units = [u for u in units if u.code in exact]
        return units

    def _districts_of(self, district: str) -> list[_Unit]:
        idx = self._idx[ERA_PRE]
        if re.fullmatch(r"\d{3}", district):
            return [idx.districts[district]] if district in idx.districts else []
        parts = _parts(district, self.province)
        if len(parts) != 1:
            return []
        return self._match(_readings(parts[0].folded, parts[0].accented), idx.district_by_bare, {}, "")

    def _resolve_code(self, code: str, era: str, allow_district: bool) -> Resolution:
        idx = self._idx[era]
        if len(code) == 5 and code in idx.units:
            return self._commune_resolution(idx.units[code])
        if len(code) == 3 and code in idx.districts:
            if allow_district:
                return self._district_resolution(idx.districts[code])
            return Resolution(
                error="unit_unknown",
                detail=f"{code} is the district {idx.districts[code].name}; a commune-level unit is required",
            )
        other = self._idx[ERA_POST if era == ERA_PRE else ERA_PRE]
        if code in other.units or code in other.districts:
            return Resolution(error="unit_unknown", detail=f"code {code} is not in force {self._era_phrase(era)}")
        return Resolution(error="unit_unknown", detail=f"no unit with code {code} in {self._scope(era)}")

    def _commune_resolution(self, u: _Unit) -> Resolution:
        if u.era == ERA_POST:
            return Resolution(u.code, u.name, "commune", None, u.code, u.name)
        new = self._data.new_units[self._data.primary[u.code]]
        return Resolution(u.code, u.name, "commune", u.district_code, new.code, new.name)

    @staticmethod
    def _district_resolution(u: _Unit) -> Resolution:
        return Resolution(u.code, u.name, "district", u.code, None, None)

    def _ambiguous_detail(self, part: _Part, communes: list[_Unit], note: str | None) -> str:
        dcodes = [u.district_code for u in communes]
        if len(set(dcodes)) == len(dcodes):
            names = ", ".join(self._data.old_districts[c or ""].name for c in dcodes)
            count = len(communes)
            text = f"commune {_quote(part.text)} exists in {count} districts ({names}); give the district"
        else:
            listed = ", ".join(
                f"{u.name} ({u.code}, {self._data.old_districts[u.district_code or ''].name})" for u in communes
            )
            text = f"{_quote(part.text)} matches {listed}; give the unit type (Xã, Phường, Thị trấn) and the district"
        return f"{text}; {note}" if note else text

    def _unknown_detail(self, part: _Part, readings: list[_Reading], era: str, districts: list[_Unit]) -> str:
        if _is_province(part, self.province):
            return f"{_quote(part.text)} names a province; a commune-level unit is required"
        if districts:
            return (
                f"{_quote(part.text)} is the district {districts[0].name}; "
                "a commune-level unit is required (allow_district=False)"
            )
        if all(t.isdigit() for t in part.folded):
            return f"{_quote(part.text)} is a bare number; write the type (e.g. Phường {part.folded[0]})"
        other_era = ERA_POST if era == ERA_PRE else ERA_PRE
        other = self._idx[other_era]
        if self._match(readings, other.by_bare, other.by_alias, "".join(part.folded)):
            return f"{_quote(part.text)} is not a unit in force {self._era_phrase(era)}"
        return f"no unit named {_quote(part.text)} in {self._scope(era)}"

    def _scope(self, era: str) -> str:
        p = self._data.old_province if era == ERA_PRE else self._data.new_province
        when = "before" if era == ERA_PRE else "after"
        return f"{p.name} ({p.code}) {when} the {REFORM_DATE.year} reform"

    @staticmethod
    def _era_phrase(era: str) -> str:
        if era == ERA_PRE:
            return f"before {REFORM_DATE.isoformat()} (it is a post-reform unit)"
        return f"from {REFORM_DATE.isoformat()} (it is a pre-reform unit)"


RESOLVED_COLUMNS: dict[str, Any] = {
    "commune_code": pl.String,
    "commune_name": pl.String,
    "district_code": pl.String,
    "district_name": pl.String,
    "new_unit_code": pl.String,
    "new_unit_name": pl.String,
    "unit_error": pl.String,
    "unit_detail": pl.String,
}


def resolve_columns(
    frame: pl.DataFrame,
    name: str,
    district: str | None,
    as_of: str,
    resolver: UnitResolver | None = None,
) -> pl.DataFrame:
    """`frame` plus the unit columns of each row's commune-level name (`RESOLVED_COLUMNS`), resolved as
    of the row's date (column `as_of`), each distinct (name, district, date) once. Without `resolver`, names
    are read as the former province's being gated (`provinces.current()`, the legacy Sóc Trăng by default).

    Why a frame helper: every feed names communes in text and must carry both eras' codes. Before the
    reform, `commune_*`/`district_*` are the old units and `new_unit_*` the crosswalk's primary target;
    from the reform on, old units no longer exist (`commune_*`/`district_*` null) and `new_unit_*` is
    the unit named. `unit_error` is the resolver's error (unit_missing, unit_unknown, unit_ambiguous)
    and `unit_detail` its sentence; resolved rows have a null `unit_error`.
    """
    if resolver is None:
        from ioc_pipeline import provinces  # the former province whose batch is being gated

        resolver = UnitResolver(provinces.current())
    data = _load(resolver.province)
    has_district = district is not None and district in frame.columns
    keys = frame.select(
        pl.col(name).cast(pl.String).alias("_unit_name"),
        (pl.col(cast(str, district)).cast(pl.String) if has_district else pl.lit(None, pl.String)).alias(
            "_unit_district"
        ),
        pl.col(as_of).alias("_unit_as_of"),
    )
    rows: list[dict[str, Any]] = []
    for unit_name, unit_district, day in keys.unique().iter_rows():
        r = resolver.resolve(unit_name, unit_district, as_of=day)
        old = r.error is None and _era(day) == ERA_PRE
        rows.append(
            {
                "_unit_name": unit_name,
                "_unit_district": unit_district,
                "_unit_as_of": day,
                "commune_code": r.unit_code if old else None,
                "commune_name": r.unit_name if old else None,
                "district_code": r.district_code if old else None,
                "district_name": data.old_districts[r.district_code].name if old and r.district_code else None,
                "new_unit_code": r.new_unit_code,
                "new_unit_name": r.new_unit_name,
                "unit_error": r.error,
                "unit_detail": r.detail if r.error else None,
            }
        )
    schema: dict[str, Any] = {
        "_unit_name": pl.String,
        "_unit_district": pl.String,
        "_unit_as_of": keys.schema["_unit_as_of"],
    }
    resolved = pl.DataFrame(rows, schema={**schema, **RESOLVED_COLUMNS}, orient="row")
    joined = pl.concat([frame.drop(list(RESOLVED_COLUMNS), strict=False), keys], how="horizontal").join(
        resolved, on=list(schema), how="left", nulls_equal=True, maintain_order="left"
    )
    return joined.drop(list(schema))


def _clear_caches() -> None:
    """Forget everything loaded from the package (tests use it to rebuild under a patched network)."""
    for cached in (_load, _admin_units_frame, _crosswalk_frame, _indexes, _province_phrases, _merged_into):
        cached.cache_clear()


def _era(as_of: dt.date | None) -> str:
    if as_of is None:
        return ERA_PRE
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    return ERA_POST if as_of >= REFORM_DATE else ERA_PRE
