"""The carriers' BTS registers end to end: the founding report's figures, sites against the generator's
design, quarantine, file shapes, unit spellings, supersession, coverage tables and re-delivery."""

from __future__ import annotations

import shutil
import unicodedata
from collections import Counter

import polars as pl
import pytest

from ioc_pipeline.sample import telecom as sample
from ioc_pipeline.sample.__main__ import SEED
from ioc_pipeline.sites import site_id_of
from tests.conftest import Pipeline, failure_messages

SEED_FIGURES = {
    "bts_sites": 1268,
    "bts_sites_2g": 958,
    "bts_sites_3g": 1124,
    "bts_sites_4g": 906,
    "bts_sites_5g": 3,
}


@pytest.fixture(scope="module")
def design() -> sample.Design:
    return sample.design(SEED)


@pytest.fixture(scope="module")
def bronze(sample_run: Pipeline) -> pl.DataFrame:
    return sample_run.lake.read("bronze", "bts_stations")


def test_sample_reproduces_the_founding_report(sample_run: Pipeline) -> None:
    scorecard = sample_run.scorecard()
    for code, expected in SEED_FIGURES.items():
        assert scorecard[code] == expected, code
    dates = sample_run.query(
        "select distinct as_of_date::varchar from gold.ioc_scorecard where indicator_code like 'bts%'"
    )
    assert dates == [("2022-04-30",)]


def test_communes_without_4g_are_the_designed_gaps(sample_run: Pipeline) -> None:
    designed = set(sample.NO_SITE_COMMUNES) | set(sample.NO_4G_COMMUNES)
    gaps = sample_run.query("select unit_code, gap from gold.telecom_coverage_gaps where level = 'old_commune'")
    assert {code for code, _ in gaps} == designed
    assert {code for code, gap in gaps if gap == "no_site"} == set(sample.NO_SITE_COMMUNES)
    assert sample_run.scorecard()["communes_without_4g"] == len(designed)
    # the same question asked of the post-2025 units: a new unit lacks 4G only if all its old communes did
    new_gaps = {
        r[0] for r in sample_run.query("select unit_code from gold.telecom_coverage_gaps where level='new_unit'")
    }
    by_unit = sample_run.query(
        "select new_unit_code, bool_and(sites_4g = 0) from gold.telecom_coverage_by_commune group by 1"
    )
    assert new_gaps == {unit for unit, none in by_unit if none} and new_gaps


def test_every_bad_row_kind_is_quarantined_with_its_rule(sample_run: Pipeline) -> None:
    quarantined = sample_run.query("select rules, source_file, source_row, reason from quarantine.bts_stations")
    assert len(quarantined) == len(sample.BAD_ROWS)
    for rule in {r for _, rules, _ in sample.BAD_ROWS for r in rules}:
        expected = Counter(sample.NEWEST_FILES[c] for c, rules, _ in sample.BAD_ROWS if rule in rules)
        hits = [q for q in quarantined if rule in q[0]]
        assert Counter(q[1] for q in hits) == expected, rule
        assert all(q[2] >= 1 and rule in q[3] for q in hits), rule


def test_clean_plus_quarantined_equals_delivered_per_file(sample_run: Pipeline, bronze: pl.DataFrame) -> None:
    for path in sample.NEWEST_FILES.values():
        delivered = sorted(bronze.filter(pl.col("_source_file") == path)["_source_row"].to_list())
        placed = sample_run.query(
            f"select source_row from silver.bts_stations where source_file = '{path}' "
            f"union all select source_row from quarantine.bts_stations where source_file = '{path}'"
        )
        assert sorted(r[0] for r in placed) == delivered, path  # each row in exactly one place


def test_sites_are_the_designed_sites(sample_run: Pipeline, design: sample.Design) -> None:
    rows = sample_run.query("select carrier, station_code, site_id from silver.bts_stations")
    got: dict[str, set] = {}
    for carrier, code, site in rows:
        got.setdefault(site, set()).add((carrier, code))
    want: dict[int, set] = {}
    for s in design.stations:
        want.setdefault(s.site, set()).add((s.carrier, s.code))
    assert {frozenset(v) for v in got.values()} == {frozenset(v) for v in want.values()}
    # ids are derived from each site's smallest station key
    assert all(site == site_id_of(min(f"{c}:{k}" for c, k in members)) for site, members in got.items())
    # shared sites of every kind are there: by code, by distance, chains, both, one carrier's two stations
    assert {k for k in design.site_kinds} >= {"code_2", "code_3", "distance", "chain", "code_and_distance"}


def test_a_sites_technologies_are_the_union_of_its_stations(sample_run: Pipeline, design: sample.Design) -> None:
    sites = sample_run.query("select station_keys, technologies, has_4g from silver.bts_sites")
    site_of = {f"{s.carrier}:{s.code}": s.site for s in design.stations}
    partial = 0
    for keys, techs, has_4g in sites:
        designed = design.site_technologies[site_of[keys[0]]]
        assert tuple(techs) == designed and has_4g == ("4G" in designed)
        partial += any(
            set(s.technologies) != set(designed)
            for s in design.stations
            if f"{s.carrier}:{s.code}" in keys and len(keys) > 1
        )
    assert partial > 50  # many shared sites have no single station carrying all of the site's technologies


def test_communes_resolve_as_designed_whatever_the_spelling(
    sample_run: Pipeline, bronze: pl.DataFrame, design: sample.Design
) -> None:
    silver = dict(
        ((c, k), code)
        for c, k, code in sample_run.query("select carrier, station_code, commune_code from silver.bts_stations")
    )
    assert silver == {(s.carrier, s.code): s.commune.code for s in design.stations}
    names = bronze.filter(pl.col("_source_file").is_in(list(sample.NEWEST_FILES.values())))["commune"].drop_nulls()
    spellings = {
        "NFD": lambda n: unicodedata.is_normalized("NFC", n) is False,
        "P.2": lambda n: n.startswith("P.") and n[2:3].isdigit(),
        "TT": lambda n: n.startswith("TT "),
        "X.": lambda n: n.startswith("X. "),
        "no diacritics": lambda n: n.isascii() and n.startswith("Xa "),
        "commune, district": lambda n: ", " in n,
    }
    for label, test in spellings.items():
        assert any(test(n) for n in names), label


def test_same_named_communes_resolve_by_district(sample_run: Pipeline) -> None:
    found = dict(
        sample_run.query(
            "select commune_code, any_value(district_code) from silver.bts_stations "
            "where commune_name in ('Phường 1', 'Phường 2', 'Phường 3') group by 1"
        )
    )
    assert found == {
        "31522": "941", "31732": "948", "31783": "950",  # Phường 1
        "31510": "941", "31735": "948", "31801": "950",  # Phường 2
        "31519": "941", "31747": "948",  # Phường 3
    }  # fmt: skip
    ambiguous = sample_run.query("select reason from quarantine.bts_stations where rule = 'unit_ambiguous'")
    assert any("exists in 3 districts" in r[0] for r in ambiguous)
    assert any("Thị trấn Long Phú (31639" in r[0] and "Xã Long Phú (31669" in r[0] for r in ambiguous)


def test_file_shapes_are_read(sample_run: Pipeline, bronze: pl.DataFrame, design: sample.Design) -> None:
    viettel = (sample_run.landing / sample.NEWEST_FILES["viettel"]).read_bytes()
    assert viettel.startswith(b"\xef\xbb\xbf") and b";" in viettel.split(b"\n")[0] and b"105," in viettel
    first_rows = dict(bronze.group_by("_source_file").agg(pl.col("_source_row").min()).iter_rows())
    assert first_rows[sample.NEWEST_FILES["vinaphone"]] == 5  # two title rows and a blank row above the header
    assert first_rows[sample.NEWEST_FILES["vietnamobile"]] == 4
    assert first_rows[sample.NEWEST_FILES["viettel"]] == 2
    coordinates = dict(
        ((c, k), (lon, lat))
        for c, k, lon, lat in sample_run.query(
            "select carrier, station_code, longitude, latitude from silver.bts_stations"
        )
    )
    for s in design.stations:
        assert coordinates[(s.carrier, s.code)] == pytest.approx((s.lon, s.lat), abs=1e-9)
    types = dict(
        sample_run.query(
            "select column_name, data_type from duckdb_columns() "
            "where schema_name = 'silver' and table_name = 'bts_stations'"
        )
    )
    assert types["technologies"] == "VARCHAR[]" and types["longitude"] == "DOUBLE" and types["on_air_date"] == "DATE"


def test_the_newer_register_supersedes_and_both_stay_in_bronze(
    sample_run: Pipeline, bronze: pl.DataFrame, design: sample.Design
) -> None:
    files = set(bronze["_source_file"].unique())
    assert files == {*sample.NEWEST_FILES.values(), sample.OLDER_FILE}
    assert bronze.filter(pl.col("_source_file") == sample.OLDER_FILE).height == len(design.older)
    in_silver = {r[0] for r in sample_run.query("select distinct source_file from silver.bts_stations")}
    assert in_silver == set(sample.NEWEST_FILES.values())
    dismantled = {s.code for s in design.older} - {s.code for s in design.stations if s.carrier == "viettel"}
    assert dismantled
    listed = ", ".join(f"'{c}'" for c in dismantled)
    assert sample_run.query(f"select count(*) from silver.bts_stations where station_code in ({listed})") == [(0,)]


def test_coverage_is_readable_by_old_and_new_units(sample_run: Pipeline, design: sample.Design) -> None:
    by_commune = sample_run.query(
        "select commune_code, new_unit_code, sites, sites_4g, carriers from gold.telecom_coverage_by_commune"
    )
    assert len(by_commune) == 108 and all(r[0] and r[1] for r in by_commune)
    assert sum(r[2] for r in by_commune) == 1268 and sum(r[3] for r in by_commune) == 906
    designed = design.sites_of_commune()
    assert {r[0]: r[2] for r in by_commune if r[2]} == designed
    carriers: dict[str, set] = {}
    for s in design.stations:
        carriers.setdefault(s.commune.code, set()).add(s.carrier)
    assert {r[0]: set(r[4]) for r in by_commune if r[4]} == carriers
    rolled = dict(sample_run.query("select new_unit_code, sum(sites) from gold.telecom_coverage_by_commune group by 1"))
    by_unit = sample_run.query("select new_unit_code, sites, old_commune_codes from gold.telecom_coverage_by_new_unit")
    assert {u: s for u, s, _ in by_unit} == rolled
    assert sorted(c for _, _, codes in by_unit for c in codes) == sorted(r[0] for r in by_commune)
    comments = dict(sample_run.query("select table_name, comment from duckdb_tables() where schema_name = 'gold'"))
    assert "4G" in comments["telecom_coverage_gaps"]


NETWORK_TABLES = [
    "silver.bts_stations",
    "quarantine.bts_stations",
    "silver.bts_sites",
    "gold.telecom_coverage_by_commune",
    "gold.telecom_coverage_by_new_unit",
    "gold.telecom_coverage_gaps",
    "silver.postal_enterprises",
    "quarantine.postal_enterprises",
    "silver.postal_service_points",
    "quarantine.postal_service_points",
    "gold.postal_network_by_commune",
    "gold.postal_network_by_new_unit",
    "gold.ioc_scorecard",
]


def test_re_delivering_the_same_files_changes_nothing(published: Pipeline) -> None:
    before = {t: published.query(f"select * from {t} order by all") for t in NETWORK_TABLES}
    bronze_rows = {t: published.lake.row_count("bronze", t) for t in ("bts_stations", "postal_service_points")}
    # the same register delivered again under a new name is the same delivery: loaded once, by content
    copy = published.landing / "telecom" / "bts" / "vinaphone_20220501.xlsx"
    shutil.copy(published.landing / sample.NEWEST_FILES["vinaphone"], copy)
    result = published.run("refresh_telecom")
    assert result.success, failure_messages(result)
    assert {t: published.lake.row_count("bronze", t) for t in bronze_rows} == bronze_rows
    assert {t: published.query(f"select * from {t} order by all") for t in NETWORK_TABLES} == before
    bronze = result.asset_materializations_for_node("bronze__bts_stations")[0].metadata
    assert bronze["rows_loaded"].value == 0
    assert "telecom/bts/vinaphone_20220501.xlsx" in bronze["files_skipped_already_loaded"].value


def test_resolve_columns_reads_both_eras() -> None:
    """Before the reform a row carries its old commune and district and the new unit; from the reform on,
    only the new unit (districts no longer exist); errors are the resolver's, never a guess."""
    import datetime as dt

    from ioc_pipeline.units import resolve_columns

    frame = pl.DataFrame(
        {
            "name": ["P.2", "Phường 2", "Xã Không Tên", "Phường Phú Lợi", None],
            "district": ["TX Vĩnh Châu", None, None, None, None],
            "day": [dt.date(2022, 4, 30), dt.date(2022, 4, 30), dt.date(2022, 4, 30), dt.date(2025, 9, 1), None],
        }
    )
    out = resolve_columns(frame, "name", "district", "day").to_dicts()
    assert [r["unit_error"] for r in out] == [None, "unit_ambiguous", "unit_unknown", None, "unit_missing"]
    assert (out[0]["commune_code"], out[0]["district_code"], out[0]["district_name"]) == (
        "31801",
        "950",
        "Thị xã Vĩnh Châu",
    )
    assert out[0]["new_unit_code"] and out[0]["new_unit_name"]
    assert out[3]["commune_code"] is None and out[3]["district_code"] is None and out[3]["new_unit_code"] == "31510"
    assert "3 districts" in out[1]["unit_detail"] and out[1]["new_unit_code"] is None
