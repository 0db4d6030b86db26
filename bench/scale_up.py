"""Large deliveries fast: the S=1 dossier export replicated k times, with distinct dossier codes.

The sample generator writes about 4,000 dossier versions a second on this machine (every version is
a Python dict serialised to JSON), so S=10 (ten million versions) would take most of an hour. The
benchmark measures the pipeline, not the generator: for S=k it streams the S=1 year k times into
the month files, replica r's dossier codes prefixed `R<r>-`, at disk speed. Distributions, bad rows
and spellings are those of S=1; applicants repeat across replicas (distinct applicants do not grow
k-fold), which no figure of the benchmark depends on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BLOCK = 1 << 24
KEY = b'"MaHoSo":"'
KEY_SPACED = b'"MaHoSo": "'


def _replica(data: bytes, replica: int) -> bytes:
    if replica == 0:
        return data
    prefix = f"R{replica}-".encode()
    return data.replace(KEY, KEY + prefix).replace(KEY_SPACED, KEY_SPACED + prefix)


def _copy_lines(source: Path, out, replica: int) -> None:  # noqa: ANN001 - a binary file
    rest = b""
    with open(source, "rb") as handle:
        while block := handle.read(BLOCK):
            data = rest + block
            cut = data.rfind(b"\n") + 1
            data, rest = data[:cut], data[cut:]
            out.write(_replica(data, replica))
    if rest:
        out.write(_replica(rest + b"\n", replica))


def replicate(landing: Path, nightly: Path, target: Path, factor: int) -> dict:
    """`target` gets every non-dossier file of `landing` (hard links) and the dossier month files
    `factor` times over (the S=1 nightly versions folded back into their month file first)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    held = sorted((nightly / "public_service").glob("dossiers_*.ndjson")) if nightly.exists() else []
    months = sorted((landing / "public_service").glob("dossiers_*.ndjson"))
    for path in sorted(landing.rglob("*")):
        relative = path.relative_to(landing)
        if path.is_file() and relative.parts[0] != "public_service" and not path.name.startswith("."):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target / relative)
    (target / "public_service").mkdir(parents=True, exist_ok=True)
    written = 0
    for index, path in enumerate(months):
        sources = [path, *held] if index == len(months) - 1 else [path]
        with open(target / "public_service" / path.name, "wb") as out:
            for replica in range(factor):
                for source in sources:
                    _copy_lines(source, out, replica)
        written += (target / "public_service" / path.name).stat().st_size
    return {"replicated_from": str(landing), "factor": factor, "dossier_bytes": written}
