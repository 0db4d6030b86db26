"""BTS stations → physical sites: the de-duplication the landing-zone contract asks for (feed 2).

    stations (carrier, code, lon, lat, shared-site code)
        │ edges: same shared-site code; or ≤ 20 m apart (candidates from a ~20 m grid, 5 neighbour cells)
        ▼ union-find over the edges (connected components: A–B 15 m, B–C 15 m ⇒ A, B, C one site)
    site_id per station (stable: derived from the site's smallest station key)

Why a grid: a national register has tens of thousands of stations, and comparing every pair is
quadratic (10⁵ stations = 5·10⁹ pairs). Cells are at least `radius` wide in both directions at
every latitude of the data, so two stations within `radius` are in the same or adjacent cells;
each cell is joined with itself and four of its neighbours (the other four see it from their
side), which keeps the work proportional to the number of stations times the local density.
Candidate pairs are then measured exactly (haversine); only those within `radius` become edges.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import polars as pl

SITE_RADIUS_M = 20.0
EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180.0  # along a meridian, on the sphere haversine uses
_NEIGHBOURS = ((0, 0), (0, 1), (1, -1), (1, 0), (1, 1))  # half of the 3×3 block: each pair is seen once


def haversine_m(lon1: pl.Expr, lat1: pl.Expr, lon2: pl.Expr, lat2: pl.Expr) -> pl.Expr:
    """Great-circle distance in metres, as a polars expression."""
    p1, p2 = lat1.radians(), lat2.radians()
    a = ((p2 - p1) / 2).sin() ** 2 + p1.cos() * p2.cos() * (((lon2 - lon1).radians()) / 2).sin() ** 2
    return 2 * EARTH_RADIUS_M * a.sqrt().arcsin()


def proximity_pairs(lon: np.ndarray, lat: np.ndarray, radius_m: float = SITE_RADIUS_M) -> pl.DataFrame:
    """Pairs (i, j), i < j, of points at most `radius_m` apart, with their distance `d_m`."""
    empty = pl.DataFrame(schema={"i": pl.UInt32, "j": pl.UInt32, "d_m": pl.Float64})
    if len(lon) < 2:
        return empty
    # a degree of longitude is shortest at the highest latitude of the data: size cells for it
    widest = min(89.0, float(np.max(np.abs(lat))) + 0.5)
    cell_lat = radius_m / METRES_PER_DEGREE
    cell_lon = radius_m / (METRES_PER_DEGREE * math.cos(math.radians(widest)))
    points = pl.DataFrame(
        {
            "i": np.arange(len(lon), dtype=np.uint32),
            "lon": lon,
            "lat": lat,
            "cx": np.floor(lon / cell_lon).astype(np.int64),
            "cy": np.floor(lat / cell_lat).astype(np.int64),
        }
    )
    others = points.rename({"i": "j", "lon": "lon_j", "lat": "lat_j"})
    pairs = []
    for dx, dy in _NEIGHBOURS:
        shifted = others.with_columns(pl.col("cx") - dx, pl.col("cy") - dy)
        joined = points.join(shifted, on=["cx", "cy"], how="inner")
        if (dx, dy) == (0, 0):
            joined = joined.filter(pl.col("i") < pl.col("j"))
        pairs.append(joined.select("i", "j", "lon", "lat", "lon_j", "lat_j"))
    candidates = pl.concat(pairs)
    measured = candidates.select(
        pl.min_horizontal("i", "j").alias("i"),
        pl.max_horizontal("i", "j").alias("j"),
        haversine_m(pl.col("lon"), pl.col("lat"), pl.col("lon_j"), pl.col("lat_j")).alias("d_m"),
    )
    return measured.filter(pl.col("d_m") <= radius_m) if measured.height else empty


def shared_code_pairs(codes: list[str | None]) -> list[tuple[int, int]]:
    """Edges (first station with a code, each other station with it): enough to connect the group."""
    first: dict[str, int] = {}
    edges: list[tuple[int, int]] = []
    for i, code in enumerate(codes):
        if code is None:
            continue
        if code in first:
            edges.append((first[code], i))
        else:
            first[code] = i
    return edges


def components(n: int, edges_i: np.ndarray, edges_j: np.ndarray) -> np.ndarray:
    """Connected components of n nodes: the component's smallest node for each node (union-find)."""
    parent = list(range(n))

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in zip(edges_i.tolist(), edges_j.tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
    return np.fromiter((find(x) for x in range(n)), dtype=np.int64, count=n)


def site_id_of(station_key: str) -> str:
    """A site's id from its smallest station key (`carrier:code`): stable across runs and row order,
    and unchanged when other carriers join or leave the site."""
    return "S" + hashlib.sha1(station_key.encode("utf-8")).hexdigest()[:12]


def assign_sites(stations: pl.DataFrame, radius_m: float = SITE_RADIUS_M) -> pl.DataFrame:
    """`stations` (carrier, station_code, longitude, latitude, shared_site_code) plus `site_id`.

    Two stations are one site when they carry the same shared-site code or stand within `radius_m`
    of each other; sites are the connected components of that relation. Row order is kept.
    """
    if stations.is_empty():
        return stations.with_columns(pl.lit(None, pl.String).alias("site_id"))
    keys = stations.select(
        (pl.col("carrier") + ":" + pl.col("station_code")).alias("key"),
        pl.col("shared_site_code").str.strip_chars().str.to_uppercase().alias("code"),
    )
    near = proximity_pairs(stations["longitude"].to_numpy(), stations["latitude"].to_numpy(), radius_m)
    shared = shared_code_pairs(keys["code"].to_list())
    edges_i = np.concatenate([near["i"].to_numpy().astype(np.int64), np.array([a for a, _ in shared], np.int64)])
    edges_j = np.concatenate([near["j"].to_numpy().astype(np.int64), np.array([b for _, b in shared], np.int64)])
    root = components(stations.height, edges_i, edges_j)
    anchors = (
        pl.DataFrame({"root": root, "key": keys["key"]})
        .group_by("root")
        .agg(pl.col("key").min().alias("anchor"))
        .with_columns(pl.col("anchor").map_elements(site_id_of, return_dtype=pl.String).alias("site_id"))
    )
    site = pl.DataFrame({"root": root}).join(anchors, on="root", how="left", maintain_order="left")["site_id"]
    return stations.with_columns(site.alias("site_id"))
