"""`python -m ioc_pipeline.sample [--out DIR] [--seed N] [--feeds a,b]`: write a sample delivery."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ioc_pipeline.sample import postal, procedures, telecom

SEED = 20220517  # the day the steering committee asked for the data
FEEDS: dict[str, Callable[[Path, int], list[Path]]] = {
    "procedures": procedures.write,
    "telecom": telecom.write,
    "postal": postal.write,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ioc_pipeline.sample", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/landing"), help="landing root to write into")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (same seed, same files)")
    parser.add_argument("--feeds", default=",".join(FEEDS), help=f"comma-separated, of: {', '.join(FEEDS)}")
    args = parser.parse_args(argv)
    for name in args.feeds.split(","):
        for path in FEEDS[name](args.out, args.seed):
            print(path)


if __name__ == "__main__":
    main()
