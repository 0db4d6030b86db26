"""Tests of ioc_pipeline.units: tables from vietnamadminunits' data, the crosswalk, and name resolution."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import unicodedata
from pathlib import Path

import polars as pl
import pytest

from ioc_pipeline import units
from ioc_pipeline.units import (
    NEW_PROVINCE_CODE,
    OLD_PROVINCE_CODE,
    REFORM_DATE,
    Resolution,
    UnitResolver,
    admin_unit_crosswalk,
    admin_units,
    province_bbox,
)

BEFORE = dt.date(2022, 6, 30)
AFTER = dt.date(2025, 9, 1)


@pytest.fixture(scope="module")
def resolver() -> UnitResolver:
    return UnitResolver()


@pytest.fixture(scope="module")
def au() -> pl.DataFrame:
    return admin_units()


@pytest.fixture(scope="module")
def cw() -> pl.DataFrame:
    return admin_unit_crosswalk()


def code_of(au: pl.DataFrame, name: str, district: str | None = None, era: str = "pre_2025") -> str:
    """The one code admin_units() lists for an official name (in the named old district)."""
    rows = au.filter((pl.col("unit_name") == name) & (pl.col("era") == era))
    if district is not None:
        d_code = code_of(au, district, era="pre_2025")
        rows = rows.filter(pl.col("parent_code") == d_code)
    assert rows.height == 1, f"{name!r} in {district!r}: {rows.height} rows"
    return rows["unit_code"][0]


def strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# --- tables ----------------------------------------------------------------------------------------


def test_old_province_has_11_districts_and_108_communes(au: pl.DataFrame) -> None:
    old = au.filter((pl.col("era") == "pre_2025") & (pl.col("province_code") == OLD_PROVINCE_CODE))
    assert old.filter(pl.col("level") == "province")["unit_code"].to_list() == [OLD_PROVINCE_CODE]
    districts = old.filter(pl.col("level") == "district")
    communes = old.filter(pl.col("level") == "commune")
    assert districts.height == 11
    assert communes.height == 108
    assert set(communes["parent_code"]) == set(districts["unit_code"])
    assert set(districts["parent_code"]) == {OLD_PROVINCE_CODE}
    assert communes["unit_code"].str.contains(r"^\d{5}$").all()
    assert districts["unit_code"].str.contains(r"^\d{3}$").all()
    assert sorted(districts["unit_type"].unique()) == ["Huyện", "Thành phố", "Thị xã"]
    assert sorted(communes["unit_type"].unique()) == ["Phường", "Thị trấn", "Xã"]


def test_new_province_and_eras(au: pl.DataFrame) -> None:
    new = au.filter(pl.col("era") == "post_2025")
    assert set(new["province_code"]) == {NEW_PROVINCE_CODE}
    assert new.filter(pl.col("level") == "district").height == 0
    assert new.filter(pl.col("level") == "province")["unit_name"].to_list() == ["Thành phố Cần Thơ"]
    assert new.filter(pl.col("level") == "commune").height == 103  # all of Cần Thơ after the reform
    assert au.select("unit_code", "era").is_duplicated().sum() == 0
    assert set(au["era"]) == {"pre_2025", "post_2025"}
    pre = au.filter(pl.col("era") == "pre_2025")
    assert (pre["valid_to"] == dt.date(2025, 6, 30)).all()
    assert new["valid_to"].is_null().all()
    assert (new["valid_from"] == REFORM_DATE).all()
    # unit_type is the prefix of the official name (the package's wardType disagrees for two units)
    assert au.select(pl.col("unit_name").str.starts_with(pl.col("unit_type") + " ").all()).item()
    assert au.select(pl.col("unit_name") == pl.col("unit_name").str.normalize("NFC")).to_series().all()


def test_codes_are_reused_across_eras(au: pl.DataFrame) -> None:
    rows = au.filter(pl.col("unit_code") == "31507").sort("era")
    assert rows.select("era", "unit_name").rows() == [
        ("post_2025", "Phường Sóc Trăng"),
        ("pre_2025", "Phường 6"),
    ]


def test_crosswalk_one_primary_per_old_commune(au: pl.DataFrame, cw: pl.DataFrame) -> None:
    old = au.filter((pl.col("era") == "pre_2025") & (pl.col("level") == "commune"))
    assert set(cw["old_commune_code"]) == set(old["unit_code"])
    per_commune = cw.group_by("old_commune_code").agg(
        pl.col("is_primary").sum().alias("primaries"),
        pl.len().alias("rows"),
        pl.col("is_split").first(),
        pl.col("is_split").n_unique().alias("split_values"),
    )
    assert per_commune.height == 108
    assert (per_commune["primaries"] == 1).all()
    assert (per_commune["split_values"] == 1).all()
    assert (per_commune["is_split"] == (per_commune["rows"] > 1)).all()
    new_codes = set(au.filter(pl.col("era") == "post_2025")["unit_code"])
    assert set(cw["new_unit_code"]) <= new_codes
    assert cw.select("old_commune_code", "new_unit_code").is_duplicated().sum() == 0


def test_crosswalk_splits_and_primary_rule(cw: pl.DataFrame) -> None:
    split = cw.filter(pl.col("is_split"))
    assert split["old_commune_code"].n_unique() == 8
    # the package's default target is also the nearest candidate for every split commune
    nearest = split.sort("distance_km").group_by("old_commune_code", maintain_order=True).first()
    assert nearest["is_primary"].all()
    assert cw.filter("is_primary")["distance_km"].max() < 10  # km: primaries lie next to the old commune
    # known merges
    primary = dict(cw.filter("is_primary").select("old_commune_code", "new_unit_code").iter_rows())
    assert primary["31507"] == "31507"  # Phường 6 -> Phường Sóc Trăng
    assert primary["31522"] == "31510"  # Phường 1 (TP Sóc Trăng) -> Phường Phú Lợi
    assert primary["31606"] == "31591"  # Xã Thuận Hưng (split) -> Xã Mỹ Hương


def test_bbox_contains_old_communes(au: pl.DataFrame) -> None:
    min_lon, min_lat, max_lon, max_lat = province_bbox()
    assert 105.4 < min_lon < max_lon < 106.5
    assert 9.1 < min_lat < max_lat < 10.0
    old = au.filter((pl.col("era") == "pre_2025") & (pl.col("province_code") == OLD_PROVINCE_CODE))
    assert old["longitude"].is_between(min_lon, max_lon).all()
    assert old["latitude"].is_between(min_lat, max_lat).all()
    ninh_kieu = au.filter(pl.col("unit_name") == "Phường Ninh Kiều").row(0, named=True)
    assert not (min_lat <= ninh_kieu["latitude"] <= max_lat)


# --- resolution ------------------------------------------------------------------------------------


def test_nfc_and_nfd_resolve_equal(resolver: UnitResolver, au: pl.DataFrame) -> None:
    nfc = "Xã Hồ Đắc Kiện"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    a, b = resolver.resolve(nfc), resolver.resolve(nfd)
    assert a == b
    assert a.unit_code == code_of(au, nfc)
    district = unicodedata.normalize("NFD", "Thị xã Ngã Năm")
    assert resolver.resolve(unicodedata.normalize("NFD", "Phường 2"), district).unit_code == code_of(
        au, "Phường 2", "Thị xã Ngã Năm"
    )


@pytest.mark.parametrize(
    ("name", "district", "official", "official_district"),
    [
        ("P.2", "TP. Sóc Trăng", "Phường 2", "Thành phố Sóc Trăng"),
        ("P. 2", "tp Soc Trang", "Phường 2", "Thành phố Sóc Trăng"),
        ("Phường 02", "T.P. Sóc Trăng", "Phường 2", "Thành phố Sóc Trăng"),
        ("phuong 2", "TX Vinh Chau", "Phường 2", "Thị xã Vĩnh Châu"),
        ("P2", "Thị xã Ngã Năm", "Phường 2", "Thị xã Ngã Năm"),
        ("TT Kế Sách", None, "Thị trấn Kế Sách", None),
        ("TT. Ke Sach", None, "Thị trấn Kế Sách", None),
        ("Kế Sách", None, "Thị trấn Kế Sách", None),
        ("X. An Hiệp", None, "Xã An Hiệp", None),
        ("xa an hiep", "H. Châu Thành", "Xã An Hiệp", None),
        ("  XÃ   ĐẠI   ÂN 1 ", None, "Xã Đại Ân 1", None),
        ("Xa Dai An 01", None, "Xã Đại Ân 1", None),
        ("TT Long Phú", None, "Thị trấn Long Phú", None),
        ("X. Long Phu", None, "Xã Long Phú", None),
        ("Phường 1, TP Sóc Trăng, tỉnh Sóc Trăng", None, "Phường 1", "Thành phố Sóc Trăng"),
        ("Phường 3 tỉnh Sóc Trăng", "Ngã Năm", "Phường 3", "Thị xã Ngã Năm"),
        ("Xã Lai Hòa, Sóc Trăng", None, "Xã Lai Hòa", None),
        ("Gia Hòa II", None, "Xã Gia Hòa 2", None),  # the package's alias
        ("31507", None, "Phường 6", None),
    ],
)
def test_spellings(
    resolver: UnitResolver,
    au: pl.DataFrame,
    name: str,
    district: str | None,
    official: str,
    official_district: str | None,
) -> None:
    res = resolver.resolve(name, district)
    assert res.error is None, res.detail
    assert res.level == "commune"
    assert res.unit_code == code_of(au, official, official_district)
    assert res.unit_name == official


@pytest.mark.parametrize(
    ("name", "official"),
    [
        ("TP. Sóc Trăng", "Thành phố Sóc Trăng"),
        ("tp Soc Trang", "Thành phố Sóc Trăng"),
        ("T.P. Sóc Trăng", "Thành phố Sóc Trăng"),
        ("Thành phố Sóc Trăng", "Thành phố Sóc Trăng"),
        ("TX. Vĩnh Châu", "Thị xã Vĩnh Châu"),
        ("Huyện Kế Sách", "Huyện Kế Sách"),
        ("H. Mỹ Tú", "Huyện Mỹ Tú"),
        ("943", "Huyện Kế Sách"),
    ],
)
def test_district_names(resolver: UnitResolver, au: pl.DataFrame, name: str, official: str) -> None:
    res = resolver.resolve(name, allow_district=True)
    assert (res.error, res.level, res.unit_name) == (None, "district", official)
    assert res.unit_code == res.district_code == code_of(au, official)
    assert res.new_unit_code is None
    refused = resolver.resolve(name)
    assert (refused.error, refused.unit_code) == ("unit_unknown", None)


def test_allow_district_prefers_commune_without_prefix(resolver: UnitResolver, au: pl.DataFrame) -> None:
    bare = resolver.resolve("Kế Sách", allow_district=True)
    assert (bare.level, bare.unit_code) == ("commune", code_of(au, "Thị trấn Kế Sách"))
    prefixed = resolver.resolve("Huyện Kế Sách", allow_district=True)
    assert (prefixed.level, prefixed.unit_code) == ("district", code_of(au, "Huyện Kế Sách"))


def test_same_named_wards_split_by_district(resolver: UnitResolver, au: pl.DataFrame) -> None:
    old = au.filter(pl.col("era") == "pre_2025")
    districts = old.filter(pl.col("level") == "district").select("unit_code", "unit_name")
    wards = (
        old.filter(pl.col("unit_name") == "Phường 1")
        .join(districts, left_on="parent_code", right_on="unit_code", suffix="_district")
        .select("unit_code", "unit_name_district")
    )
    assert wards.height == 3
    codes = {}
    for code, district_name in wards.iter_rows():
        res = resolver.resolve("Phường 1", district_name)
        assert res.error is None
        assert res.unit_code == code
        assert res.district_code == code_of(au, district_name)
        codes[district_name] = res.unit_code
    assert len(set(codes.values())) == 3

    ambiguous = resolver.resolve("Phường 1")
    assert (ambiguous.error, ambiguous.unit_code) == ("unit_ambiguous", None)
    for district_name in codes:
        assert district_name in (ambiguous.detail or "")


@pytest.mark.parametrize(
    ("name", "district"),
    [
        ("Phường 2", None),
        ("P.3", None),
        ("Long Phú", None),  # Thị trấn and Xã Long Phú, both in Huyện Long Phú
        ("Long Phú", "Huyện Long Phú"),
        ("Lịch Hội Thượng", "Trần Đề"),
        ("Phường 1", "Huyện Khôngcó"),
    ],
)
def test_ambiguous(resolver: UnitResolver, name: str, district: str | None) -> None:
    res = resolver.resolve(name, district)
    assert res.error == "unit_ambiguous"
    assert res.unit_code is None and res.detail


@pytest.mark.parametrize(
    ("name", "district"),
    [
        ("Xã Không Có", None),
        ("2", None),  # a numbered ward without its prefix
        ("Phường 3", "Huyện Kế Sách"),  # no Phường 3 in that district
        ("Phường Sóc Trăng", None),  # exists only after the reform
        ("Xã An Hiep Tay", None),  # no fuzzy matching
        ("99999", None),
    ],
)
def test_unknown(resolver: UnitResolver, name: str, district: str | None) -> None:
    res = resolver.resolve(name, district)
    assert res.error == "unit_unknown"
    assert res.unit_code is None and res.detail


@pytest.mark.parametrize("name", [None, "", "   ", "-", "N/A", "n/a"])
def test_missing(resolver: UnitResolver, name: str | None) -> None:
    res = resolver.resolve(name, "TP Sóc Trăng")
    assert res == Resolution(error="unit_missing", detail=res.detail)
    assert res.detail


def test_as_of_after_reform_resolves_to_92(resolver: UnitResolver, au: pl.DataFrame) -> None:
    res = resolver.resolve("P. Sóc Trăng", as_of=REFORM_DATE)
    expected = code_of(au, "Phường Sóc Trăng", era="post_2025")
    assert (res.error, res.unit_code, res.new_unit_code) == (None, expected, expected)
    assert res.district_code is None
    new_codes = set(au.filter(pl.col("province_code") == NEW_PROVINCE_CODE)["unit_code"])
    assert res.unit_code in new_codes
    assert resolver.resolve("31507", as_of=AFTER).unit_name == "Phường Sóc Trăng"
    assert resolver.resolve("31507", as_of=BEFORE).unit_name == "Phường 6"
    # the day before the reform still resolves among the old units; old names are gone after it
    assert resolver.resolve("Phường Sóc Trăng", as_of=REFORM_DATE - dt.timedelta(days=1)).error == "unit_unknown"
    assert resolver.resolve("Phường 6", "TP Sóc Trăng", as_of=AFTER).error == "unit_unknown"
    assert resolver.resolve("Xa Ke Sach", as_of=dt.datetime(2025, 7, 1, 8, 0)).unit_name == "Xã Kế Sách"


def test_every_old_commune_resolves_to_its_primary_target(resolver: UnitResolver, cw: pl.DataFrame) -> None:
    primary = cw.filter("is_primary")
    assert primary.height == 108
    for code, name, _d_code, d_name, new_code, new_name in primary.select(
        "old_commune_code",
        "old_commune_name",
        "old_district_code",
        "old_district_name",
        "new_unit_code",
        "new_unit_name",
    ).iter_rows():
        for res in (
            resolver.resolve(name, d_name),
            resolver.resolve(strip_diacritics(name).upper(), strip_diacritics(d_name)),
            resolver.resolve(code, as_of=BEFORE),
        ):
            assert res.error is None, (name, d_name, res.detail)
            assert (res.unit_code, res.new_unit_code, res.new_unit_name) == (code, new_code, new_name)


def test_resolve_many(resolver: UnitResolver) -> None:
    pairs = [("P.2", "TP Sóc Trăng"), ("Phường 1", None), ("P.2", "TP Sóc Trăng"), (None, None)]
    fresh = UnitResolver()
    out = fresh.resolve_many(pairs)
    assert out.columns == ["name", "district", *units.RESOLUTION_FIELDS]
    assert out.height == 4
    assert out["error"].to_list() == [None, "unit_ambiguous", None, "unit_missing"]
    assert out["unit_code"][0] == out["unit_code"][2] == resolver.resolve("Phường 2", "TP Sóc Trăng").unit_code
    assert fresh._cached.cache_info().misses == 3  # unique pairs resolved once
    after = fresh.resolve_many([("Xã Mỹ Tú", None)], as_of=AFTER)
    assert after["unit_code"].to_list() == ["31567"]


# --- no network, speed -----------------------------------------------------------------------------


class NetworkUsed(RuntimeError):
    pass


def test_no_network_while_building_and_resolving(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise NetworkUsed(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(NetworkUsed):  # the guard is live
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(NetworkUsed), socket.socket() as s:
        s.connect(("127.0.0.1", 9))

    units._clear_caches()
    try:
        assert admin_units().height == 1 + 11 + 108 + 1 + 103
        assert admin_unit_crosswalk().filter("is_primary").height == 108
        r = UnitResolver()
        # split communes and addresses are exactly where the package would geocode
        for name, district in [
            ("Xã Thuận Hưng", "Mỹ Tú"),
            ("Xã Long Bình", "Ngã Năm"),
            ("Phường 1", "Vĩnh Châu"),
        ]:
            assert r.resolve(name, district).error is None
        assert r.resolve("Xã Long Phú, Huyện Long Phú, Sóc Trăng").unit_code == "31669"
        assert r.resolve_many([("P.2", "Vinh Chau")], as_of=AFTER).height == 1
    finally:
        units._clear_caches()


def test_module_never_imports_the_geocoder() -> None:
    """In a fresh interpreter: loading the module and using it imports neither geopy nor the package."""
    path = Path(units.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('units_probe', {str(path)!r})\n"
        "m = sys.modules['units_probe'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        "m.admin_units(); m.admin_unit_crosswalk(); m.UnitResolver().resolve('Xã Thuận Hưng', 'Mỹ Tú')\n"
        "roots = ('geopy', 'vietnamadminunits', 'shapely')\n"
        "print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in roots)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
