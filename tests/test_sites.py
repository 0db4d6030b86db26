"""De-duplication of BTS stations into sites (ioc_pipeline.sites): the contract's rule, its edges,
and the grid against an all-pairs comparison."""

from __future__ import annotations

import math
import random

import numpy as np
import polars as pl
import pytest

from ioc_pipeline.assets.telecom import sites_of
from ioc_pipeline.sample.places import metres, offset
from ioc_pipeline.sites import assign_sites, components, proximity_pairs, site_id_of

BASE = (105.9712, 9.6025)  # TP Sóc Trăng


def stations(*rows: tuple) -> pl.DataFrame:
    """(carrier, code, lon, lat[, shared code[, technologies]]) -> a silver-shaped frame."""
    full = [(*r, *[None] * (6 - len(r))) for r in rows]
    return pl.DataFrame(
        [
            {
                "carrier": c,
                "station_code": code,
                "longitude": lon,
                "latitude": lat,
                "shared_site_code": shared,
                "technologies": list(techs or ["4G"]),
            }
            for c, code, lon, lat, shared, techs in full
        ],
        schema={
            "carrier": pl.String,
            "station_code": pl.String,
            "longitude": pl.Float64,
            "latitude": pl.Float64,
            "shared_site_code": pl.String,
            "technologies": pl.List(pl.String),
        },
    )


def site_count(frame: pl.DataFrame) -> int:
    return assign_sites(frame)["site_id"].n_unique()


@pytest.mark.parametrize("bearing", [0.0, math.pi / 4, math.pi / 2, 2.0, math.pi])
def test_15_m_apart_is_one_site_and_25_m_is_two(bearing: float) -> None:
    near = offset(*BASE, 15.0, bearing)
    far = offset(*BASE, 25.0, bearing)
    assert 14.9 < metres(*BASE, *near) < 15.1 and 24.9 < metres(*BASE, *far) < 25.1
    assert site_count(stations(("viettel", "A", *BASE), ("mobifone", "B", *near))) == 1
    assert site_count(stations(("viettel", "A", *BASE), ("mobifone", "B", *far))) == 2


def test_the_20_m_limit_is_inclusive() -> None:
    at = offset(*BASE, 19.95, 1.0)
    beyond = offset(*BASE, 20.2, 1.0)
    assert site_count(stations(("viettel", "A", *BASE), ("vinaphone", "B", *at))) == 1
    assert site_count(stations(("viettel", "A", *BASE), ("vinaphone", "B", *beyond))) == 2


def test_same_shared_site_code_is_one_site_however_far() -> None:
    far = offset(*BASE, 500.0, 0.3)
    frame = stations(("viettel", "A", *BASE, "HTDC-01"), ("vinaphone", "B", *far, " htdc-01 "))
    assert site_count(frame) == 1
    other_code = stations(("viettel", "A", *BASE, "HTDC-01"), ("vinaphone", "B", *far, "HTDC-02"))
    assert site_count(other_code) == 2


def test_sites_are_connected_components() -> None:
    """A–B 14 m, B–C 14 m, A–C 28 m: one site; D shares C's code 300 m away: still the same site."""
    b = offset(*BASE, 14.0, 1.2)
    c = offset(*b, 14.0, 1.2)
    d = offset(*c, 300.0, 0.0)
    assert metres(*BASE, *c) > 20
    frame = stations(
        ("viettel", "A", *BASE),
        ("mobifone", "B", *b),
        ("vinaphone", "C", *c, "X1"),
        ("vietnamobile", "D", *d, "X1"),
        ("viettel", "E", *offset(*BASE, 200.0, 3.0)),
    )
    sites = assign_sites(frame)["site_id"].to_list()
    assert len(set(sites[:4])) == 1 and sites[4] != sites[0]


def test_a_sites_technologies_are_the_union_of_its_stations() -> None:
    near = offset(*BASE, 10.0, 0.5)
    frame = stations(
        ("viettel", "A", *BASE, None, ["2G", "5G"]),
        ("mobifone", "B", *near, None, ["3G", "4G"]),
        ("vinaphone", "C", *offset(*BASE, 900.0, 0.5), None, ["2G"]),
    )
    linked = (
        assign_sites(frame)
        .with_columns(pl.lit("31522").alias(c) for c in ("commune_code", "new_unit_code"))
        .with_columns(
            *(pl.lit("x").alias(c) for c in ("commune_name", "district_code", "district_name", "new_unit_name")),
            pl.lit(None, pl.Date).alias("snapshot_date"),
        )
    )
    sites = sites_of(linked).sort("stations", descending=True)
    assert sites["technologies"].to_list() == [["2G", "3G", "4G", "5G"], ["2G"]]
    assert sites.row(0, named=True)["has_5g"] and not sites.row(1, named=True)["has_4g"]
    assert sites["carriers"].to_list() == [["mobifone", "viettel"], ["vinaphone"]]


def test_site_ids_are_stable_across_runs_and_row_order() -> None:
    rng = random.Random(3)
    rows = [("viettel", f"S{i:03d}", *offset(*BASE, rng.uniform(0, 3000), rng.uniform(0, 6.28))) for i in range(300)]
    rows += [("mobifone", f"M{i:03d}", *offset(*rows[i][2:4], 8.0, 1.0)) for i in range(0, 300, 3)]
    frame = stations(*rows)
    first = assign_sites(frame).select("carrier", "station_code", "site_id").sort("carrier", "station_code")
    shuffled = assign_sites(frame.sample(fraction=1.0, shuffle=True, seed=9))
    again = shuffled.select("carrier", "station_code", "site_id").sort("carrier", "station_code")
    assert first.equals(again)
    # the id comes from the site's smallest station key: another carrier joining leaves it as it was
    joined = assign_sites(pl.concat([frame, stations(("vinaphone", "Z", *rows[0][2:4]))]))
    anchor = joined.filter(pl.col("station_code") == "S000")["site_id"].item()
    assert anchor == first.filter(pl.col("station_code") == "S000")["site_id"].item() == site_id_of("mobifone:M000")


def _brute_force(lon: np.ndarray, lat: np.ndarray, radius: float) -> set[tuple[int, int]]:
    p = np.radians(lat)
    dl = np.radians(lon[None, :] - lon[:, None])
    dp = p[None, :] - p[:, None]
    a = np.sin(dp / 2) ** 2 + np.cos(p[:, None]) * np.cos(p[None, :]) * np.sin(dl / 2) ** 2
    d = 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))
    i, j = np.nonzero(np.triu(d <= radius, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize("latitude", [9.6, 23.3])  # Sóc Trăng; Hà Giang, where a degree of longitude is shortest
def test_grid_finds_exactly_the_pairs_an_all_pairs_comparison_finds(latitude: float) -> None:
    rng = np.random.default_rng(11)
    centres = rng.uniform([105.0, latitude - 0.01], [105.02, latitude + 0.01], size=(40, 2))
    points = centres[rng.integers(0, 40, 2500)] + rng.normal(0, 0.0002, size=(2500, 2))  # dense clusters
    lon, lat = points[:, 0], points[:, 1]
    found = proximity_pairs(lon, lat, 20.0)
    assert found.height > 500
    assert set(found.select("i", "j").iter_rows()) == _brute_force(lon, lat, 20.0)
    assert (found["d_m"] <= 20.0).all()


def test_components_join_every_edge_and_nothing_else() -> None:
    roots = components(7, np.array([0, 2, 5, 3]), np.array([1, 3, 6, 1]))
    assert roots.tolist() == [0, 0, 0, 0, 4, 5, 5]
