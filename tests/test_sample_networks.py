"""The telecom and postal sample generators: their design holds the founding report's figures and
the geometry the de-duplication tests rely on, and the committed sample is their output."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from ioc_pipeline.sample import postal, telecom
from ioc_pipeline.sample.__main__ import SEED
from ioc_pipeline.units import province_bbox
from tests.conftest import REPO


@pytest.fixture(scope="module")
def design() -> telecom.Design:
    return telecom.design(SEED)


def test_the_design_holds_the_reports_figures(design: telecom.Design) -> None:
    assert len(design.site_technologies) == 1268
    counts = Counter(t for techs in design.site_technologies for t in techs)
    assert counts == {"2G": 958, "3G": 1124, "4G": 906, "5G": 3}
    union: dict[int, set] = {}
    for s in design.stations:
        union.setdefault(s.site, set()).update(s.technologies)
    assert {i: tuple(sorted(t)) for i, t in union.items()} == dict(enumerate(design.site_technologies))
    assert all(s.technologies for s in design.stations)
    assert {s.commune.code for s in design.stations}.isdisjoint(telecom.NO_SITE_COMMUNES)
    no_4g = {s.site for s in design.stations if s.commune.code in telecom.NO_4G_COMMUNES}
    assert no_4g and all("4G" not in design.site_technologies[i] for i in no_4g)


def _distances(design: telecom.Design) -> tuple[np.ndarray, np.ndarray]:
    lon = np.array([s.lon for s in design.stations])
    lat = np.array([s.lat for s in design.stations])
    p = np.radians(lat)
    a = (
        np.sin((p[None, :] - p[:, None]) / 2) ** 2
        + np.cos(p[:, None]) * np.cos(p[None, :]) * np.sin(np.radians(lon[None, :] - lon[:, None]) / 2) ** 2
    )
    site = np.array([s.site for s in design.stations])
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(a)), site[:, None] == site[None, :]


def test_the_geometry_separates_sites_with_a_margin(design: telecom.Design) -> None:
    """Stations of different sites are more than 24 m apart; the near misses are 25-35 m apart; stations
    of one site with no shared code are within 15 m of another of its stations (all-pairs, numpy)."""
    distance, same = _distances(design)
    np.fill_diagonal(distance, np.inf)
    assert distance[~same].min() > 24.0
    near_miss = [i for i, kind in enumerate(design.site_kinds) if kind == "near_miss"]
    assert len(near_miss) == 2 * telecom.NEAR_MISSES
    closest_other = np.where(same, np.inf, distance).min(axis=1)
    first = {}
    for n, s in enumerate(design.stations):
        first.setdefault(s.site, n)
    assert all(24.9 <= closest_other[first[i]] <= 35.1 for i in near_miss)
    for n, s in enumerate(design.stations):
        if s.shared_code is None and design.site_kinds[s.site] not in ("single", "near_miss"):
            assert np.where(same[n], distance[n], np.inf).min() <= 15.0
    for site in (i for i, kind in enumerate(design.site_kinds) if kind == "chain"):
        members = [n for n, s in enumerate(design.stations) if s.site == site]
        span = distance[np.ix_(members, members)]
        assert len(members) == 3 and span[np.isfinite(span)].max() > 20.0  # linked only through the middle
    codes = Counter(s.shared_code for s in design.stations if s.shared_code)
    assert set(codes.values()) <= {2, 3} and len(codes) == sum(telecom.SHARED_BY_CODE) + telecom.CODE_AND_DISTANCE


def test_every_station_is_inside_the_province(design: telecom.Design) -> None:
    min_lon, min_lat, max_lon, max_lat = province_bbox()
    assert all(min_lon < s.lon < max_lon and min_lat < s.lat < max_lat for s in design.stations)
    assert len({(s.carrier, s.code) for s in design.stations}) == len(design.stations)


def test_the_postal_design_holds_the_reports_figures() -> None:
    truth = postal.design(SEED)
    assert Counter(e.status for e in truth.enterprises) == {"active": 15, "suspended": 8, "revoked": 12}
    assert sum(p.counted for p in truth.points) == 186
    assert len({e.tax_code for e in truth.enterprises}) == len(truth.enterprises)
    assert len({(p.tax_code, p.code) for p in truth.points}) == len(truth.points)


def _content(path: Path) -> list[list[object]]:
    if path.suffix == ".xlsx":  # workbooks carry their creation time: compare the cells
        book = load_workbook(path, read_only=True)
        try:
            return [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
        finally:
            book.close()
    return [[path.read_bytes()]]


def test_the_committed_sample_is_the_generators_output(tmp_path: Path) -> None:
    written = telecom.write(tmp_path, SEED) + postal.write(tmp_path, SEED)
    for path in written:
        relative = path.relative_to(tmp_path)
        assert _content(REPO / "data" / "landing" / relative) == _content(path), relative
    assert len(written) == 7
