"""The postal network end to end: the founding report's figures, statuses that must not count,
quarantine (including points whose enterprise was refused), units, and the network tables."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from ioc_pipeline.sample import postal as sample
from ioc_pipeline.sample.__main__ import SEED
from tests.conftest import Pipeline

FILES = {"enterprises": sample.ENTERPRISES_FILE, "service_points": sample.SERVICE_POINTS_FILE}
TABLES = {"enterprises": "postal_enterprises", "service_points": "postal_service_points"}


@pytest.fixture(scope="module")
def design() -> sample.Design:
    return sample.design(SEED)


def test_sample_reproduces_the_founding_report(sample_run: Pipeline) -> None:
    scorecard = sample_run.scorecard()
    assert scorecard["postal_enterprises"] == 15
    assert scorecard["postal_service_points"] == 186
    dates = sample_run.query(
        "select distinct as_of_date::varchar from gold.ioc_scorecard where indicator_code like 'postal%'"
    )
    assert dates == [("2022-04-30",)]


def test_suspended_and_revoked_enterprises_are_kept_but_not_counted(
    sample_run: Pipeline, design: sample.Design
) -> None:
    statuses = dict(sample_run.query("select status, count(*) from silver.postal_enterprises group by 1"))
    assert statuses == {"active": 15, "suspended": 8, "revoked": 12}
    assert sample_run.query("select count(*) from silver.postal_enterprises where is_active") == [(15,)]
    points = dict(sample_run.query("select enterprise_active, count(*) from silver.postal_service_points group by 1"))
    assert points == {True: 186, False: sample.POINTS_OF_SUSPENDED}
    counted = sample_run.query("select sum(service_points) from gold.postal_network_by_commune")
    assert counted == [(186,)] == [(sum(p.counted for p in design.points),)]


def test_every_bad_row_kind_is_quarantined_with_its_rule(sample_run: Pipeline) -> None:
    for file, table in TABLES.items():
        quarantined = sample_run.query(f"select rules, source_file, reason from quarantine.{table}")
        bad = [rules for f, rules, _ in sample.BAD_ROWS if f == file]
        assert len(quarantined) == len(bad), file
        for rule in {r for rules in bad for r in rules}:
            hits = [q for q in quarantined if rule in q[0]]
            assert len(hits) == sum(rule in rules for rules in bad), rule
            assert all(q[1] == FILES[file] and rule in q[2] for q in hits), rule
    # a point of the enterprise whose status no one could read is refused with it, not counted
    refused = sample_run.query("select reason from quarantine.postal_service_points where rule = 'enterprise_exists'")
    assert any(sample.DISSOLVED_TAX_CODE in r[0] for r in refused)


def test_clean_plus_quarantined_equals_delivered_per_file(sample_run: Pipeline) -> None:
    for file, table in TABLES.items():
        delivered = sorted(sample_run.lake.read("bronze", table)["_source_row"].to_list())
        placed = sample_run.query(
            f"select source_row from silver.{table} union all select source_row from quarantine.{table}"
        )
        assert sorted(r[0] for r in placed) == delivered, file
    first = sample_run.lake.read("bronze", "postal_enterprises")["_source_row"].min()
    assert first == 5  # the workbook has two title rows and a blank row above its header


def test_service_points_resolve_as_designed(sample_run: Pipeline, design: sample.Design) -> None:
    rows = sample_run.query(
        "select enterprise_tax_code, point_code, point_type, commune_code, new_unit_code "
        "from silver.postal_service_points"
    )
    got = {(t, c): (kind, commune) for t, c, kind, commune, _ in rows}
    assert got == {(p.tax_code, p.code): (p.point_type, p.commune.code) for p in design.points}
    assert all(r[4] for r in rows)
    by_type = sample_run.query(
        "select sum(post_office_1), sum(post_office_2), sum(post_office_3), sum(commune_cultural_post), "
        "sum(postal_agent), sum(transaction_point) from gold.postal_network_by_new_unit"
    )[0]
    designed = Counter(p.point_type for p in design.points if p.counted)
    assert by_type == tuple(designed[t] for t in sample.TYPE_NAMES)


def test_network_is_readable_by_old_and_new_units(sample_run: Pipeline, design: sample.Design) -> None:
    by_commune = sample_run.query(
        "select commune_code, new_unit_code, service_points, enterprises from gold.postal_network_by_commune"
    )
    assert len(by_commune) == 108
    rolled = dict(
        sample_run.query("select new_unit_code, sum(service_points) from gold.postal_network_by_commune group by 1")
    )
    by_unit = dict(sample_run.query("select new_unit_code, service_points from gold.postal_network_by_new_unit"))
    assert by_unit == rolled
    enterprises: dict[str, set] = {}
    for p in design.points:
        if p.counted:
            enterprises.setdefault(p.commune.code, set()).add(p.tax_code)
    assert {c: n for c, _, _, n in by_commune if n} == {c: len(t) for c, t in enterprises.items()}
    assert sample_run.query("select count(*) from gold.postal_network_by_new_unit where enterprises > 0")[0][0] > 20


def test_enterprise_columns_are_typed(sample_run: Pipeline) -> None:
    frame = sample_run.lake.read("silver", "postal_enterprises")
    assert frame.schema["licence_date"] == pl.Date and frame.schema["scopes"] == pl.List(pl.String)
    assert frame["licence_date"].null_count() == 0
    public = frame.filter(pl.col("enterprise_name") == sample.PUBLIC_OPERATOR).row(0, named=True)
    assert public["scopes"] == ["provincial", "interprovincial", "international"] and public["is_active"]
