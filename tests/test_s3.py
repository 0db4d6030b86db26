"""The lake on object storage: `IOC_LAKE_DIR=s3://bucket/prefix` runs the whole pipeline against a real S3
server (moto's server mode, started here on 127.0.0.1), with the endpoint and credentials only in the
standard AWS variables. Bronze (dlt), silver, gold, quarantine, ops, feedback workbooks, quality pages and
the report land in the bucket; the warehouse is built from it; dlt's local state is restored from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import s3fs

from ioc_pipeline.report.ioc import FOUNDING_REPORT
from ioc_pipeline.sample.s3 import bucket_client
from ioc_pipeline.warehouse import BUILD_TABLE, SCHEMAS
from tests.conftest import NETWORK_ATTEMPTS, Pipeline, failure_messages, new_pipeline, succeeded

BUCKET = "ioc-lake"
PREFIX = "province/lake"
# What a run may leave on the local disk when the lake is in the bucket: the delivered files, Dagster's
# instance, dlt's working state (IOC_DLT_DIR stays local) and the analysts' warehouse file.
LOCAL = {"landing", "dagster_home", "dlt", "warehouse"}
LAKE_FILES = (".parquet", ".html", ".xlsx", ".jsonl")


def _bucket(aws: dict[str, str]) -> s3fs.S3FileSystem:
    return bucket_client(aws)


def _objects(bucket: s3fs.S3FileSystem) -> dict[str, int]:
    """Every object under the lake's prefix, relative to it, with its size."""
    base = f"{BUCKET}/{PREFIX}/"
    return {p[len(base) :]: int(i["size"]) for p, i in bucket.find(base, detail=True, withdirs=False).items()}


def _parquet_rows(bucket: s3fs.S3FileSystem, objects: dict[str, int]) -> dict[str, int]:
    """Rows of each table (`layer.table`) of the bucket, from its Parquet footers."""
    rows: dict[str, int] = {}
    for path in objects:
        layer, table, *_ = path.split("/")
        if path.endswith(".parquet") and not table.startswith("_"):
            with bucket.open(f"{BUCKET}/{PREFIX}/{path}") as handle:
                rows[f"{layer}.{table}"] = rows.get(f"{layer}.{table}", 0) + pq.ParquetFile(handle).metadata.num_rows
    return rows


@pytest.fixture(scope="module")
def s3_run(s3_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The sample delivery run whole (as `make run`) with the lake in a bucket of the local S3 server."""
    _bucket(s3_server).mkdir(BUCKET)
    pipeline = new_pipeline(tmp_path_factory.mktemp("s3") / "data")
    pipeline.extra_env.update(s3_server, IOC_LAKE_DIR=f"s3://{BUCKET}/{PREFIX}")
    attempts = len(NETWORK_ATTEMPTS)
    results = pipeline.refresh()
    assert succeeded(results), failure_messages(results)
    assert NETWORK_ATTEMPTS[attempts:] == []  # nothing reached for a real AWS endpoint (metadata service, STS…)
    return pipeline


@pytest.mark.slow  # an S3 server and whole pipeline runs against it
def test_the_whole_pipeline_runs_with_the_lake_in_a_bucket(s3_run: Pipeline, s3_server: dict[str, str]) -> None:
    founding = {code: figure for code, figure in FOUNDING_REPORT.items() if isinstance(figure, int)}
    scorecard = s3_run.scorecard()
    assert {code: scorecard.get(code) for code in founding} == founding

    bucket = _bucket(s3_server)
    objects = _objects(bucket)
    rows = _parquet_rows(bucket, objects)
    # every table of the warehouse was read from the bucket, whole
    tables = [  # the lake's tables: not the `_latest` views nor the build's own stamp (ops.warehouse_build)
        f"{s}.{t}"
        for s, t in s3_run.query(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
        )
        if f"{s}.{t}" != BUILD_TABLE
    ]
    published = {name: s3_run.query(f"select count(*) from {name}")[0][0] for name in tables}
    assert published == {name: count for name, count in rows.items() if name.split(".")[0] in SCHEMAS}
    assert published["gold.ioc_scorecard"] > 0
    # dlt's bronze loads and its state, in the bucket
    for table in ("procedures", "dossiers", "bts_stations", "postal_enterprises", "postal_service_points"):
        assert rows[f"bronze.{table}"] > 0, table
        assert any(p.startswith(f"bronze/_dlt_pipeline_state/ioc_{table}__") for p in objects), table
    # non-Parquet files: feedback workbooks, quality pages, the report
    assert [p for p in objects if p.startswith("ops/feedback/procedures/") and p.endswith(".xlsx")]
    assert [p for p in objects if p.startswith("ops/quality/dossiers/") and p.endswith(".html")]
    assert objects["report/ioc/latest.html"] > 100_000
    assert bucket.cat_file(f"{BUCKET}/{PREFIX}/report/ioc/latest.html")[:200].lower().lstrip().startswith(b"<!doctype")

    # nothing of the lake on the local disk
    root = s3_run.root
    assert {p.name for p in root.iterdir()} <= LOCAL
    assert sorted(p.name for p in (root / "warehouse").iterdir()) == ["ioc.duckdb", "ioc.duckdb.wal"]
    assert (root / "warehouse" / "ioc.duckdb.wal").is_symlink()  # the WAL guard (warehouse.guard)
    strays = [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.suffix in LAKE_FILES and p.relative_to(root).parts[0] not in ("landing", "dlt")
    ]
    assert strays == []


@pytest.mark.slow  # an S3 server and whole pipeline runs against it
def test_dlt_state_lost_locally_is_restored_from_the_bucket(s3_run: Pipeline, s3_server: dict[str, str]) -> None:
    """`python -m ioc_pipeline.cli run --all` (what `make run` runs, every bronze step forced: with no new
    delivery a plain run would not start them) with only the AWS variables and IOC_LAKE_DIR for the lake,
    after the local dlt folder is lost: the files loaded before are not loaded again."""
    bucket = _bucket(s3_server)
    before = _objects(bucket)
    scorecard = s3_run.scorecard()
    dlt_dir = s3_run.root / "dlt"
    assert (dlt_dir / "ioc_procedures" / "state.json").exists()
    shutil.rmtree(dlt_dir)

    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(s3_run.root)),
        "IOC_DATA_DIR": str(s3_run.root),
        "DAGSTER_HOME": str(s3_run.home),
        "IOC_MODE": "sample",
        "IOC_LAKE_DIR": f"s3://{BUCKET}/{PREFIX}",
        **s3_server,
    }
    done = subprocess.run(
        [sys.executable, "-m", "ioc_pipeline.cli", "run", "--all"],
        env=environment,
        cwd=s3_run.root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    after = _objects(bucket)
    bronze = {p: size for p, size in before.items() if p.startswith("bronze/")}
    assert {p: size for p, size in after.items() if p.startswith("bronze/")} == bronze  # no load, no new state
    assert (dlt_dir / "ioc_procedures" / "state.json").exists()  # the state came back from the bucket
    assert s3_run.scorecard() == scorecard
    assert not (s3_run.root / "lake").exists()
