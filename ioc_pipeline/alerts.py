"""Alerts: what the pipeline tells the data engineer when a run fails.

    a run fails ──run_failure_alert sensor (automation.py)──► Alert
        ├──► lake/ops/alerts/month=YYYY-MM/data.parquet   (the record; published as warehouse ops.alerts)
        ├──► the log (the sensor's tick in the UI, the daemon's output)
        └──► POST $IOC_ALERT_WEBHOOK_URL                  (JSON, when set: chat, paging, e-mail relay)

The record is written first and says whether the webhook answered, so an alert is never lost
because a chat service was down. Writing the same alert twice (a sensor tick retried) keeps one
row. Messages are the steps' error messages, which name files and problems, never row values.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import polars as pl

from ioc_pipeline.lake import Lake
from ioc_pipeline.metadata import TableDoc

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

LAYER, TABLE = "ops", "alerts"
MESSAGE_LIMIT = 2000
log = logging.getLogger("ioc_pipeline.alerts")

SCHEMA: dict[str, PolarsDataType] = {
    "alert_id": pl.String,
    "raised_at": pl.Datetime("us", "UTC"),
    "kind": pl.String,
    "job_name": pl.String,
    "run_id": pl.String,
    "failed_steps": pl.List(pl.String),
    "message": pl.String,
    "webhook_status": pl.String,
}

DOCS = {
    "ops.alerts": TableDoc(
        "Cảnh báo vận hành của pipeline (lần chạy thất bại)",
        "Operational alerts of the pipeline (failed runs)",
        {
            "alert_id": (
                "Mã cảnh báo (loại:mã lần chạy, hoặc loại:đối tượng)",
                "alert id (kind:run id, or kind:subject for a batch or a file)",
            ),
            "raised_at": ("Thời điểm phát sinh (UTC)", "raised at (UTC)"),
            "kind": (
                "Loại cảnh báo",
                "kind: run_failure, batch_blocked, file_refused, warehouse_orphaned, province_load_failed",
            ),
            "job_name": ("Tác vụ Dagster", "Dagster job"),
            "run_id": ("Mã lần chạy Dagster", "Dagster run id"),
            "failed_steps": ("Các bước lỗi", "failed steps"),
            "message": ("Thông báo lỗi", "error messages of the failed steps"),
            "webhook_status": ("Kết quả gửi webhook", "webhook delivery: posted, failed or not configured"),
        },
    )
}


@dataclass
class Alert:
    kind: str  # run_failure, batch_blocked, file_refused, warehouse_orphaned, province_load_failed
    job_name: str
    run_id: str
    message: str
    failed_steps: list[str] = field(default_factory=list)
    raised_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    webhook_status: str = "not configured"
    subject: str = ""  # what the alert is about when it is not the run itself (a batch, a file)

    @property
    def alert_id(self) -> str:
        return f"{self.kind}:{self.subject}" if self.subject else f"{self.kind}:{self.run_id}"

    def text(self) -> str:
        steps = f" (steps: {', '.join(self.failed_steps)})" if self.failed_steps else ""
        return f"[ioc-pipeline] {self.kind}: job {self.job_name} run {self.run_id}{steps}: {self.message}"

    def payload(self) -> dict:
        """The webhook body: `text` for chat services (Slack, Mattermost, Teams), `alert` for machines."""
        alert = {**asdict(self), "alert_id": self.alert_id, "raised_at": self.raised_at.isoformat()}
        return {"text": self.text(), "alert": alert}


def record(store: Lake, alert: Alert) -> None:
    """Append the alert to this month's partition of `ops/alerts` (replacing a row of the same id)."""
    partition = f"month={alert.raised_at:%Y-%m}"
    row = pl.DataFrame(
        [
            {
                "alert_id": alert.alert_id,
                "raised_at": alert.raised_at,
                "kind": alert.kind,
                "job_name": alert.job_name,
                "run_id": alert.run_id,
                "failed_steps": alert.failed_steps,
                "message": alert.message[:MESSAGE_LIMIT],
                "webhook_status": alert.webhook_status,
            }
        ],
        schema=SCHEMA,
    )
    previous = store.read_partition(LAYER, TABLE, partition)
    if previous is not None:
        row = pl.concat([previous.filter(pl.col("alert_id") != alert.alert_id).select(list(SCHEMA)), row])
    store.write(row.sort("raised_at"), LAYER, TABLE, partition)


def read(store: Lake) -> pl.DataFrame:
    """Every recorded alert, oldest first (an empty frame when there is none)."""
    if not store.exists(LAYER, TABLE):
        return pl.DataFrame(schema=SCHEMA)
    return store.read(LAYER, TABLE).select(list(SCHEMA)).sort("raised_at")


def post(
    url: str, alert: Alert, attempts: int = 3, timeout: float = 10.0, sleep: Callable[[float], object] = time.sleep
) -> str:
    """POST the alert as JSON; a few quick retries (1 s, 2 s, ...: `sleep` is injectable so tests need not
    wait), then give up and say why (the record keeps it)."""
    body = json.dumps(alert.payload(), ensure_ascii=False).encode("utf-8")
    problem = ""
    for attempt in range(attempts):
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return f"posted (HTTP {answer.status})"
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code}"
            if error.code < 500 and error.code != 429:
                break  # the hook refuses this alert: retrying will not help
        except (urllib.error.URLError, OSError) as error:
            problem = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        if attempt + 1 < attempts:
            sleep(2**attempt)
    return f"failed ({problem})"


def raised_before(store: Lake, alert_id: str) -> bool:
    """Whether an alert of this id was recorded already (a blocked batch re-gated by every later run)."""
    return store.exists(LAYER, TABLE) and bool(
        store.scan(LAYER, TABLE).filter(pl.col("alert_id") == alert_id).select(pl.len()).collect().item()
    )


def raise_once(store: Lake, alert: Alert, webhook_url: str | None) -> bool:
    """Raise the alert unless one of the same id was raised before; whether it was raised now."""
    if raised_before(store, alert.alert_id):
        return False
    raise_alert(store, alert, webhook_url)
    return True


def raise_alert(
    store: Lake, alert: Alert, webhook_url: str | None, sleep: Callable[[float], object] = time.sleep
) -> Alert:
    """Log, post (when a webhook is configured) and record one alert."""
    log.error(alert.text())
    if webhook_url:
        alert.webhook_status = post(webhook_url, alert, sleep=sleep)
        if not alert.webhook_status.startswith("posted"):
            log.error(f"alert webhook {alert.webhook_status}")
    record(store, alert)
    return alert
