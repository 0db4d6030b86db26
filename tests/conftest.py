"""Fixtures: temp lakes with their own DAGSTER_HOME, a network guard, one shared sample run.

Every test that materializes runs real Dagster (a persistent instance in a temp DAGSTER_HOME),
real dlt, real Great Expectations and real DuckDB files; nothing is mocked but the network,
which is refused outside loopback for the whole session.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from filelock import FileLock

from ioc_pipeline.cli import job_run, refresh
from ioc_pipeline.definitions import build_defs
from ioc_pipeline.lake import Lake
from ioc_pipeline.sample.__main__ import FEEDS, SEED
from ioc_pipeline.sample.s3 import local_s3
from ioc_pipeline.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
NEWEST_CATALOG = "procedures/tthc_20220430.json"  # the sample's newest procedure catalog
LOCAL_INSTANCE = REPO / "deploy" / "dagster.local.yaml"  # the embedded instance `make` copies into DAGSTER_HOME
ENV_KEYS = (
    "IOC_DATA_DIR",
    "IOC_LANDING_DIR",
    "IOC_LAKE_DIR",
    "IOC_DLT_DIR",
    "IOC_WAREHOUSE_PATH",
    "DAGSTER_HOME",
    "IOC_MODE",
    "IOC_PII_KEY",
    "IOC_DOSSIER_API_URL",
    "IOC_DOSSIER_API_TOKEN",
    "IOC_DOSSIER_API_PAGE_SIZE",
    "IOC_DOSSIER_API_BACKOFF_SECONDS",
    "IOC_DOSSIER_API_MAX_ATTEMPTS",
    "IOC_DOSSIER_API_STEP_RETRIES",
    "IOC_DOSSIER_API_TIMEOUT_SECONDS",
    "IOC_DOSSIER_API_LOOKBACK_HOURS",
    "IOC_DOSSIER_API_RECONCILE_DAYS",
    "IOC_QUALITY_POLICY",
    "IOC_ALERT_WEBHOOK_URL",
    "IOC_LANDING_SETTLE_SECONDS",
    "IOC_REPORT_BASE_URL",
    "IOC_PROVINCES",
    *(f"IOC_DOSSIER_API_{name}_{code}" for name in ("URL", "TOKEN") for code in ("92", "93", "94")),  # per province
)
NETWORK_ATTEMPTS: list[str] = []


def _loopback(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # a unix socket
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


# The scopes (a file, or a class of tests) that take longest go first, as measured with --durations: pytest-xdist
# (--dist loadscope --no-loadscope-reorder, see the Makefile) hands whole scopes to the workers in this order, so
# the long ones start at once and the short ones fill in around them (the UI test mostly waits for Dagster's
# backfill daemon, whose loop is 30 s: the other workers use that time).
LONGEST_FIRST = (
    "tests/test_recovery.py::TestFaultInjection",
    "tests/test_ui.py",
    "tests/test_dossiers.py",
    "tests/test_isolation.py",
    "tests/test_automation.py",
    "tests/test_warehouse.py",
    "tests/test_changes.py",
    "tests/test_report.py",
    "tests/test_procedures.py",
    "tests/test_deliveries.py",
    "tests/test_province_gateways.py",  # two gateway servers, two provinces: about 50 s
    "tests/test_recovery.py",
    "tests/test_distributed.py",  # about 2.5 min alone: a Dask cluster, two whole runs
    "tests/test_bench.py",
    "tests/test_s3.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, scope in enumerate(LONGEST_FIRST) if item.nodeid.startswith(scope)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: within a scope, and among the rest, the order of the files stays


@pytest.fixture(autouse=True, scope="session")
def no_network() -> Iterator[None]:
    """Refuse (and record) every connection that leaves the machine: telemetry included."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(method):
        def connect(self: socket.socket, address: object):
            if not _loopback(address):
                NETWORK_ATTEMPTS.append(repr(address))
                raise ConnectionRefusedError(f"test guard: no network ({address!r})")
            return method(self, address)

        return connect

    socket.socket.connect = guarded(real_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded(real_connect_ex)  # type: ignore[method-assign]
    yield
    socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]


@dataclass
class Pipeline:
    """A data dir (landing, lake, warehouse, dlt state, DAGSTER_HOME) and ways to run over it."""

    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the gateway's URL and token

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse" / "ioc.duckdb"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def lake(self) -> Lake:
        return Lake(str(self.root / "lake"))

    def env(self) -> dict[str, str]:
        return {
            "IOC_DATA_DIR": str(self.root),
            "DAGSTER_HOME": str(self.home),
            "IOC_MODE": "sample",
            "IOC_LANDING_SETTLE_SECONDS": "0",  # the tests deliver a file and run at once
            **self.extra_env,
        }

    @contextmanager
    def environment(self) -> Iterator[None]:
        with pytest.MonkeyPatch.context() as patch:
            for key in ENV_KEYS:
                patch.delenv(key, raising=False)
            for key, value in self.env().items():
                patch.setenv(key, value)
            yield

    def run(self, job: str = "refresh_all", **kwargs) -> dg.ExecuteInProcessResult:
        """One run of `job` as `cli run --job` makes it: a partitioned one gets this and last month's delivered
        months (else the newest) unless `tags` name a range."""
        with self.environment():
            definition = build_defs().resolve_job_def(job)
            with dg.DagsterInstance.get() as instance:
                if "tags" not in kwargs and "partition_key" not in kwargs:
                    chosen = job_run(definition, instance)
                    kwargs["tags"] = chosen["tags"]
                    if "asset_selection" in chosen:
                        kwargs.setdefault("asset_selection", chosen["asset_selection"])
                return definition.execute_in_process(instance=instance, raise_on_error=False, **kwargs)

    def refresh(self, everything: bool = False) -> list[dg.ExecuteInProcessResult]:
        """As `python -m ioc_pipeline.cli run` does (`--all` when `everything`): what changed, around the
        changed dossier months."""
        with self.environment():
            defs = build_defs()
            with dg.DagsterInstance.get() as instance:
                return refresh(defs, instance, everything)

    def deliver_catalog(self) -> None:
        """Today's procedure catalog: the newest one less its first procedure."""
        catalog = json.loads((self.landing / NEWEST_CATALOG).read_text(encoding="utf-8"))
        today = date.today().strftime("%Y%m%d")
        (self.landing / "procedures" / f"tthc_{today}.json").write_text(json.dumps(catalog[1:]), encoding="utf-8")

    def tick(self, sensor: str, cursor: str | None = None, **env: str) -> dg.SensorExecutionData:
        """One evaluation of `sensor` against this pipeline's instance, as the daemon makes it: the cursor
        in, the tick out; `env` adds settings (e.g. the alert webhook) for that evaluation only."""
        from ioc_pipeline.resources import resources

        with self.environment(), pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            defs = build_defs()
            with (
                dg.DagsterInstance.get() as instance,
                dg.build_sensor_context(
                    instance=instance, cursor=cursor, definitions=defs, resources=resources()
                ) as context,
            ):
                return defs.resolve_sensor_def(sensor).evaluate_tick(context)

    def query(self, sql: str) -> list[tuple]:
        with connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()

    def scorecard(self) -> dict[str, float]:
        return dict(self.query("select indicator_code, value from gold.ioc_scorecard"))

    def copy(self, target: Path) -> Pipeline:
        shutil.copytree(self.root, target, symlinks=True)  # the warehouse's WAL guard is a dangling link
        return Pipeline(target, dict(self.extra_env))


DELIVERED_AGO = 2 * 3600  # seconds: the sample's files were delivered long ago, as a settled landing zone's are


def new_pipeline(root: Path, feeds: tuple[str, ...] = tuple(FEEDS)) -> Pipeline:
    pipeline = Pipeline(root)
    pipeline.home.mkdir(parents=True)
    shutil.copy(LOCAL_INSTANCE, pipeline.home / "dagster.yaml")
    for feed in feeds:
        FEEDS[feed](pipeline.landing, SEED)
    delivered = time.time() - DELIVERED_AGO
    for path in pipeline.landing.rglob("*"):
        os.utime(path, (delivered, delivered))
    return pipeline


def failure_messages(result: dg.ExecuteInProcessResult | list[dg.ExecuteInProcessResult]) -> str:
    results = result if isinstance(result, list) else [result]
    return "\n".join(
        str(event.event_specific_data.error.message)
        for one in results
        for event in one.all_events
        if event.event_type_value == "STEP_FAILURE"
    )


def succeeded(results: list[dg.ExecuteInProcessResult]) -> bool:
    return bool(results) and all(r.success for r in results)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server in its own process on a free loopback port; yields the AWS variables that reach it."""
    with local_s3(tmp_path_factory.mktemp("moto") / "moto.log") as aws:
        yield aws


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Pipeline:
    """The committed sample's generator output, materialized once for the whole session (read-only).

    Under pytest-xdist the first worker to ask builds it in the session's shared temp folder and every
    worker takes its own copy (a copy costs a fraction of a second, a build a whole pipeline run)."""
    own = tmp_path_factory.mktemp("sample") / "data"
    if worker_id == "master":  # no xdist: this process is the session
        return _built_sample(own)
    shared = tmp_path_factory.getbasetemp().parent  # one per session, common to its workers
    with FileLock(shared / "sample-run.lock"):
        built = shared / "sample-run" / "data"
        if not (shared / "sample-run.done").exists():
            shutil.rmtree(built.parent, ignore_errors=True)  # a build that failed in another worker
            _built_sample(built)
            (shared / "sample-run.done").touch()
    return Pipeline(built).copy(own)


def _built_sample(root: Path) -> Pipeline:
    pipeline = new_pipeline(root)
    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)
    return pipeline


@pytest.fixture
def published(sample_run: Pipeline, tmp_path: Path) -> Pipeline:
    """A private copy of the published sample, for tests that deliver more and run again."""
    return sample_run.copy(tmp_path / "data")
