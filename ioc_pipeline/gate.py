"""The Great Expectations gate every feed passes between bronze and silver.

    bronze rows ──► row rules (GE expectations) ──► clean rows ──► silver
                                              └──► rejected rows + reasons ──► quarantine
    batch rules (GE + counts, the feed's quality policy) ──► asset checks (severity ERROR, non-blocking):
        a blocked batch leaves the last good silver in place; every other feed still publishes

Row rules are GE 1.x expectations run on a pandas copy of the columns they read, with the
COMPLETE result format keyed on `_row_id`, so each failing row is known with every rule it
broke. `dagster-ge` only supports GE < 1.0, hence GE is called directly here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl

from ioc_pipeline.checks.policy import Policy

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

ROW_ID = "_row_id"
REJECT_RULES = "reject_rules"
REJECT_REASON = "reject_reason"
REJECT_REASON_VI = "reject_reason_vi"

logging.getLogger("great_expectations").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Expect:
    """A GE expectation named by its class and arguments, built when a batch is validated: the suites are
    declared at definitions load, and importing Great Expectations there would cost seconds at every start."""

    kind: str  # the class in `great_expectations.expectations`, e.g. ExpectColumnValuesToNotBeNull
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)

    def build(self, **extra: Any) -> Expectation:
        import great_expectations as gx

        return getattr(gx.expectations, self.kind)(**self.kwargs, **extra)

    @property
    def columns(self) -> list[str]:
        """The columns it reads (the gate hands GE only those)."""
        names = [self.kwargs.get(attr) for attr in ("column", "column_A", "column_B")]
        names += list(self.kwargs.get("column_list") or [])
        return [n for n in names if n]


class _Expectations:
    """`E.ExpectColumnValuesToBeNull(column=...)` as with `gx.expectations`, but an `Expect` (built later)."""

    def __getattr__(self, kind: str) -> Callable[..., Expect]:
        if not kind.startswith("Expect"):
            raise AttributeError(kind)
        return lambda **kwargs: Expect(kind, kwargs)


E = _Expectations()


@dataclass(frozen=True)
class Rule:
    """One row-level rule: a machine-readable name, the GE expectation, and a sentence for people."""

    name: str
    expectation: Expect
    message: str  # English, for engineers and the English half of every reason
    vi: str = ""  # Vietnamese, for the department that delivered the row (quarantine, feedback workbook)
    show_value: bool = True  # never True for a column that may carry personal data


@dataclass
class GateResult:
    clean: pl.DataFrame
    rejected: pl.DataFrame
    failures: dict[str, int] = field(default_factory=dict)  # rule -> rows refused by it
    warnings: dict[str, int] = field(default_factory=dict)  # warn-only rule -> rows that broke it (kept)

    @property
    def delivered(self) -> int:
        return self.clean.height + self.rejected.height


@cache
def _batch_definition() -> Any:
    """One in-memory GE context, pandas data source and whole-dataframe batch definition for the
    process: each validation passes its own dataframe as the batch parameter. (Adding and deleting a
    data source per validation re-wrote the context's YAML each time: a third of the gate's time.)"""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return (
        context.data_sources.add_pandas("ioc_gate")
        .add_dataframe_asset("frames")
        .add_batch_definition_whole_dataframe("whole")
    )


def validate(frame: pl.DataFrame, suite_name: str, expectations: list[Expectation]) -> Any:
    """Run expectations over a frame (as pandas: GE has no polars support) and return the GE result.
    The suite runs through GE's validator on the batch directly: nothing is stored in the context."""
    import great_expectations as gx
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


def split(
    frame: pl.DataFrame, suite_name: str, rules: list[Rule], warn_only: frozenset[str] = frozenset()
) -> GateResult:
    """Split a batch into clean and rejected rows; rejected rows keep every column, plus why (English and
    Vietnamese). Rules in `warn_only` are checked and counted, but never refuse a row."""
    if ROW_ID not in frame.columns:
        frame = frame.with_row_index(ROW_ID)
    if not rules or frame.is_empty():
        return GateResult(frame, _empty_rejects(frame))
    expectations = [r.expectation.build(meta={"rule": r.name}) for r in rules]
    needed = sorted({ROW_ID, *[c for r in rules for c in r.expectation.columns]})
    result = validate(frame.select(needed), suite_name, expectations)
    by_name = {r.name: r for r in rules}
    reasons: list[dict[str, Any]] = []
    failures: dict[str, int] = {}
    warnings: dict[str, int] = {}
    for outcome in result.results:
        rule = by_name[outcome.expectation_config.meta["rule"]]
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"gate {suite_name}: rule {rule.name} could not run: {outcome.exception_info}")
        failing = outcome.result.get("unexpected_index_list") or []
        if rule.name in warn_only:
            warnings[rule.name] = len(failing)
            continue
        failures[rule.name] = len(failing)
        columns = rule.expectation.columns
        for item in failing:
            value = ", ".join(f"{c}={_shown(item.get(c))}" for c in columns if c in item) if rule.show_value else ""
            shown = f" ({value})" if value else ""
            reasons.append(
                {
                    ROW_ID: int(item[ROW_ID]),
                    "rule": rule.name,
                    "detail": f"{rule.name}: {rule.message}{shown}",
                    "detail_vi": f"{rule.vi or rule.message}{shown}",
                }
            )
    if not reasons:
        return GateResult(frame, _empty_rejects(frame), failures, warnings)
    why = (
        pl.DataFrame(
            reasons,
            schema={ROW_ID: frame.schema[ROW_ID], "rule": pl.String, "detail": pl.String, "detail_vi": pl.String},
        )
        .unique([ROW_ID, "rule"], keep="first", maintain_order=True)
        .group_by(ROW_ID, maintain_order=True)
        .agg(
            pl.col("rule").alias(REJECT_RULES),
            pl.col("detail").str.join("; ").alias(REJECT_REASON),
            pl.col("detail_vi").str.join("; ").alias(REJECT_REASON_VI),
        )
    )
    rejected = frame.join(why, on=ROW_ID, how="inner")
    clean = frame.join(why, on=ROW_ID, how="anti")
    return GateResult(clean, rejected, failures, warnings)


def _shown(value: Any) -> str:
    if hasattr(value, "item"):  # a numpy scalar from pandas: show 8.95, not np.float64(8.95)
        value = value.item()
    return "missing" if value is None or value != value else repr(value)  # NaN != NaN


def _empty_rejects(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.clear().with_columns(
        pl.lit(None, pl.List(pl.String)).alias(REJECT_RULES),
        pl.lit(None, pl.String).alias(REJECT_REASON),
        pl.lit(None, pl.String).alias(REJECT_REASON_VI),
    )


def quarantine_rows(delivered: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """A quarantine row: where it came from, the rules it broke, then the row whole as delivered
    (the bronze text, joined back on `_row_id`)."""
    why = rejected.select(
        ROW_ID,
        pl.col(REJECT_RULES).list.first().alias("rule"),
        pl.col(REJECT_RULES).alias("rules"),
        pl.col(REJECT_REASON).alias("reason"),
        pl.col(REJECT_REASON_VI).alias("reason_vi"),
    )
    rows = delivered.join(why, on=ROW_ID, how="inner").sort(ROW_ID)
    front = ["_source_file", "_source_row", "rule", "rules", "reason", "reason_vi"]
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


@dataclass(frozen=True)
class Decision:
    """What the policy made of one batch, with the numbers, in English and Vietnamese."""

    table: str
    delivered: int
    refused: int
    clean: int
    previous_rows: int
    policy: Policy
    share_blocked: bool
    collapsed: bool

    @property
    def published(self) -> bool:
        return not (self.share_blocked or self.collapsed)

    @property
    def share(self) -> float:
        return self.refused / self.delivered if self.delivered else 0.0

    @property
    def floor(self) -> int:
        return max(int(self.previous_rows * self.policy.min_row_ratio), 1)

    def share_text(self) -> tuple[str, str]:
        """`bts_stations: 314 of 1,859 rows (16.9 %) refused; policy blocks above 10 % and 10 rows: blocked`
        (the Vietnamese sentence writes its numbers the Vietnamese way: 1.859, 16,9 %)."""
        vi_rule, en_rule = self.policy.describe()
        verdict_en = "blocked" if self.share_blocked else "within policy"
        verdict_vi = "bị chặn" if self.share_blocked else "trong ngưỡng cho phép"
        pct = self.share * 100
        return (
            f"{self.table}: {_vi(self.refused)} trên {_vi(self.delivered)} dòng ({_vi(pct, 1)} %) bị loại; "
            f"chính sách {vi_rule}: {verdict_vi}",
            f"{self.table}: {_n(self.refused)} of {_n(self.delivered)} rows ({pct:.1f} %) refused; "
            f"policy {en_rule}: {verdict_en}",
        )

    def collapse_text(self) -> tuple[str, str]:
        ratio, ratio_vi = f"{self.policy.min_row_ratio * 100:g} %", f"{_vi(self.policy.min_row_ratio * 100, 0)} %"
        if self.collapsed:
            return (
                f"{self.table}: chỉ {_vi(self.clean)} dòng hợp lệ, ít hơn mức tối thiểu {_vi(self.floor)} "
                f"({ratio_vi} của {_vi(self.previous_rows)} dòng đã công bố trước đó): bị chặn",
                f"{self.table}: {_n(self.clean)} clean rows, fewer than the minimum {_n(self.floor)} "
                f"({ratio} of the {_n(self.previous_rows)} rows published before): blocked",
            )
        return (
            f"{self.table}: {_vi(self.clean)} dòng hợp lệ, không ít hơn {_vi(self.floor)}: đạt",
            f"{self.table}: {_n(self.clean)} clean rows, at least {_n(self.floor)}: passed",
        )

    def reason(self) -> tuple[str, str]:
        """The sentence a person reads for the whole batch (vi, en)."""
        texts = [self.share_text()] if self.share_blocked or not self.collapsed else []
        if self.collapsed:
            texts.append(self.collapse_text())
        return "; ".join(t[0] for t in texts), "; ".join(t[1] for t in texts)


def _n(value: int) -> str:
    return f"{value:,}"


def _vi(value: float, decimals: int = 0) -> str:
    """A number as Vietnamese write it: `.` groups thousands, `,` is the decimal mark (1.859; 16,9)."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def decide(table: str, result: GateResult, previous_rows: int | None, policy: Policy) -> Decision:
    """Apply the feed's policy to a gated batch: refused share and count, and the row-count collapse
    (a GE row-count expectation against the floor the published snapshot sets)."""
    previous = previous_rows or 0
    floor = max(int(previous * policy.min_row_ratio), 1)
    row_count = validate(
        result.clean.select(ROW_ID),
        f"{table}_batch",
        [E.ExpectTableRowCountToBeBetween(min_value=floor, max_value=None).build()],
    ).results[0]
    return Decision(
        table=table,
        delivered=result.delivered,
        refused=result.rejected.height,
        clean=result.clean.height,
        previous_rows=previous,
        policy=policy,
        share_blocked=policy.blocks(result.rejected.height, result.delivered),
        collapsed=not row_count.success,
    )


def batch_checks(
    asset: dg.AssetKey, result: GateResult, decision: Decision, links: dict[str, Any] | None = None
) -> list[dg.AssetCheckResult]:
    """The batch rules as asset checks (ERROR when failed: red in the UI, without stopping other feeds);
    `links`: the batch's quality page and feedback workbooks, shown with each check."""
    share_vi, share_en = decision.share_text()
    collapse_vi, collapse_en = decision.collapse_text()
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=REJECT_SHARE_CHECK,
            passed=not decision.share_blocked,
            severity=dg.AssetCheckSeverity.ERROR,
            description=share_en,
            metadata={
                "summary": share_en,
                "summary_vi": share_vi,
                "rejected_rows": decision.refused,
                "delivered_rows": decision.delivered,
                "rejected_share": round(decision.share, 4),
                "policy_max_refused_share": decision.policy.max_refused_share,
                "policy_min_refused_rows": decision.policy.min_refused_rows,
                "failures_by_rule": {k: v for k, v in result.failures.items() if v},
                "warnings_by_rule": {k: v for k, v in result.warnings.items() if v},
                **(links or {}),
            },
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=ROW_COUNT_CHECK,
            passed=not decision.collapsed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=collapse_en,
            metadata={
                "summary": collapse_en,
                "summary_vi": collapse_vi,
                "clean_rows": decision.clean,
                "previous_published_rows": decision.previous_rows,
                "minimum_rows": decision.floor,
                "policy_min_row_ratio": decision.policy.min_row_ratio,
                **(links or {}),
            },
        ),
    ]


def empty_batch_checks(
    asset: dg.AssetKey, metadata: dict[str, Any], description: str | None = None
) -> list[dg.AssetCheckResult]:
    """The batch checks of a batch with no row at all (a feed not delivered yet, a month without
    dossiers): nothing rejected, nothing collapsed, so both pass, saying why."""
    return [
        dg.AssetCheckResult(asset_key=asset, check_name=name, passed=True, description=description, metadata=metadata)
        for name in (REJECT_SHARE_CHECK, ROW_COUNT_CHECK)
    ]


REJECT_SHARE_CHECK = "rejected_share_within_threshold"
ROW_COUNT_CHECK = "row_count_not_collapsed"


def batch_check_specs(asset: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """Non-blocking on purpose: a blocked batch keeps the last good silver, and gold, the scorecard and
    the warehouse of every feed (this one's last good version included) still publish. The policy is
    read when a batch is judged (checks/quality_policy.toml), so a change needs no restart."""
    return [
        dg.AssetCheckSpec(
            REJECT_SHARE_CHECK,
            asset=asset,
            blocking=False,
            description="The refused rows of a batch stay within the feed's quality policy (share and count).",
        ),
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=asset,
            blocking=False,
            description="The batch has clean rows, and not fewer than the policy's share of the snapshot published "
            "before it.",
        ),
    ]
