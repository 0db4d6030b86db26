"""What a person reads on the console during `cli run`: one line per step, with rows and seconds.

    Dagster event stream ──progress logger──► "  ok  silver/bts_stations  1,268 rows  0.8 s"
                         └──(always)──────────► the instance's event log (the UI shows every event)

Dagster's default console logger prints every DEBUG event; the CLI asks for this logger instead
(run config `loggers: {progress: {}}`), and runs launched from the UI, the schedule or the sensors
keep Dagster's own logging. Failed checks are printed too, with their summary (the numbers).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import dagster as dg
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR

LOGGER = "progress"
RUN_CONFIG: dict[str, Any] = {"loggers": {LOGGER: {}}}


class ProgressHandler(logging.Handler):
    """Turns step and check events into one short line each; ignores the rest."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.rows: dict[str, dict[str, int]] = {}  # step -> asset -> rows (the last materialization says)

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def emit(self, record: logging.LogRecord) -> None:
        meta: dict[str, Any] | None = getattr(record, LOG_RECORD_METADATA_ATTR, None)
        event = meta.get("dagster_event") if meta else None
        if event is None:
            message = meta.get("orig_message", "") if meta else record.getMessage()
            if "Not executing" in str(message):
                step = str(meta.get("step_key") if meta else "") or "a step"
                self._print(f"  skipped {_label(step):<48} (an upstream step failed)")
            elif record.levelno >= logging.ERROR:
                self._print(f"  error   {message}")
            return
        kind, step = event.event_type_value, event.step_key or ""
        data = event.event_specific_data
        if kind == "ASSET_MATERIALIZATION":
            count = data.materialization.metadata.get("dagster/row_count")
            if count is not None:
                self.rows.setdefault(step, {})[data.materialization.asset_key.to_user_string()] = int(count.value)
        elif kind == "STEP_SUCCESS":
            counts = self.rows.pop(step, {})
            main = [(k, n) for k, n in counts.items() if not k.startswith("quarantine/")]
            held = sum(n for k, n in counts.items() if k.startswith("quarantine/"))
            label = main[0][0] if len(main) == 1 else _label(step)
            rows = f"{sum(n for _, n in main):>12,} rows" if main else " " * 17
            extra = f"  ({held:,} quarantined)" if held else ""
            self._print(f"  ok      {label:<48}{rows} {data.duration_ms / 1000:>7.1f} s{extra}")
        elif kind == "STEP_FAILURE":
            self._print(f"  FAILED  {_label(step):<48} {root_message(data.error)}")
        elif kind == "ASSET_CHECK_EVALUATION" and not data.passed:
            summary = data.metadata.get("summary")
            text = summary.value if summary is not None else data.description or ""
            level = "warning" if data.severity == dg.AssetCheckSeverity.WARN else "CHECK"
            self._print(f"  {level:<7} {data.asset_check_key.name}: {text}")


def root_message(error: Any) -> str:
    """The message of the innermost cause (Dagster wraps a step's exception in its own error)."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    return (error.message.strip().splitlines() or ["failed"])[-1] if error is not None else "failed"


def _label(step: str) -> str:
    """`silver__bts_stations` -> `silver/bts_stations`; multi-asset steps keep their op name."""
    return step.replace("__", "/")


@dg.logger(None, "One line per step (rows, seconds) and failed checks with their numbers: the CLI's console.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger(f"ioc_pipeline.progress.{id(init_context)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers = [ProgressHandler()]
    return logger
