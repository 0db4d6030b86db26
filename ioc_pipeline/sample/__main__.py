"""`python -m ioc_pipeline.sample [--out DIR] [--seed N] [--feeds a,b] [--scale S]`: write a sample delivery.

Without `--scale`, the small committed sample. With `--scale S`, the feeds that support it write a
larger delivery on demand (dossiers: about S million versions a year, a whole year unless `--months`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ioc_pipeline.sample import dossiers, postal, procedures, telecom

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
    args = parser.parse_args(argv)
    for name in args.feeds.split(","):
        if args.scale is not None and name in SCALED:
            paths = SCALED[name](args.out, args.seed, args.scale, args.months)
        else:
            paths = FEEDS[name](args.out, args.seed)
        for path in paths:
            print(path)


if __name__ == "__main__":
    main()
