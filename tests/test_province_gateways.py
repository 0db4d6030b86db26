"""A dossier gateway per former province (issue 15): until their one-stop-shop systems merge, Hậu Giang (93) and
Sóc Trăng (94) each have their own gateway API (`IOC_DOSSIER_API_URL_<code>`, `IOC_DOSSIER_API_TOKEN_<code>`).
Two local gateway servers on 127.0.0.1 serve two small, different deliveries; `cli run` (what `make run` runs)
loads each into its own province's partition, with its own dlt state (cursor), and a gateway that is down fails
only its own province's partition while the other province publishes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ioc_pipeline import cli
from ioc_pipeline.assets.public_service import BRONZE_KEY
from ioc_pipeline.cli import PARTITION_TAG
from ioc_pipeline.resources import DossierGatewayResource, resources
from ioc_pipeline.sample import province
from ioc_pipeline.sample.__main__ import SEED
from ioc_pipeline.sample.gateway import Gateway as Served
from ioc_pipeline.sample.gateway import GatewayServer
from ioc_pipeline.sources import dossiers as source
from tests.conftest import ENV_KEYS, LOCAL_INSTANCE, Pipeline, failure_messages, succeeded

CODES = ("93", "94")
LOOKBACK = timedelta(hours=48)  # IOC_DOSSIER_API_LOOKBACK_HOURS' default


def _token(code: str) -> str:
    return f"token-of-{code}-0123456789"


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    """Each province's own month of dossiers (sample/province.py: 60 versions, its own codes and communes)."""
    out = tmp_path_factory.mktemp("served")
    lines = {}
    for code in CODES:
        province.write(out / code, code, SEED)
        lines[code] = (out / code / "public_service" / "dossiers_202204.ndjson").read_bytes().splitlines()
    return lines


@contextmanager
def _serving(deliveries: dict[str, list[bytes]]) -> Iterator[dict[str, tuple[Served, GatewayServer]]]:
    """A gateway server per province, each serving its own delivery and accepting its own token only."""
    started = {}
    try:
        for code in CODES:
            served = Served(_token(code))
            served.add_lines(deliveries[code])
            started[code] = (served, GatewayServer(served).start())
        yield started
    finally:
        for _, server in started.values():
            server.stop()


def _settings(gateways: dict[str, tuple[Served, GatewayServer]]) -> dict[str, str]:
    env = {
        "IOC_PROVINCES": ",".join(CODES),
        "IOC_DOSSIER_API_PAGE_SIZE": "25",
        "IOC_DOSSIER_API_BACKOFF_SECONDS": "0.01",
    }
    for code, (_, server) in gateways.items():
        env |= {f"IOC_DOSSIER_API_URL_{code}": server.url, f"IOC_DOSSIER_API_TOKEN_{code}": _token(code)}
    return env


@dataclass
class FirstLoad:
    pipeline: Pipeline
    hosts: dict[str, str]  # the gateway (host:port) each province was loaded from


@pytest.fixture(scope="module")
def first_load(tmp_path_factory: pytest.TempPathFactory, deliveries: dict[str, list[bytes]]) -> FirstLoad:
    """Both provinces' gateways loaded and published by one `cli run`; the landing zone holds no file."""
    with _serving(deliveries) as gateways:
        pipeline = Pipeline(tmp_path_factory.mktemp("gateways") / "data", _settings(gateways))
        pipeline.home.mkdir(parents=True)
        (pipeline.home / "dagster.yaml").write_bytes(LOCAL_INSTANCE.read_bytes())
        for code in CODES:
            (pipeline.landing / code).mkdir(parents=True)
        results = pipeline.refresh()
        assert succeeded(results), failure_messages(results)
        for code, (served, _) in gateways.items():
            assert {r["status"] for r in served.requests} == {200}, code  # each sent its own token, accepted
        return FirstLoad(pipeline, {code: server.url.removeprefix("http://") for code, (_, server) in gateways.items()})


@pytest.fixture
def gateways(deliveries: dict[str, list[bytes]]) -> Iterator[dict[str, tuple[Served, GatewayServer]]]:
    """The same two gateways again (fresh servers serving what the first load read), for one test."""
    with _serving(deliveries) as started:
        yield started


@pytest.fixture
def loaded(first_load: FirstLoad, gateways: dict[str, tuple[Served, GatewayServer]], tmp_path: Path) -> Pipeline:
    """A private copy of the first load (lake, dlt state, instance), its settings naming this test's gateways."""
    pipeline = first_load.pipeline.copy(tmp_path / "data")
    pipeline.extra_env |= _settings(gateways)
    return pipeline


def _bronze_metadata(pipeline: Pipeline, code: str) -> dict:
    """The latest materialization of province `code`'s bronze partition: its metadata."""
    with pipeline.environment(), dg.DagsterInstance.get() as instance:
        (record,) = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=BRONZE_KEY, asset_partitions=[code]), limit=1
        ).records
        return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _personal(lines: list[bytes]) -> set[str]:
    """The applicants' names, citizen IDs and phones of a delivery."""
    found = set()
    for line in lines:
        applicant = json.loads(line)["ChuHoSo"]
        found |= {applicant["HoTen"], applicant["SoGiayTo"], applicant["SoDienThoai"]}
    return found


def _later(served: Served, count: int, days: int) -> list[str]:
    """`count` open dossiers of a gateway finished `days` after its newest version: new versions it serves."""
    newest = max(stamp for stamp, _ in served._keys)
    stamp = (newest + timedelta(days=days)).replace(tzinfo=None).isoformat()
    opened = [json.loads(body) for body in served._bodies if json.loads(body)["TrangThaiHoSo"] == "4"][:count]
    versions = [
        {**d, "TrangThaiHoSo": "10", "NgayKetThucXuLy": stamp, "NgayTra": stamp, "NgayCapNhat": stamp} for d in opened
    ]
    served.add_lines([json.dumps(v, ensure_ascii=False).encode() for v in versions])
    return [v["MaHoSo"] for v in versions]


def test_a_gateway_per_province_is_a_setting_the_unsuffixed_one_the_first_provinces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`IOC_DOSSIER_API_URL_<code>`/`_TOKEN_<code>` per former province; the unsuffixed pair is the single
    province's gateway, or the first listed one's when it has none of its own; tokens stay `EnvVar`s."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("IOC_DOSSIER_API_URL", "http://127.0.0.1:9/one")
    monkeypatch.setenv("IOC_DOSSIER_API_TOKEN", "the-legacy-token")
    legacy = resources()["gateway"].process_config_and_initialize()
    assert legacy.endpoint("94") == ("http://127.0.0.1:9/one", "the-legacy-token", "IOC_DOSSIER_API_TOKEN")

    monkeypatch.setenv("IOC_PROVINCES", "93,94,92")
    monkeypatch.setenv("IOC_DOSSIER_API_URL_94", "http://127.0.0.1:9/soc-trang")
    monkeypatch.setenv("IOC_DOSSIER_API_TOKEN_94", "token-94")
    declared = resources()["gateway"]
    assert isinstance(declared, DossierGatewayResource)
    assert isinstance(declared.by_province["94"].token, dg.EnvVar)  # the UI shows the variable, never the token
    settings = declared.process_config_and_initialize()
    assert settings.endpoint("93") == ("http://127.0.0.1:9/one", "the-legacy-token", "IOC_DOSSIER_API_TOKEN")
    assert settings.endpoint("94") == ("http://127.0.0.1:9/soc-trang", "token-94", "IOC_DOSSIER_API_TOKEN_94")
    assert settings.endpoint("92") == ("", "", "IOC_DOSSIER_API_TOKEN_92")  # no gateway: its export files
    clients = {code: source.Gateway.from_settings(settings, code) for code in ("93", "94", "92")}
    assert clients["92"] is None and clients["93"].url.endswith("/one") and clients["94"].token == "token-94"
    assert clients["94"].host == "127.0.0.1:9" and clients["94"].page_size == settings.page_size  # shared tuning
    monkeypatch.setenv("IOC_DOSSIER_API_URL_93", "http://127.0.0.1:9/hau-giang")  # its own wins, without a token
    assert resources()["gateway"].process_config_and_initialize().endpoint("93") == (
        "http://127.0.0.1:9/hau-giang",
        "",
        "IOC_DOSSIER_API_TOKEN_93",
    )


def test_each_province_loads_its_own_gateway_with_its_own_cursor(
    first_load: FirstLoad,
    loaded: Pipeline,
    gateways: dict[str, tuple[Served, GatewayServer]],
    deliveries: dict[str, list[bytes]],
) -> None:
    # each province's partition holds its own gateway's dossiers, and nothing of the applicants but pseudonyms
    silver = loaded.query("select province_code, dossier_code from silver.dossiers")
    for code in CODES:
        mine = sorted(d for c, d in silver if c == code)
        assert mine == sorted(json.loads(line)["MaHoSo"] for line in deliveries[code]), code
        bronze = pl.read_parquet(loaded.root / "lake" / "bronze" / "dossiers" / code / "*.parquet")
        assert bronze.get_column("dossier_code").str.starts_with(f"{code}-").all(), code
        assert bronze.get_column("applicant_id").null_count() == 0 and "ChuHoSo" not in bronze.columns
        cells = set(bronze.select(pl.all().cast(pl.String)).unpivot().get_column("value").drop_nulls())
        assert not cells & _personal(deliveries[code]), code
        metadata = _bronze_metadata(loaded, code)
        assert metadata["source"] == "api" and metadata["gateway"] == first_load.hosts[code]
        assert metadata["rows_loaded"] == len(deliveries[code]) and _token(code) not in repr(metadata)
    # their states are their own: a dlt pipeline each, locally and in the lake (exact names, never a prefix)
    for code in CODES:
        assert (loaded.root / "dlt" / f"ioc_dossiers_{code}").is_dir()
    states = {p.name.split("__")[0] for p in (loaded.root / "lake" / "bronze" / "_dlt_pipeline_state").iterdir()}
    assert {"ioc_dossiers_93", "ioc_dossiers_94"} <= states and "ioc_dossiers" not in states

    # new versions on both: each gateway is asked only for what changed since ITS newest version loaded
    newest = {code: max(stamp for stamp, _ in served._keys) for code, (served, _) in gateways.items()}
    assert newest["93"] != newest["94"]  # otherwise the two cursors could not be told apart
    changed = {code: _later(served, 3 if code == "93" else 5, days=2) for code, (served, _) in gateways.items()}
    loaded.extra_env["IOC_DOSSIER_API_RECONCILE_DAYS"] = "0"  # and each compares its counts per month with bronze
    results = loaded.refresh()
    assert succeeded(results), failure_messages(results)
    for code, (served, _) in gateways.items():
        pages = [r for r in served.requests if r["page_size"] != "1"]  # not the reconciliation's counts
        assert {r["updated_from"] for r in pages} == {(newest[code] - LOOKBACK).isoformat()}, code
        metadata = _bronze_metadata(loaded, code)
        assert metadata["rows_loaded"] == len(changed[code]), code
        # compared with its own province's versions only: every month equal (the other's would be "more in bronze")
        assert metadata["reconciled"] and metadata["reconciliation_months_unequal"] == {}, code
    finished = loaded.query("select province_code, dossier_code from silver.dossiers where status_code = '10'")
    for code in CODES:
        assert set(changed[code]) <= {d for c, d in finished if c == code}, code


def test_a_gateway_down_fails_only_its_own_provinces_partition(
    loaded: Pipeline, gateways: dict[str, tuple[Served, GatewayServer]]
) -> None:
    down, up = gateways["93"][1], gateways["94"][0]
    down.stop()  # Hậu Giang's gateway answers no more (its port refuses connections)
    changed = _later(up, 4, days=1)  # Sóc Trăng's delivers new versions
    loaded.extra_env |= {"IOC_DOSSIER_API_MAX_ATTEMPTS": "2", "IOC_DOSSIER_API_STEP_RETRIES": "0"}
    before = dict(loaded.query("select province_code, count(*) from silver.dossiers group by 1"))

    results = loaded.refresh()
    failed = [r for r in results if not r.success]
    assert [(r.job_def.name, r.dagster_run.tags.get(PARTITION_TAG)) for r in failed] == [("refresh_provinces", "93")]
    message = failure_messages(failed)
    assert "former province 93" in message and down.url.removeprefix("http://") in message
    assert _token("93") not in message
    assert cli.published_in(results[-1])  # Sóc Trăng's new versions are published
    finished = {d for (d,) in loaded.query("select dossier_code from silver.dossiers where status_code = '10'")}
    assert set(changed) <= finished
    assert dict(loaded.query("select province_code, count(*) from silver.dossiers group by 1")) == before
    alerts = loaded.query("select alert_id from ops.alerts where kind = 'province_load_failed'")
    assert alerts == [("province_load_failed:dossiers/93",)]


def test_the_feed_status_judges_each_provinces_dossiers_by_its_own_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A province with a gateway is late after the API's 2 days without news, one without after the exports' 35."""
    from datetime import date

    from ioc_pipeline.assets import ops
    from ioc_pipeline.feeds import feeds
    from ioc_pipeline.lake import Lake, Landing

    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("IOC_PROVINCES", ",".join(CODES))
    monkeypatch.setenv("IOC_DOSSIER_API_URL_94", "http://127.0.0.1:9")
    (tmp_path / "landing").mkdir()
    settings = resources()["gateway"].process_config_and_initialize()
    assert settings.api_provinces() == {"94"}
    spec = next(f for f in feeds() if f.name == "dossiers")
    inputs = ops.Inputs(
        landing=Landing(str(tmp_path / "landing")),
        lake=Lake(str(tmp_path / "lake")),
        gates=pl.DataFrame(),
        refused=pl.DataFrame(schema={"path": pl.String, "reason": pl.String, "reason_vi": pl.String}),
        today=date(2022, 5, 1),
        api=settings.api_provinces(),
    )
    rows = {code: ops.status_row(spec, inputs, province=code) for code in CODES}
    assert spec.api_late_after != spec.late_after
    assert (rows["94"]["late_after_days"], rows["93"]["late_after_days"]) == (
        spec.api_late_after.days,
        spec.late_after.days,
    )
    assert "API" in rows["94"]["reason_vi"] and "no file matching" in rows["93"]["reason_en"]
