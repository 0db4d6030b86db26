"""The dossier gateway's faults, against the local gateway server (`ioc_pipeline/sample/gateway.py`) on
127.0.0.1: broken connections and timeouts retried, paging bounded, late backdated versions caught by
the look-back window or the reconciliation without being appended twice, the timeout a setting, and the
run-level retry policy of the network step."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ioc_pipeline.lake import Lake, Landing
from ioc_pipeline.resources import resources
from ioc_pipeline.sample import dossiers as sample
from ioc_pipeline.sample.__main__ import SEED
from ioc_pipeline.sample.gateway import Gateway as Served
from ioc_pipeline.sample.gateway import GatewayServer
from ioc_pipeline.sources import dossiers as source
from tests.conftest import ENV_KEYS, failure_messages, succeeded
from tests.test_dossiers import TOKEN, _api_pipeline, _bronze_metadata

KEY = b"gateway-test-key-0123456789"


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("delivery")
    sample.write(landing, SEED)
    return landing


@pytest.fixture
def served(delivery: Path) -> Iterator[tuple[Served, GatewayServer]]:
    gateway = Served(TOKEN)
    gateway.add_landing(delivery)
    with GatewayServer(gateway) as server:
        yield gateway, server


class Loads:
    """`source.ingest` from the gateway into one lake and dlt state, as the bronze step calls it."""

    def __init__(self, root: Path, url: str, **settings) -> None:
        self.lake = Lake(str(root / "lake"))
        self.dlt_dir = str(root / "dlt")
        self.landing = Landing(str(root / "landing"))
        self.gateway = source.Gateway(url, TOKEN, **{"page_size": 300, "backoff": 0.001, **settings})

    def load(self, **settings) -> source.DossierIngest:
        return source.ingest(self.lake, self.dlt_dir, self.landing, KEY, replace(self.gateway, **settings))

    def bronze(self) -> pl.DataFrame:
        return self.lake.read("bronze", source.TABLE)


def _cause(error: BaseException) -> BaseException:
    """What dlt wrapped: the source's own error."""
    while not isinstance(error, source.GatewayError) and (error.__cause__ or error.__context__):
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return error


def _failure(loads: Loads, **settings) -> str:
    with pytest.raises(Exception) as raised:  # noqa: PT011 - dlt's wrapper; the cause is checked below
        loads.load(**settings)
    cause = _cause(raised.value)
    assert isinstance(cause, source.GatewayError), repr(raised.value)
    return str(cause)


# --------------------------------------------------------------------------------------------------
# broken connections, timeouts
# --------------------------------------------------------------------------------------------------


def test_a_connection_dropped_mid_body_is_retried_like_a_5xx_and_counted(served, tmp_path: Path) -> None:
    gateway, server = served
    gateway.drop_body = 2
    loaded = Loads(tmp_path, server.url).load()
    assert [r["status"] for r in gateway.requests[:3]] == ["dropped", "dropped", 200]
    assert loaded.gateway.retried_statuses == {"ChunkedEncodingError": 2} and loaded.gateway.retries == 2
    assert loaded.report.rows == len(gateway)


def test_a_connection_that_keeps_breaking_fails_clearly_naming_the_page(served, tmp_path: Path) -> None:
    gateway, server = served
    gateway.drop_body = 99
    message = _failure(Loads(tmp_path, server.url), max_attempts=3)
    assert "kept failing (ChunkedEncodingError)" in message and "after 3 attempts" in message
    assert f"{server.url}/dossiers?" in message and "page=1" in message and TOKEN not in message
    assert len(gateway.requests) == 3


def test_a_silent_gateway_times_out_and_is_retried(served, tmp_path: Path) -> None:
    gateway, server = served
    gateway.slow_seconds = 0.6
    message = _failure(Loads(tmp_path, server.url), max_attempts=2, timeout=0.2)
    assert "kept failing (ReadTimeout)" in message and "page=1" in message
    assert len(gateway.requests) == 2


def test_the_timeout_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    default = resources()["gateway"]
    monkeypatch.setenv("IOC_DOSSIER_API_URL", "http://127.0.0.1:9")
    client = source.Gateway.from_settings(resources()["gateway"].process_config_and_initialize())
    assert client is not None and client.timeout == 60 == default.timeout_seconds
    monkeypatch.setenv("IOC_DOSSIER_API_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("IOC_DOSSIER_API_LOOKBACK_HOURS", "12")
    monkeypatch.setenv("IOC_DOSSIER_API_RECONCILE_DAYS", "0")
    gateway = source.Gateway.from_settings(resources()["gateway"].process_config_and_initialize())
    assert gateway is not None and (gateway.timeout, gateway.lookback, gateway.reconcile_every) == (
        7,
        timedelta(hours=12),
        timedelta(0),
    )


# --------------------------------------------------------------------------------------------------
# paging bounded
# --------------------------------------------------------------------------------------------------


def test_a_gateway_that_always_announces_one_more_page_fails_at_once(served, tmp_path: Path) -> None:
    gateway, server = served
    gateway.endless = True
    message = _failure(Loads(tmp_path, server.url))
    pages = -(-len(gateway) // 300)
    assert f"announces {pages + 1} pages for {len(gateway)} versions at 300 a page (at most {pages})" in message
    assert f"page={pages}&" in message and "paging stopped" in message
    assert len(gateway.requests) == pages  # not one request more than the versions can fill


def test_a_gateway_that_repeats_a_page_fails_naming_it(served, tmp_path: Path) -> None:
    gateway, server = served
    gateway.repeat_first_page = True
    message = _failure(Loads(tmp_path, server.url))
    assert "page 2 repeats the versions of page 1" in message and "paging stopped" in message
    assert len(gateway.requests) == 2


# --------------------------------------------------------------------------------------------------
# late backdated versions: the look-back window, de-duplication, the reconciliation
# --------------------------------------------------------------------------------------------------


def _backdated(gateway: Served, loads: Loads, age: timedelta, status: int) -> dict:
    """A new version of a loaded dossier, stamped `age` before the newest version loaded."""
    bronze = loads.bronze()
    newest = bronze.get_column(source.UPDATED_AT).max().astimezone(source.TZ)
    code = bronze.get_column("dossier_code")[0]
    line = next(
        json.loads(b) for b in gateway._bodies if json.loads(b)["MaHoSo"] == code and json.loads(b).get("NgayCapNhat")
    )
    stamp = (newest - age).strftime("%d/%m/%Y %H:%M:%S")
    version = {**line, "TrangThaiHoSo": status, "NgayCapNhat": stamp}
    gateway.add_lines([json.dumps(version, ensure_ascii=False).encode()])
    return version


def _copies(loads: Loads, version: dict) -> int:
    bronze = loads.bronze()
    same = (pl.col("dossier_code") == version["MaHoSo"]) & (pl.col("updated_at") == version["NgayCapNhat"])
    return bronze.filter(same & (pl.col("status") == str(version["TrangThaiHoSo"]))).height


def test_a_late_backdated_version_inside_the_window_is_loaded_once(served, tmp_path: Path) -> None:
    gateway, server = served
    loads = Loads(tmp_path, server.url)
    first = loads.load()
    assert first.report.rows == len(gateway) == loads.bronze().height
    version = _backdated(gateway, loads, timedelta(hours=20), status=8)
    second = loads.load()
    assert second.report.rows == 1 and _copies(loads, version) == 1
    assert second.gateway.duplicates == second.gateway.rows - 1 > 0  # the window answered again, not appended
    third = loads.load()
    assert third.report.rows == 0 and _copies(loads, version) == 1
    assert loads.bronze().height == len(gateway)


def test_a_version_backdated_beyond_the_window_is_found_by_the_reconciliation(served, tmp_path: Path) -> None:
    gateway, server = served
    loads = Loads(tmp_path, server.url)
    loads.load()
    version = _backdated(gateway, loads, timedelta(days=40), status=7)
    missed = loads.load()  # reconciled at the first (full) load a moment ago: not due yet
    assert missed.report.rows == 0 and _copies(loads, version) == 0 and not missed.gateway.reconciled

    found = loads.load(reconcile_every=timedelta(0))
    month = source.month_of(
        pl.Series([version["NgayCapNhat"]]).str.strptime(pl.Datetime, "%d/%m/%Y %H:%M:%S")[0].date()
    )
    assert found.gateway.reconciled and month in found.gateway.reconciliation
    counts = found.gateway.reconciliation[month]
    assert counts["gateway"] == counts["bronze"] + 1 > 1
    assert found.report.rows == 1 and _copies(loads, version) == 1
    assert found.gateway.updated_from.startswith(f"{month}-01T00:00:00")
    assert loads.bronze().height == len(gateway)

    again = loads.load(reconcile_every=timedelta(0))
    assert again.gateway.reconciled and month not in again.gateway.reconciliation and again.report.rows == 0
    assert again.gateway.updated_from == missed.gateway.updated_from  # nothing short: the look-back window only


def test_incremental_with_a_window_equals_a_full_reload_in_bronze(served, tmp_path: Path) -> None:
    gateway, server = served
    nightly = Loads(tmp_path / "nightly", server.url)
    lines = list(gateway._bodies)
    cut = len(lines) // 2
    gateway._keys, gateway._bodies = gateway._keys[:cut], gateway._bodies[:cut]
    nightly.load()
    gateway.add_lines(lines[cut:])
    nightly.load()
    nightly.load(reconcile_every=timedelta(0))
    full = Loads(tmp_path / "full", server.url)
    full.load()
    columns = [*source.CONTENT, source.UPDATED_AT]
    assert nightly.bronze().select(columns).sort(columns).equals(full.bronze().select(columns).sort(columns))
    assert full.bronze().height == len(gateway)


# --------------------------------------------------------------------------------------------------
# the network step's run-level retry policy
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow  # a real SIGINT into a running step, a gateway that answers slowly
def test_ctrl_c_during_the_network_step_stops_the_run_instead_of_retrying_it(served, tmp_path: Path) -> None:
    gateway, server = served
    gateway.slow_seconds = 2.0
    pipeline = _api_pipeline(tmp_path / "data", server.url)

    def interrupt_when_asked() -> None:
        for _ in range(600):
            if gateway.requests:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C (or `kill -INT`) does to `make run`
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt_when_asked, daemon=True).start()
    started = time.monotonic()
    bronze = [dg.AssetKey(["bronze", "dossiers"])]
    results = [pipeline.run("refresh_public_service", asset_selection=bronze)]  # Dagster: an interrupted step
    assert time.monotonic() - started < 60 and not succeeded(results)
    events = [e for r in results for e in r.all_events]
    assert not [e for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    (failed,) = [e for e in events if e.event_type_value == "STEP_FAILURE"]
    assert failed.step_key == "bronze__dossiers" and "Interrupted" in failed.event_specific_data.error.cls_name
    time.sleep(3)  # a retried step would have asked again within the first retry's delay
    assert len(gateway.requests) == 1


def test_the_bronze_step_is_retried_when_the_gateway_fails_twice_then_answers(served, tmp_path: Path) -> None:
    gateway, server = served
    pipeline = _api_pipeline(tmp_path / "data", server.url)
    pipeline.extra_env["IOC_DOSSIER_API_MAX_ATTEMPTS"] = "1"  # each step attempt asks once
    gateway.fail_500 = 2
    results = [pipeline.run("refresh_public_service", asset_selection=[dg.AssetKey(["bronze", "dossiers"])])]
    assert succeeded(results), failure_messages(results)
    assert [r["status"] for r in gateway.requests[:3]] == [500, 500, 200]
    retried = [e for e in results[0].all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert [e.step_key for e in retried] == ["bronze__dossiers", "bronze__dossiers"]
    waits = [e.event_specific_data.seconds_to_wait for e in retried]
    assert 0 <= waits[0] <= 2 and 0 <= waits[1] <= 6  # NETWORK_RETRY: 1 s, then 3 s, jittered
    bronze = _bronze_metadata(results)
    assert bronze["rows_loaded"] == bronze["versions_answered"] == len(gateway)
    assert (bronze["versions_already_loaded"], bronze["reconciled"]) == (0, False)  # a first load is complete
