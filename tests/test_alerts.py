"""A failed run becomes an alert: a row in the lake (then the warehouse), a log line, a webhook POST.

The webhook is a real HTTP server on 127.0.0.1; the failure sensor is evaluated against the real
instance of the pipeline, the way the daemon evaluates it (a first tick sets the cursor, the
next one sees the failure).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ioc_pipeline import alerts
from ioc_pipeline.lake import Lake
from tests.conftest import Pipeline, failure_messages, succeeded
from tests.support import free_port


class Hook:
    """A local webhook: records what it is sent; answers with the statuses it is given, in turn."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = statuses or [200]
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(json.loads(body))
                self.send_response(hook.statuses[min(len(hook.received), len(hook.statuses)) - 1])
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ioc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def _failure_tick(pipeline: Pipeline, cursor: str | None, webhook: str) -> str | None:
    """One evaluation of the run-failure sensor, posting to `webhook`."""
    return pipeline.tick("run_failure_alert", cursor, IOC_ALERT_WEBHOOK_URL=webhook).cursor


def test_a_failing_run_produces_an_alert_record_a_log_line_and_a_webhook_post(
    published: Pipeline, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    cursor = _failure_tick(published, None, hook.url)  # the sensor starts from now
    assert alerts.read(published.lake).is_empty() and hook.received == []

    # a gateway that refuses every connection fails the dossier step (a refused file no longer fails a run)
    published.extra_env |= {
        "IOC_DOSSIER_API_URL": f"http://127.0.0.1:{free_port()}",
        "IOC_DOSSIER_API_BACKOFF_SECONDS": "0",
        "IOC_DOSSIER_API_STEP_RETRIES": "0",  # fail at once, without NETWORK_RETRY's minute of waits
    }
    failed, *_ = published.refresh()  # what changed only, as `cli run` does: the dossier step and downstream
    assert not failed.success
    with caplog.at_level("ERROR", logger="ioc_pipeline.alerts"):
        cursor = _failure_tick(published, cursor, hook.url)

    (alert,) = alerts.read(published.lake).to_dicts()
    assert alert["alert_id"] == f"run_failure:{failed.run_id}"
    assert alert["job_name"] == "refresh_provinces" and alert["failed_steps"] == ["bronze__dossiers"]  # its partition
    assert "dossier gateway kept failing" in alert["message"]
    assert alert["webhook_status"] == "posted (HTTP 200)"
    (posted,) = hook.received
    assert posted["alert"]["run_id"] == failed.run_id and "dossier gateway" in posted["text"]
    assert any(failed.run_id in record.getMessage() for record in caplog.records)

    # the same failure is not alerted twice
    _failure_tick(published, cursor, hook.url)
    assert alerts.read(published.lake).height == 1 and len(hook.received) == 1

    # the next successful refresh publishes the alert to the analysts' warehouse
    published.extra_env.clear()
    fixed = published.refresh()
    assert succeeded(fixed), failure_messages(fixed)
    assert published.query("select run_id, failed_steps from ops.alerts") == [(failed.run_id, ["bronze__dossiers"])]
    comment = published.query(
        "select comment from duckdb_tables() where schema_name = 'ops' and table_name = 'alerts'"
    )[0][0]
    assert "Operational alerts" in comment


def test_an_alert_is_recorded_when_the_webhook_is_down_or_unset(tmp_path: Path) -> None:
    store = Lake(str(tmp_path / "lake"))
    down = Hook()
    url = down.url
    down.close()  # nothing listens there any more
    waits: list[float] = []
    first = alerts.raise_alert(store, alerts.Alert("run_failure", "refresh_all", "run-1", "boom"), url, waits.append)
    second = alerts.raise_alert(store, alerts.Alert("run_failure", "refresh_all", "run-2", "boom"), None)
    assert first.webhook_status.startswith("failed (") and second.webhook_status == "not configured"
    assert waits == [1, 2]  # a refused connection is retried with back-off, then given up
    assert alerts.read(store)["run_id"].to_list() == ["run-1", "run-2"]


def test_the_webhook_is_retried_on_server_errors_but_not_on_refusals() -> None:
    flaky = Hook([503, 500, 200])
    refusing = Hook([404])
    waits: list[float] = []
    try:
        posted = alerts.post(flaky.url, alerts.Alert("run_failure", "j", "r", "m"), sleep=waits.append)
        refused = alerts.post(refusing.url, alerts.Alert("run_failure", "j", "r", "m"), sleep=waits.append)
    finally:
        flaky.close()
        refusing.close()
    assert posted == "posted (HTTP 200)" and len(flaky.received) == 3
    assert refused == "failed (HTTP 404)" and len(refusing.received) == 1
    assert waits == [1, 2]  # back-off before each retry of the flaky hook; none for the refusal
