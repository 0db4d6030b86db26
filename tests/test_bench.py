"""The benchmark harness works end to end on a tiny delivery (never a timing assertion).

`bench.run` generates a delivery, runs the bare DuckDB baseline and the pipeline exactly as
production does (`python -m ioc_pipeline.cli run` in a subprocess, its own DAGSTER_HOME), then a
nightly run, and writes JSON and markdown. What is checked: the result has the figures it promises,
the Dagster steps were read from the event log, and the baseline's gold equals the pipeline's gold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import run as bench
from bench.measure import run as measured_run

pytestmark = pytest.mark.slow  # the whole harness in subprocesses: `make test` only, not `make test-fast`

SCALE = 0.002  # about 2,000 dossier versions when the dossier feed is there


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("bench")
    feeds, _ = bench.available_feeds()
    bench.main(
        ["--scale", str(SCALE), "--feeds", ",".join(feeds), "--skip-api", "--work", str(root / "work")]
        + ["--out", str(root / "results"), "--quiet-wait", "0"]  # a test never waits for a quiet machine
    )
    files = sorted((root / "results").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text()), root


def test_result_has_the_promised_figures(result: tuple[dict, Path]) -> None:
    found, root = result
    for key in ("machine", "versions", "delivery", "pipeline", "baseline", "ratio_pipeline_to_baseline", "targets"):
        assert key in found, key
    assert {"cores", "memory_gb", "cpu_model"} <= set(found["machine"])
    assert {"python", "dagster", "dlt", "duckdb", "polars", "pyarrow", "great_expectations"} <= set(found["versions"])
    full = found["pipeline"]["full"]
    assert full["returncode"] == 0
    assert full["peak_rss_mb"] > 50  # a Python process with Dagster loaded: the sampler saw the tree
    assert full["wall_seconds"] > 0 and found["baseline"]["wall_seconds"] > 0
    steps = {s["step"]: s for s in full["steps"]}
    assert "publish__warehouse" in steps and all(s["seconds"] >= 0 for s in steps.values())
    assert "bronze/procedures" in {a for s in full["steps"] for a in s["assets"]}
    assert found["feeds_measured"]["procedures"]["rows_delivered"] == found["bronze_rows"]["procedures"] > 1800
    markdown = next((root / "results").glob("*.md")).read_text()
    assert "Pipeline / baseline wall time" in markdown
    # every measured part records the load before and after; a part started above 1.0 marks the result loaded
    assert {"baseline", "full", "nightly"} <= set(found["load"])
    for part in found["load"].values():
        assert len(part["load_before"]) == len(part["load_after"]) == 3
    loaded = [part for part, load in found["load"].items() if load["load_before"][0] > bench.QUIET_LOAD]
    assert found["loaded"] == sorted(loaded)
    assert ("LOADED" in markdown) == bool(loaded) and ("_LOADED" in files_of(root)) == bool(loaded)


def files_of(root: Path) -> str:
    return " ".join(p.name for p in (root / "results").iterdir())


def test_baseline_gold_equals_pipeline_gold(result: tuple[dict, Path]) -> None:
    found, _ = result
    comparison = found["gold_comparison"]
    assert "procedure_service_levels" in comparison
    if "dossiers" in found["feeds"]:
        assert {"public_service_kpis_monthly", "public_service_kpis_by_agency_monthly"} <= set(comparison)
    for table, entry in comparison.items():
        assert entry["equal"], (table, entry["mismatches"])
        assert entry["rows_pipeline"] == entry["rows_baseline"] > 0


def test_nightly_run_is_measured_when_dossiers_are_there(result: tuple[dict, Path]) -> None:
    found, _ = result
    if "dossiers" not in found["feeds"]:
        pytest.skip("the dossier feed is not in this checkout")
    held = found["delivery"]["nightly"]
    assert 0 < held["versions"] < held["versions_in_full_delivery"]
    nightly = found["pipeline"]["nightly"]
    assert nightly["returncode"] == 0 and nightly["steps"]


def test_memory_sampler_sums_the_whole_process_tree(tmp_path: Path) -> None:
    """A parent that starts two children, each holding ~100 MB: the peak counts all three."""
    script = tmp_path / "tree.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "if sys.argv[1:] == ['child']:\n"
        "    block = bytearray(100 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)\n"
        "else:\n"
        "    kids = [subprocess.Popen([sys.executable, __file__, 'child']) for _ in range(2)]\n"
        "    [k.wait() for k in kids]\n"
    )
    measured = measured_run([bench.PYTHON, str(script)])
    assert measured.returncode == 0
    assert measured.max_processes >= 3
    assert measured.peak_rss_mb > 200


def test_scale_out_scenario_measures_a_part_per_worker_count(tmp_path: Path) -> None:
    """`--scenario scale-out` on a tiny delivery of two dossier months, two workers: a part per worker count, each
    with a run per month whose partitioned step is named with its worker, a peak RSS per worker process, the
    speed-ups against the first part. (The part is the same code for one worker and for two: one part here; two
    workers show both in the step table. That the partitions really run side by side on both is
    tests/test_distributed.py's.)"""
    bench.main(
        ["--scenario", "scale-out", "--scale", "0.02", "--months", "2", "--workers", "2", "--quiet-wait", "0"]
        + ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "results")]
    )
    files = sorted((tmp_path / "results").glob("*_scale-out_S0.02*.json"))
    assert len(files) == 1, files
    found = json.loads(files[0].read_text())
    assert [p["workers"] for p in found["parts"]] == [2]
    for part in found["parts"]:
        assert sorted(part["worker_peak_rss_mb"]) == [f"worker-{n}" for n in range(part["workers"])]
        assert all(mb > 50 for mb in part["worker_peak_rss_mb"].values())  # Python with Dagster loaded, sampled
        runs = part["partition_runs"]
        # a partition is a month of a former province (the sample's one, 94)
        assert sorted(r["partitions"] for r in runs) == ["2022-01|94..2022-01|94", "2022-02|94..2022-02|94"]
        assert all(r["status"] == "SUCCESS" and len(r["steps"]) == 1 for r in runs)
        assert {s["worker"] for r in runs for s in r["steps"]} <= set(part["worker_peak_rss_mb"])
        assert 0 < part["partitioned_phase_seconds"] < part["wall_seconds"]
        # the province job's run per former province (the sample's one, 94): its bronze and snapshot-feed silver
        provinces = part["province_runs"]
        assert [(r["partitions"], r["status"]) for r in provinces] == [("94", "SUCCESS")]
        steps = {s["step"] for s in provinces[0]["steps"]}
        assert {"bronze__dossiers", "silver_procedures"} <= steps, steps
        assert {s["worker"] for s in provinces[0]["steps"]} <= set(part["worker_peak_rss_mb"])
        assert 0 < part["province_phase_seconds"] < part["wall_seconds"]
    # the first part is the reference
    assert found["speed_up"] == {"2": {"run": 1.0, "province_phase": 1.0, "partitioned_phase": 1.0}}
    assert all(len(p["load"]["load_before"]) == len(p["load"]["load_after"]) == 3 for p in found["parts"])
    markdown = files[0].with_suffix(".md").read_text()
    assert "| workers | cli run (s) | province phase (s) | partitioned phase (s)" in markdown
    assert ("LOADED" in markdown) == bool(found["loaded"])
