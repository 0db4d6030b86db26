"""`python -m ioc_pipeline.sample [--out DIR] [--seed N] [--feeds a,b] [--scale S] [--province 92,93,94]`: write a
sample delivery.

Without `--scale`, the small committed sample. With `--scale S`, the feeds that support it write a
larger delivery on demand (dossiers: about S million versions a year, a whole year unless `--months`).
With `--province`, the delivery of those former provinces of the merged Cần Thơ city: 94 (Sóc Trăng) is
the committed sample, 92 and 93 a small delivery of their own (`sample/province.py`); one province is
written at `--out`, several each under `--out/<code>/` (the multi-province landing layout, provinces.py).
`--scale` with `--province`: each province's dossiers at that scale, for its own catalog and units (the
scale-out benchmark's three provinces).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ioc_pipeline.sample import dossiers, postal, procedures, province, telecom

LEGACY_PROVINCE = "94"  # Sóc Trăng: the committed sample is its delivery
SEED = 20220517  # the day the steering committee asked for the data
FEEDS: dict[str, Callable[[Path, int], list[Path]]] = {
    "procedures": procedures.write,
    "telecom": telecom.write,
    "postal": postal.write,
    "dossiers": dossiers.write,
}
SCALED: dict[str, Callable[[Path, int, float, int], list[Path]]] = {
    "dossiers": dossiers.write_scaled,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ioc_pipeline.sample", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/landing"), help="landing root to write into")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (same seed, same files)")
    parser.add_argument("--feeds", default=",".join(FEEDS), help=f"comma-separated, of: {', '.join(FEEDS)}")
    parser.add_argument("--scale", type=float, help="about S million dossier versions a year (benchmark sizes)")
    parser.add_argument("--months", type=int, default=12, help="with --scale: months from January 2022 (1-12)")
    parser.add_argument("--province", help="former province code(s), comma-separated: 92, 93, 94 (Sóc Trăng)")
    args = parser.parse_args(argv)
    if args.province:
        codes = [c.strip() for c in args.province.split(",") if c.strip()]
        for code in codes:
            out = args.out / code if len(codes) > 1 else args.out
            if code == LEGACY_PROVINCE:
                paths = [p for name in args.feeds.split(",") for p in _write(name, out, args)]
            else:
                paths = province.write(out, code, args.seed, args.scale, args.months)
            for path in paths:
                print(path)
        return
    for name in args.feeds.split(","):
        for path in _write(name, args.out, args):
            print(path)


def _write(feed: str, out: Path, args: argparse.Namespace) -> list[Path]:
    if args.scale is not None and feed in SCALED:
        return SCALED[feed](out, args.seed, args.scale, args.months)
    return FEEDS[feed](out, args.seed)


if __name__ == "__main__":
    main()
