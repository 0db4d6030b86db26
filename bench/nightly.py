"""The nightly delivery of the benchmark: the newest 1 % of dossier versions, held back from the export.

The generated export holds a year of versions in month files (`dossiers_YYYYMM.ndjson`, by month of
change). The versions changed after a cutoff (chosen so that 1 % of all versions are newer) are
taken out of their month files and written to one more file, `dossiers_<YYYYMMDD>.ndjson`, dated the
day of the newest version: what the one-stop-shop system would export the night after. These are new
dossiers received in the last days and new versions of open ones (a status change), so the nightly
run must rebuild only the months they belong to.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl

from ioc_pipeline import parsing

UPDATED = re.compile(rb'"NgayCapNhat"\s*:\s*"([^"]*)"')


def _stamps(lines: list[bytes]) -> pl.Series:
    texts = [(m.group(1).decode("utf-8", "replace") if (m := UPDATED.search(line)) else None) for line in lines]
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    return frame.select(parsing.datetime_local("t")).get_column("t")


def hold_back(landing: Path, nightly: Path, share: float) -> dict:
    files = sorted((landing / "public_service").glob("dossiers_*.ndjson"))
    counts = {}
    for path in files:
        with open(path, "rb") as handle:
            counts[path] = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b""))
    total = sum(counts.values())
    wanted = max(1, int(total * share))
    # the newest versions are in the last month files: read from the end until enough are seen
    lines_by_file: dict[Path, list[bytes]] = {}
    stamps: list[pl.Series] = []
    seen = 0
    for path in reversed(files):
        lines = path.read_bytes().splitlines()
        lines_by_file[path] = lines
        stamps.append(_stamps(lines))
        seen += len(lines)
        if seen >= 3 * wanted:
            break
    every = pl.concat(stamps).drop_nulls().sort(descending=True)
    cutoff = every[min(wanted, every.len()) - 1]
    newest = every[0]
    name = f"dossiers_{newest:%Y%m%d}.ndjson"
    (nightly / "public_service").mkdir(parents=True, exist_ok=True)
    moved = 0
    with open(nightly / "public_service" / name, "wb") as out:
        for path, lines in lines_by_file.items():
            newer = _stamps(lines) >= cutoff
            keep = [line for line, late in zip(lines, newer.fill_null(False).to_list(), strict=True) if not late]
            later = [line for line, late in zip(lines, newer.fill_null(False).to_list(), strict=True) if late]
            if not later:
                continue
            out.write(b"\n".join(later) + b"\n")
            moved += len(later)
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(b"\n".join(keep) + b"\n")
            os.replace(temporary, path)
    return {
        "file": f"public_service/{name}",
        "versions": moved,
        "share": round(moved / total, 4) if total else 0,
        "versions_in_full_delivery": total - moved,
        "cutoff": str(cutoff),
    }
