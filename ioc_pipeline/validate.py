"""`python -m ioc_pipeline.cli validate FILE…`: a department checks its file before sending it.

    FILE ──the feed's reader (sources/)──► rows ──the feed's GatedTable (typed, rules, policy)──► verdict
                                                                                └──► feedback workbook

Exactly the pipeline's code path (`layers.GatedTable`), offline: nothing is read from or written to
the lake or the warehouse. A service-point register is checked against an enterprise register given
in the same call; alone, the enterprise rule is not judged (the summary says so).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import polars as pl

from ioc_pipeline import feedback, gate
from ioc_pipeline.assets.layers import GatedTable
from ioc_pipeline.feeds import DOMAINS, feed
from ioc_pipeline.lake import Lake, Landing, matches
from ioc_pipeline.sources.files import LOAD_ID, DeliveryError

EXIT_PUBLISHABLE, EXIT_BLOCKED, EXIT_REFUSED = 0, 3, 4


def gated_tables() -> list[GatedTable]:
    """Every gated table of every domain (each domain module's `GATED` list)."""
    return [spec for domain in DOMAINS for spec in getattr(domain.module(), "GATED", [])]


def table_for(path: Path, specs: list[GatedTable]) -> GatedTable | None:
    """The gated table whose feed's file names match `path` (folders are not required: a clerk's
    file may sit anywhere; its name says which feed it is). A feed whose names are only `*.csv`
    (the carriers' registers) also needs the name to start with one of its parts (a carrier)."""
    name = path.name
    for spec in specs:
        names = tuple(posixpath.basename(p) for p in spec.feed.patterns)
        if not matches(name.lower(), tuple(n.lower() for n in names)):
            continue
        parts = feed(spec.table).parts
        if parts and spec.feed.partition_of and spec.feed.partition_of(name) not in parts:
            continue
        return spec
    return None


@dataclass
class Checked:
    summary: feedback.Summary
    workbook: bytes
    exit_code: int


def read_file(path: Path, spec: GatedTable) -> tuple[pl.DataFrame, str | None]:
    """The file as bronze would hold it (the feed's own reader), as the batch the gate sees; its encoding."""
    landing = Landing(str(path.parent))
    file = next(f for f in landing.files(path.name))
    encoding, tables = spec.reader(landing, file, spec.feed).parse()
    frame = pl.concat([pl.DataFrame(t) for t in tables], how="diagonal_relaxed")
    if LOAD_ID not in frame.columns:  # what dlt adds in bronze: one load here
        frame = frame.with_columns(pl.lit("validate").alias(LOAD_ID))
    return spec.batch(frame).with_row_index(gate.ROW_ID), encoding


def check(path: Path, spec: GatedTable, references: dict[str, pl.DataFrame]) -> Checked:
    delivered, encoding = read_file(path, spec)
    typed_lake = cast(Lake, _ReferenceLake(references)) if references else None
    result = spec.gate(delivered, typed_lake)
    decision = gate.decide(spec.table, result, None, spec.policy())
    quarantine = gate.quarantine_rows(delivered, result.rejected)
    vi, en = decision.reason()
    summary = feedback.Summary(
        feed=spec.table,
        file=path.name,
        rows_read=result.delivered,
        rows_accepted=result.clean.height,
        rows_refused=result.rejected.height,
        refused_by_rule={k: v for k, v in result.failures.items() if v},
        rule_texts={r.name: (r.vi or r.message, r.message) for r in spec.rules},
        published=decision.published,
        decision_vi=vi,
        decision_en=en,
        encoding=encoding,
        checked_before_sending=True,
    )
    code = EXIT_PUBLISHABLE if decision.published else EXIT_BLOCKED
    return Checked(summary, feedback.workbook(summary, quarantine), code)


class _ReferenceLake:
    """Reference tables given in the same call (an enterprise register beside its service points),
    read by a feed's `typed` as it reads the lake's silver."""

    def __init__(self, tables: dict[str, pl.DataFrame]) -> None:
        self.tables = tables

    def exists(self, layer: str, table: str) -> bool:
        return layer == "silver" and table in self.tables

    def read(self, layer: str, table: str) -> pl.DataFrame:
        return self.tables[table]


def validate(paths: list[str], out: str | None) -> int:
    specs = gated_tables()
    codes: list[int] = []
    references: dict[str, pl.DataFrame] = {}
    ordered = sorted((Path(p) for p in paths), key=lambda p: 0 if "enterprises" in p.name else 1)
    for path in ordered:
        spec = table_for(path, specs)
        if spec is None or not path.is_file():
            missing = not path.is_file()
            why = "không tìm thấy tệp (file not found)" if missing else "tên tệp không khớp nguồn nào (no feed)"
            print(f"Tệp: {path.name}\n  Bị từ chối: {why}.")
            codes.append(EXIT_REFUSED)
            continue
        try:
            checked = check(path, spec, references)
        except DeliveryError as error:
            print(f"Tệp: {path.name} (nguồn {spec.table})\n  Bị từ chối, không thể nạp: {error.problem_vi}")
            print(f"  (refused: {error.problem})")
            codes.append(EXIT_REFUSED)
            continue
        for line in feedback.summary_lines(checked.summary):
            print(line)
        if spec.table == "postal_service_points" and "postal_enterprises" not in references:
            print("  (Chưa kiểm tra quy tắc enterprise_exists: hãy kiểm tra cùng tệp danh sách doanh nghiệp.)")
        folder = Path(out) if out else path.parent
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{path.name}.phan_hoi.xlsx"
        target.write_bytes(checked.workbook)
        print(f"  Sổ phản hồi: {target}")
        codes.append(checked.exit_code)
        if spec.table == "postal_enterprises" and checked.exit_code == EXIT_PUBLISHABLE:
            references["postal_enterprises"] = _clean_enterprises(path, spec)
    return max(codes) if codes else EXIT_PUBLISHABLE


def _clean_enterprises(path: Path, spec: GatedTable) -> pl.DataFrame:
    delivered, _ = read_file(path, spec)
    result = spec.gate(delivered, None)
    return result.clean.select(spec.silver_columns)
