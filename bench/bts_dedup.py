"""How BTS site de-duplication scales: a national-size register, generated on demand (not a test).

    python bench/bts_dedup.py                       # 10k, 50k, 100k, 200k stations
    python bench/bts_dedup.py --sizes 100000 --all-pairs-up-to 20000

Stations are spread the way a national register is: around ~700 towns from 8.6° to 23.3° N
(dense centres, sparse countryside), with a third of the sites shared by two or three carriers
(by shared-site code, or 1-15 m apart). For each size it times `ioc_pipeline.sites.assign_sites`
(grid candidates + exact distances + union-find) and, for the small sizes, an all-pairs
comparison in numpy (chunked) to show what the grid avoids.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ioc_pipeline.sites import SITE_RADIUS_M, assign_sites, proximity_pairs  # noqa: E402

CARRIERS = np.array(["viettel", "vinaphone", "mobifone", "vietnamobile"])
METRES_PER_DEGREE = math.pi * 6_371_008.8 / 180.0


def national_register(stations: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    sites = int(stations / 1.35)
    towns = np.column_stack([rng.uniform(102.2, 109.4, 700), rng.uniform(8.6, 23.3, 700)])
    spread_km = rng.choice([1.5, 4.0, 12.0], size=700, p=[0.2, 0.4, 0.4])
    town = rng.integers(0, 700, sites)
    north = rng.normal(0, 1, sites) * spread_km[town] * 1000
    east = rng.normal(0, 1, sites) * spread_km[town] * 1000
    lat = towns[town, 1] + north / METRES_PER_DEGREE
    lon = towns[town, 0] + east / (METRES_PER_DEGREE * np.cos(np.radians(lat)))
    members = rng.choice([1, 2, 3], size=sites, p=[0.67, 0.25, 0.08])
    site = np.repeat(np.arange(sites), members)[:stations]
    n = len(site)
    by_code = rng.random(sites) < 0.5
    offset = np.where(np.r_[False, site[1:] == site[:-1]], rng.uniform(1, 15, n), 0.0)
    bearing = rng.uniform(0, 2 * math.pi, n)
    s_lat = lat[site] + offset * np.cos(bearing) / METRES_PER_DEGREE
    s_lon = lon[site] + offset * np.sin(bearing) / (METRES_PER_DEGREE * np.cos(np.radians(lat[site])))
    coded = by_code[site] & (members[site] > 1)
    return pl.DataFrame(
        {
            "carrier": CARRIERS[rng.integers(0, 4, n)],
            "station_code": np.char.add("S", np.arange(n).astype(str)),
            "longitude": s_lon,
            "latitude": s_lat,
            "site": site,
            "coded": coded,
        }
    ).select(
        "carrier",
        "station_code",
        "longitude",
        "latitude",
        pl.when("coded").then(pl.format("HT-{}", "site")).alias("shared_site_code"),
    )


def all_pairs_seconds(lon: np.ndarray, lat: np.ndarray, radius: float = SITE_RADIUS_M, chunk: int = 500) -> float:
    """Every pair measured (haversine, numpy, chunked): what the grid avoids."""
    started = time.perf_counter()
    p = np.radians(lat)
    found = 0
    for start in range(0, len(lon), chunk):
        i = slice(start, start + chunk)
        dl = np.radians(lon[None, :] - lon[i, None])
        dp = p[None, :] - p[i, None]
        a = np.sin(dp / 2) ** 2 + np.cos(p[i, None]) * np.cos(p[None, :]) * np.sin(dl / 2) ** 2
        found += int((2 * 6_371_008.8 * np.arcsin(np.sqrt(a)) <= radius).sum())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000,100000,200000")
    parser.add_argument("--all-pairs-up-to", type=int, default=20000)
    args = parser.parse_args()
    columns = ("stations", 9), ("sites", 8), ("pairs≤20m", 10), ("grid s", 7), ("sites s", 8), ("µs/station", 10)
    print(" ".join(f"{name:>{width}}" for name, width in (*columns, ("all-pairs s", 11))))
    for size in (int(s) for s in args.sizes.split(",")):
        register = national_register(size)
        lon, lat = register["longitude"].to_numpy(), register["latitude"].to_numpy()
        started = time.perf_counter()
        pairs = proximity_pairs(lon, lat)
        grid = time.perf_counter() - started
        started = time.perf_counter()
        linked = assign_sites(register)
        total = time.perf_counter() - started
        brute = f"{all_pairs_seconds(lon, lat):11.1f}" if size <= args.all_pairs_up_to else f"{'-':>11}"
        print(
            f"{size:>9} {linked['site_id'].n_unique():>8} {pairs.height:>10} {grid:>7.2f} {total:>8.2f} "
            f"{total / size * 1e6:>10.1f} {brute}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
