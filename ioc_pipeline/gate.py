"""The Great Expectations gate every feed passes between bronze and silver.

    bronze rows ──► row rules (GE expectations) ──► clean rows ──► silver
                                              └──► rejected rows + reasons ──► quarantine
    batch rules (GE + counts) ──► blocking asset checks: a failure stops gold and publish

Row rules are GE 1.x expectations run on a pandas copy of the columns they read, with the
COMPLETE result format keyed on `_row_id`, so each failing row is known with every rule it
broke. `dagster-ge` only supports GE < 1.0, hence GE is called directly here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import dagster as dg
import great_expectations as gx
import polars as pl
from great_expectations.data_context.types.base import ProgressBarsConfig

ROW_ID = "_row_id"
REJECT_RULES = "reject_rules"
REJECT_REASON = "reject_reason"
MAX_REJECT_SHARE = 0.10  # more than this share of a delivery rejected: the batch is blocked
MIN_ROW_RATIO = 0.5  # fewer than half the rows of the published snapshot: the batch is blocked

logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Rule:
    """One row-level rule: a machine-readable name, the GE expectation, and a sentence for people."""

    name: str
    expectation: gx.expectations.Expectation
    message: str
    show_value: bool = True  # never True for a column that may carry personal data


@dataclass
class GateResult:
    clean: pl.DataFrame
    rejected: pl.DataFrame
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return self.clean.height + self.rejected.height


@cache
def _batch_definition() -> Any:
    """One in-memory GE context, pandas data source and whole-dataframe batch definition for the
    process: each validation passes its own dataframe as the batch parameter. (Adding and deleting a
    data source per validation re-wrote the context's YAML each time: a third of the gate's time.)"""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return (
        context.data_sources.add_pandas("ioc_gate")
        .add_dataframe_asset("frames")
        .add_batch_definition_whole_dataframe("whole")
    )


def _columns(expectation: gx.expectations.Expectation) -> list[str]:
    names = [getattr(expectation, attr, None) for attr in ("column", "column_A", "column_B")]
    names += list(getattr(expectation, "column_list", None) or [])
    return [n for n in names if n]


def validate(frame: pl.DataFrame, suite_name: str, expectations: list[gx.expectations.Expectation]) -> Any:
    """Run expectations over a frame (as pandas: GE has no polars support) and return the GE result.
    The suite runs through GE's validator on the batch directly: nothing is stored in the context."""
    from great_expectations.validator.v1_validator import Validator

    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    validator = Validator(
        batch_definition=_batch_definition(),
        batch_parameters={"dataframe": frame.to_pandas()},
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [ROW_ID] if ROW_ID in frame.columns else [],
            "partial_unexpected_count": 0,
            "return_unexpected_index_query": False,  # a pandas query string per rule: computed, never read
        },
    )
    return validator.validate_expectation_suite(suite)


def split(frame: pl.DataFrame, suite_name: str, rules: list[Rule]) -> GateResult:
    """Split a batch into clean and rejected rows; rejected rows keep every column, plus why."""
    if ROW_ID not in frame.columns:
        frame = frame.with_row_index(ROW_ID)
    if not rules or frame.is_empty():
        return GateResult(frame, _empty_rejects(frame))
    expectations = [r.expectation.copy(update={"meta": {"rule": r.name}}, deep=True) for r in rules]
    needed = sorted({ROW_ID, *[c for e in expectations for c in _columns(e)]})
    result = validate(frame.select(needed), suite_name, expectations)
    by_name = {r.name: r for r in rules}
    reasons: list[dict[str, Any]] = []
    failures: dict[str, int] = {}
    for outcome in result.results:
        rule = by_name[outcome.expectation_config.meta["rule"]]
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"gate {suite_name}: rule {rule.name} could not run: {outcome.exception_info}")
        failing = outcome.result.get("unexpected_index_list") or []
        failures[rule.name] = len(failing)
        columns = _columns(rule.expectation)
        for item in failing:
            value = ", ".join(f"{c}={_shown(item.get(c))}" for c in columns if c in item) if rule.show_value else ""
            detail = f"{rule.name}: {rule.message}" + (f" (got {value})" if value else "")
            reasons.append({ROW_ID: int(item[ROW_ID]), "rule": rule.name, "detail": detail})
    if not reasons:
        return GateResult(frame, _empty_rejects(frame), failures)
    why = (
        pl.DataFrame(reasons, schema={ROW_ID: frame.schema[ROW_ID], "rule": pl.String, "detail": pl.String})
        .unique([ROW_ID, "rule"], keep="first", maintain_order=True)
        .group_by(ROW_ID, maintain_order=True)
        .agg(pl.col("rule").alias(REJECT_RULES), pl.col("detail").str.join("; ").alias(REJECT_REASON))
    )
    rejected = frame.join(why, on=ROW_ID, how="inner")
    clean = frame.join(why, on=ROW_ID, how="anti")
    return GateResult(clean, rejected, failures)


def _shown(value: Any) -> str:
    if hasattr(value, "item"):  # a numpy scalar from pandas: show 8.95, not np.float64(8.95)
        value = value.item()
    return "missing" if value is None or value != value else repr(value)  # NaN != NaN


def _empty_rejects(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.clear().with_columns(
        pl.lit(None, pl.List(pl.String)).alias(REJECT_RULES), pl.lit(None, pl.String).alias(REJECT_REASON)
    )


def quarantine_rows(delivered: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """A quarantine row: where it came from, the rules it broke, then the row whole as delivered
    (the bronze text, joined back on `_row_id`)."""
    why = rejected.select(
        ROW_ID,
        pl.col(REJECT_RULES).list.first().alias("rule"),
        pl.col(REJECT_RULES).alias("rules"),
        pl.col(REJECT_REASON).alias("reason"),
    )
    rows = delivered.join(why, on=ROW_ID, how="inner").sort(ROW_ID)
    front = ["_source_file", "_source_row", "rule", "rules", "reason"]
    return rows.select(front + [c for c in rows.columns if c not in front and c != ROW_ID]).rename(
        {"_source_file": "source_file", "_source_row": "source_row"}
    )


def quarantine_summary(rows: pl.DataFrame, limit: int = 10) -> str:
    """A log-friendly summary naming file, row and rule of the first rejected rows."""
    lines = [
        f"{r['source_file']} row {r['source_row']}: {r['reason']}"
        for r in rows.head(limit).select("source_file", "source_row", "reason").iter_rows(named=True)
    ]
    more = f"\n... and {rows.height - limit} more" if rows.height > limit else ""
    return "\n".join(lines) + more


def batch_checks(
    asset: dg.AssetKey, result: GateResult, previous_rows: int | None, max_reject_share: float = MAX_REJECT_SHARE
) -> list[dg.AssetCheckResult]:
    """The blocking batch rules: share of rejected rows, and a collapse of the row count."""
    share = result.rejected.height / result.delivered if result.delivered else 0.0
    floor = int(previous_rows * MIN_ROW_RATIO) if previous_rows else 0
    row_count = validate(
        result.clean.select(ROW_ID),
        f"{asset.path[-1]}_batch",
        [gx.expectations.ExpectTableRowCountToBeBetween(min_value=max(floor, 1), max_value=None)],
    ).results[0]
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=REJECT_SHARE_CHECK,
            passed=share <= max_reject_share,
            metadata={
                "rejected_rows": result.rejected.height,
                "delivered_rows": result.delivered,
                "rejected_share": round(share, 4),
                "threshold": max_reject_share,
                "failures_by_rule": {k: v for k, v in result.failures.items() if v},
            },
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=ROW_COUNT_CHECK,
            passed=bool(row_count.success),
            metadata={
                "clean_rows": result.clean.height,
                "previous_published_rows": previous_rows or 0,
                "minimum_rows": max(floor, 1),
            },
        ),
    ]


def empty_batch_checks(
    asset: dg.AssetKey, metadata: dict[str, Any], description: str | None = None
) -> list[dg.AssetCheckResult]:
    """The blocking batch checks of a batch with no row at all (a feed not delivered yet, a month
    without dossiers): nothing rejected, nothing collapsed, so both pass, saying why."""
    return [
        dg.AssetCheckResult(asset_key=asset, check_name=name, passed=True, description=description, metadata=metadata)
        for name in (REJECT_SHARE_CHECK, ROW_COUNT_CHECK)
    ]


REJECT_SHARE_CHECK = "rejected_share_within_threshold"
ROW_COUNT_CHECK = "row_count_not_collapsed"


def batch_check_specs(asset: dg.AssetKey, max_reject_share: float = MAX_REJECT_SHARE) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            REJECT_SHARE_CHECK,
            asset=asset,
            blocking=True,
            description=f"At most {max_reject_share:.0%} of the delivered rows are rejected by the row rules.",
        ),
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=asset,
            blocking=True,
            description=("The batch has clean rows, and at least half as many as the snapshot published before it."),
        ),
    ]


def passed(checks: list[dg.AssetCheckResult]) -> bool:
    return all(c.passed for c in checks)
