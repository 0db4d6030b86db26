"""`python -m bench.run`: how fast and how lean the lakehouse is, against a bare DuckDB script.

    python -m bench.run --scale 1 [--feeds procedures,dossiers] [--skip-baseline] [--skip-api]
                        [--skip-nightly] [--regenerate] [--out bench/results] [--work bench/work]
    python -m bench.run --scenario scale-out --scale 3 --months 3 --provinces 92,93,94 [--workers 1,2]
                                                                                  (bench/scale_out.py)

One invocation, on one delivery (generated once per scale into `bench/work/S<scale>/landing`):
1. the bare-engine baseline (bench/baseline.sql through DuckDB, bench/baseline.py) over the landing files;
2. the full materialization through Dagster exactly as production runs it: `python -m ioc_pipeline.cli run`
   in a subprocess with its own DAGSTER_HOME and IOC_DATA_DIR (the in-process executor);
3. a nightly incremental run: the last 1 % of dossier versions (by NgayCapNhat), held back from the
   delivery, arrive as one more export file and the same command runs again;
4. the dossier API path: the dossier source (`ioc_pipeline.sources.dossiers.ingest`) against the local
   gateway server (`python -m ioc_pipeline.sample.gateway`), dossier versions per second.
Each measured process tree is sampled every 50 ms for its summed RSS (bench/measure.py). Wall time per
step comes from the Dagster instance's event log (STEP_START → STEP_SUCCESS). The gold tables of the
baseline and the pipeline are compared. Results: `bench/results/<UTC time>_S<scale>.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import measure

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BENCH_PII_KEY = "bench-pseudonym-key-not-secret-0001"
API_TOKEN = "bench-token"
PACKAGES = ["dagster", "dlt", "duckdb", "polars", "pyarrow", "great_expectations", "pandas", "vietnamadminunits"]
# feed (sample generator name) -> Dagster asset group
FEED_GROUPS = {"procedures": "procedures", "dossiers": "public_service", "telecom": "telecom", "postal": "postal"}
NIGHTLY_SHARE = 0.01
TARGETS = {
    "pipeline_vs_baseline_ratio_max": 5.0,
    "api_versions_per_second_min": 100_000,
    "peak_memory_mb_max_at_s10": 1536,
    "nightly_share_of_full_max": 0.10,
}
GOLD_TABLES = {  # gold table -> key columns for the comparison (agency compared by its folded form)
    "procedure_service_levels": ["dimension", "category"],
    "public_service_kpis_monthly": ["month"],
    "public_service_kpis_by_agency_monthly": ["month", "agency"],
}


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# the machine and the versions
# ------------------------------------------------------------------------------------------------


QUIET_LOAD = 1.0  # the 1-minute load average a part may start at on this 2-core machine


def wait_for_quiet(part: str, max_wait: float, poll: float = 5.0) -> dict:
    """Before a measured part: wait (bounded) for the 1-minute load to drop to QUIET_LOAD; say how it went.
    A part that had to start above it is `loaded`: its figures are kept but never quoted."""
    started = time.monotonic()
    load = os.getloadavg()
    while load[0] > QUIET_LOAD and time.monotonic() - started < max_wait:
        time.sleep(poll)
        load = os.getloadavg()
    waited = round(time.monotonic() - started, 1)
    loaded = load[0] > QUIET_LOAD
    log(f"{part}: load {load[0]:.2f} at start after {waited} s of waiting" + (" (LOADED)" if loaded else ""))
    return {"load_before": [round(x, 2) for x in load], "waited_seconds": waited, "loaded": loaded}


def part_done(quiet: dict) -> dict:
    return {**quiet, "load_after": [round(x, 2) for x in os.getloadavg()]}


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as handle:
        total_kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(total_kb / 2**20, 1),
        "cpu_model": model,
        "kernel": platform.release(),
        "load_average_at_start": list(os.getloadavg()),
    }


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        found["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ioc_pipeline"], cwd=REPO, capture_output=True)
        found["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        found["git_commit"] = None
    return found


# ------------------------------------------------------------------------------------------------
# the delivery
# ------------------------------------------------------------------------------------------------


def available_feeds() -> tuple[list[str], set[str]]:
    """Feeds the sample generator knows, and those it can scale."""
    from ioc_pipeline.sample import __main__ as sample

    return list(sample.FEEDS), set(getattr(sample, "SCALED", {}))


def generate(
    landing: Path,
    nightly: Path,
    feeds: list[str],
    scale: float,
    regenerate: bool,
    replicate_from: tuple[Path, int] | None = None,
) -> dict:
    """Write the delivery (once per parameters), then hold back the newest 1 % of dossier versions.
    With `replicate_from` (the S=1 work dir, a factor), the dossier export is S=1's replicated."""
    marker = landing / ".bench.json"
    params = {"feeds": feeds, "scale": scale}
    if marker.exists() and not regenerate and json.loads(marker.read_text())["params"] == params:
        log(f"reusing the delivery in {landing}")
        return json.loads(marker.read_text())
    for folder in (landing, nightly):
        shutil.rmtree(folder, ignore_errors=True)
    _, scaled = available_feeds()
    report: dict = {"params": params, "generation_seconds": {}}
    if replicate_from and "dossiers" in feeds and "dossiers" in scaled:
        from bench.scale_up import replicate

        base_work, factor = replicate_from
        base = generate(base_work / "landing", base_work / "nightly", feeds, 1.0, False)
        log(f"replicating the S=1 dossier export {factor}x into {landing}")
        started = time.monotonic()
        report["replicated"] = replicate(base_work / "landing", base_work / "nightly", landing, factor)
        report["generation_seconds"] = {
            **base["generation_seconds"],
            "replication": round(time.monotonic() - started, 1),
        }
    to_generate = [] if "replicated" in report else feeds  # replicated: every file is in place
    for feed in to_generate:
        command = [PYTHON, "-m", "ioc_pipeline.sample", "--out", str(landing), "--feeds", feed]
        if feed in scaled:
            command += ["--scale", str(scale)]
        log(f"generating {feed}: {' '.join(command[1:])}")
        started = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        report["generation_seconds"][feed] = round(time.monotonic() - started, 1)
    if "dossiers" in feeds:
        from bench.nightly import hold_back

        log("holding back the newest 1 % of dossier versions as the nightly delivery")
        report["nightly"] = hold_back(landing, nightly, NIGHTLY_SHARE)
    report["files"] = {str(p.relative_to(landing)): p.stat().st_size for p in sorted(landing.rglob("*")) if p.is_file()}
    report["files"].pop(".bench.json", None)
    report["bytes"] = sum(report["files"].values())
    marker.write_text(json.dumps(report, indent=1))
    return report


def units_reference(path: Path) -> None:
    """The official units of Sóc Trăng before the reform as a CSV (reference data the baseline joins):
    the folded name with its type (`phuong 1`, `huyen ke sach`) and, for communes, the district's."""
    import polars as pl

    from ioc_pipeline import parsing, units

    table = units.admin_units().filter(pl.col("era") == "pre_2025", pl.col("level") != "province")
    names = dict(table.select("unit_code", "unit_name").iter_rows())
    rows = [
        {
            "unit_code": code,
            "level": level,
            "name_key": parsing.fold(name),
            "district_key": parsing.fold(names[parent]) if level == "commune" and parent in names else "",
        }
        for code, name, level, parent in table.select("unit_code", "unit_name", "level", "parent_code").iter_rows()
    ]
    pl.DataFrame(rows).write_csv(path)


# ------------------------------------------------------------------------------------------------
# the pipeline through Dagster
# ------------------------------------------------------------------------------------------------


def pipeline_env(data: Path, landing: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOC_", "DAGSTER_"))}
    env.update(
        IOC_DATA_DIR=str(data),
        IOC_LANDING_DIR=str(landing),
        DAGSTER_HOME=str(data / "dagster_home"),
        IOC_PII_KEY=BENCH_PII_KEY,
        IOC_MODE="production",
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    env.update(extra or {})
    return env


def fresh_data_dir(data: Path, landing: Path) -> Path:
    """A clean data dir whose landing zone is a hard-linked copy of the delivery (the pipeline never
    writes there; the nightly file is added to this copy only)."""
    shutil.rmtree(data, ignore_errors=True)
    (data / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.local.yaml", data / "dagster_home" / "dagster.yaml")
    copy = data / "landing"
    subprocess.run(["cp", "-al", str(landing), str(copy)], check=True)
    (copy / ".bench.json").unlink(missing_ok=True)
    return copy


def run_pipeline(data: Path, landing: Path, label: str) -> tuple[measure.Measured, list[str]]:
    """`python -m ioc_pipeline.cli run`, measured; the ids of the Dagster runs it made."""
    before = set(dagster_run_ids(data))
    log(f"pipeline ({label}): python -m ioc_pipeline.cli run")
    measured = measure.run([PYTHON, "-m", "ioc_pipeline.cli", "run"], env=pipeline_env(data, landing), cwd=None)
    log(
        f"pipeline ({label}): exit {measured.returncode} in {measured.seconds:.1f} s, "
        f"peak {measured.peak_rss_mb:.0f} MB"
    )
    if measured.returncode != 0:
        sys.stderr.write(measured.stdout[-4000:] + measured.stderr[-8000:])
    return measured, [r for r in dagster_run_ids(data) if r not in before]


def _instance(data: Path):  # noqa: ANN202 - a DagsterInstance
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(data / "dagster_home")
    return dg.DagsterInstance.get()


def dagster_run_ids(data: Path) -> list[str]:
    if not (data / "dagster_home" / "history").exists() and not (data / "dagster_home" / "storage").exists():
        return []
    with _instance(data) as instance:
        return [run.run_id for run in instance.get_runs()]


def step_timings(data: Path, run_ids: list[str]) -> list[dict]:
    """Per step of each run: seconds from STEP_START to STEP_SUCCESS/FAILURE, and its assets."""
    import dagster as dg

    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        dg.DagsterEventType.RUN_START,
        dg.DagsterEventType.RUN_SUCCESS,
        dg.DagsterEventType.RUN_FAILURE,
    }
    steps: list[dict] = []
    with _instance(data) as instance:
        for run_id in run_ids:
            run = instance.get_run_by_id(run_id)
            label = run.job_name
            start = run.tags.get("dagster/asset_partition_range_start")
            if start:
                label += f"[{start}..{run.tags.get('dagster/asset_partition_range_end')}]"
            by_step: dict[str, dict] = {}
            for entry in instance.all_logs(run_id, of_type=kinds):
                event = entry.dagster_event
                if event is None or entry.step_key is None:
                    continue
                step = by_step.setdefault(entry.step_key, {"run": label, "step": entry.step_key, "assets": []})
                kind = event.event_type
                if kind == dg.DagsterEventType.STEP_START:
                    step["start"] = entry.timestamp
                elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                    step["end"] = entry.timestamp
                    step["status"] = "success" if kind == dg.DagsterEventType.STEP_SUCCESS else "failure"
                elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION and event.asset_key:
                    key = event.asset_key.to_user_string()
                    if key not in step["assets"]:
                        step["assets"].append(key)
            for step in by_step.values():
                if "start" in step and "end" in step:
                    step["seconds"] = round(step.pop("end") - step.pop("start"), 3)
                    steps.append(step)
    return steps


def asset_groups() -> dict[str, str]:
    from ioc_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}


def bronze_rows(data: Path) -> dict[str, int]:
    """Rows of every bronze table (what was delivered and loaded), from the Parquet footers."""
    import pyarrow.parquet as pq

    counts = {}
    for folder in sorted((data / "lake" / "bronze").glob("*")):
        if folder.is_dir() and not folder.name.startswith(("_", ".")):
            files = [p for p in folder.rglob("*.parquet")]
            counts[folder.name] = sum(pq.ParquetFile(p).metadata.num_rows for p in files)
    return counts


# ------------------------------------------------------------------------------------------------
# the baseline, the API path
# ------------------------------------------------------------------------------------------------


def run_baseline(landing: Path, out: Path, units_csv: Path, feeds: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [PYTHON, "-m", "bench.baseline", "--landing", str(landing), "--out", str(out), "--units", str(units_csv)]
    command += ["--feeds", ",".join(feeds)]
    log("baseline: python -m bench.baseline (DuckDB SQL)")
    measured = measure.run(command, cwd=None)
    if measured.returncode != 0:
        raise RuntimeError(f"the baseline failed:\n{measured.stderr[-4000:]}")
    report = json.loads(measured.stdout.strip().splitlines()[-1])
    log(f"baseline: {measured.seconds:.1f} s, peak {measured.peak_rss_mb:.0f} MB")
    return {**measured.summary(), **report}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api_landing(landing: Path, target: Path, max_versions: int) -> int:
    """A landing zone for the gateway server with the first month files, up to `max_versions` lines
    (the stand-in server keeps every version in memory)."""
    shutil.rmtree(target, ignore_errors=True)
    (target / "public_service").mkdir(parents=True)
    total = 0
    for path in sorted((landing / "public_service").glob("dossiers_*.ndjson")):
        with open(path, "rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b""))
        if total and total + lines > max_versions:
            break
        os.link(path, target / "public_service" / path.name)
        total += lines
    return total


def run_api_path(landing: Path, work: Path, max_versions: int, page_size: int) -> dict:
    served = work / "landing"
    lines = api_landing(landing, served, max_versions)
    port = _free_port()
    log(f"api: starting the gateway server over {lines:,} lines of export")
    server = subprocess.Popen(
        [PYTHON, "-m", "ioc_pipeline.sample.gateway", "--landing", str(served), "--port", str(port)]
        + ["--token", API_TOKEN],
        cwd=None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        banner = server.stdout.readline() if server.stdout else ""
        if "serving" not in banner:
            raise RuntimeError(
                f"the gateway server did not start: {banner}{server.stderr.read() if server.stderr else ''}"
            )
        server_rss, _ = measure.tree_rss(server.pid)
        command = [PYTHON, "-m", "bench.api_path", "--url", f"http://127.0.0.1:{port}", "--token", API_TOKEN]
        command += ["--work", str(work / "client"), "--page-size", str(page_size)]
        log(f"api: {' '.join(command[1:])}")
        measured = measure.run(command, env=pipeline_env(work, served), cwd=None)
        if measured.returncode != 0:
            raise RuntimeError(f"the API path failed:\n{measured.stderr[-4000:]}")
        report = json.loads(measured.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    log(f"api: {report['versions']:,} versions in {report['seconds']:.1f} s = {report['versions_per_second']:,.0f}/s")
    return {**measured.summary(), **report, "served_lines": lines, "server_rss_mb": round(server_rss / 2**20, 1)}


# ------------------------------------------------------------------------------------------------
# comparing gold
# ------------------------------------------------------------------------------------------------


def compare_gold(lake: Path, baseline: Path) -> dict:
    """Each gold table the baseline computed against the pipeline's, row by row on its keys."""
    import polars as pl

    from ioc_pipeline import parsing

    found = {}
    for table, keys in GOLD_TABLES.items():
        ours = sorted((lake / "gold" / table).rglob("*.parquet"))
        theirs = baseline / f"gold_{table}.parquet"
        if not ours or not theirs.exists():
            continue
        pipeline = pl.read_parquet(ours)
        base = pl.read_parquet(theirs)
        if "agency" in keys:
            pipeline = pipeline.with_columns(parsing.folded(pl.col("agency")).alias("agency"))
        columns = [c for c in pipeline.columns if c in base.columns]
        joined = pipeline.select(columns).join(
            base.select(columns), on=keys, how="full", suffix="_baseline", coalesce=True, nulls_equal=True
        )
        mismatches = []
        for column in (c for c in columns if c not in keys):
            left, right = pl.col(column), pl.col(f"{column}_baseline")
            dtype = pipeline.schema[column]
            if dtype.is_float():
                differs = ((left - right).abs() > 1e-9 * (left.abs() + 1)) | (left.is_null() != right.is_null())
            elif isinstance(dtype, pl.Datetime):
                differs = left.dt.epoch("us").ne_missing(right.cast(dtype).dt.epoch("us"))
            else:
                differs = left.cast(pl.String).ne_missing(right.cast(pl.String))
            bad = joined.filter(differs)
            if bad.height:
                example = bad.select([*keys, column, f"{column}_baseline"]).head(3).to_dicts()
                mismatches.append({"column": column, "rows": bad.height, "examples": example})
        found[table] = {
            "rows_pipeline": pipeline.height,
            "rows_baseline": base.height,
            "columns_compared": len(columns),
            "equal": not mismatches and pipeline.height == base.height,
            "mismatches": json.loads(json.dumps(mismatches, default=str)),
        }
    return found


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------


def per_feed(steps: list[dict], groups: dict[str, str], rows: dict[str, int], feeds: list[str], baseline: dict) -> dict:
    out = {}
    for feed in feeds:
        group = FEED_GROUPS.get(feed, feed)
        seconds = sum(s["seconds"] for s in steps if any(groups.get(a) == group for a in s["assets"]))
        tables = sorted({a.split("/", 1)[1] for a, g in groups.items() if g == group and a.startswith("bronze/")})
        delivered = sum(rows.get(t, 0) for t in tables)
        entry = {
            "bronze_tables": tables,
            "rows_delivered": delivered,
            "pipeline_seconds": round(seconds, 2),
            "pipeline_rows_per_second": round(delivered / seconds) if seconds else None,
        }
        section = (baseline.get("sections") or {}).get(feed)
        if section:
            entry["baseline_seconds"] = section["seconds"]
            entry["baseline_rows_per_second"] = round(delivered / section["seconds"]) if section["seconds"] else None
        out[feed] = entry
    return out


def targets(result: dict) -> dict:
    checks = {}
    ratio = result.get("ratio_pipeline_to_baseline")
    if ratio is not None:
        checks["pipeline_at_most_5x_baseline"] = {
            "value": ratio,
            "met": ratio <= TARGETS["pipeline_vs_baseline_ratio_max"],
        }
    api = result.get("api")
    if api:
        rate = api["versions_per_second"]
        checks["api_at_least_100k_versions_per_s"] = {
            "value": rate,
            "met": rate >= TARGETS["api_versions_per_second_min"],
        }
    peak = result["pipeline"]["full"]["peak_rss_mb"]
    checks["peak_memory_under_1.5_GB" + ("" if result["scale"] >= 10 else " (the target is for S=10)")] = {
        "value": peak,
        "met": peak < TARGETS["peak_memory_mb_max_at_s10"],
    }
    nightly = result["pipeline"].get("nightly")
    if nightly:
        share = nightly["wall_seconds"] / result["pipeline"]["full"]["wall_seconds"]
        checks["nightly_under_10pct_of_full"] = {
            "value": round(share, 3),
            "met": share < TARGETS["nightly_share_of_full_max"],
        }
    return checks


def save(result: dict, stem: Path, render: Callable[[dict], str]) -> dict:
    """Write a result as `<stem>.json` and `<stem>.md` (its rendering), and print the markdown."""
    stem.with_name(f"{stem.name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    stem.with_name(f"{stem.name}.md").write_text(render(result))
    log(f"wrote {stem}.json and .md")
    print(render(result))
    return result


def markdown(result: dict) -> str:
    full = result["pipeline"]["full"]
    loaded = result.get("loaded") or []
    lines = [
        f"# Benchmark {result['started_at']} — scale {result['scale']}"
        + (f" — {result['label']}" if result.get("label") else ""),
        "",
        *(
            [
                f"**LOADED: {', '.join(loaded)} started with a 1-minute load above {QUIET_LOAD}; "
                "these figures are kept for the record and are not to be quoted.**",
                "",
            ]
            if loaded
            else []
        ),
        "Load average (1 min) at the start / end of each part: "
        + ", ".join(
            f"{part} {load['load_before'][0]:.2f} / {load['load_after'][0]:.2f}"
            for part, load in (result.get("load") or {}).items()
        ),
        "",
        f"Machine: {result['machine']['cores']} cores, {result['machine']['memory_gb']} GB, "
        f"{result['machine']['cpu_model']}; load average at start "
        f"{result['machine']['load_average_at_start'][0]:.1f}, "
        f"at end {result['machine']['load_average_at_end'][0]:.1f} "
        "(other sessions share this machine). "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if k not in ("git_dirty",)),
        "",
        f"Delivery: feeds {', '.join(result['feeds'])}; {result['delivery']['bytes'] / 2**20:,.1f} MB in "
        f"{len(result['delivery']['files'])} files.",
        "",
        "| | wall time (s) | peak RSS of the process tree (MB) |",
        "|---|---:|---:|",
        f"| pipeline, full run (`python -m ioc_pipeline.cli run`) | {full['wall_seconds']:.1f} "
        f"| {full['peak_rss_mb']:.0f} |",
    ]
    nightly = result["pipeline"].get("nightly")
    if nightly:
        lines.append(
            f"| pipeline, nightly run (+{result['delivery']['nightly']['versions']:,} versions, 1 %) "
            f"| {nightly['wall_seconds']:.1f} | {nightly['peak_rss_mb']:.0f} |"
        )
    base = result.get("baseline")
    if base:
        lines.append(f"| baseline (DuckDB SQL, same files) | {base['wall_seconds']:.1f} | {base['peak_rss_mb']:.0f} |")
        lines += ["", f"**Pipeline / baseline wall time: {result['ratio_pipeline_to_baseline']:.2f}×**"]
    api = result.get("api")
    if api:
        lines += [
            "",
            f"**Dossier API path:** {api['versions']:,} versions through the dossier source from the local gateway "
            f"in {api['seconds']:.2f} s = **{api['versions_per_second']:,.0f} versions/s** "
            f"(page size {api['page_size']:,}, {api['pages']} pages; client peak {api['peak_rss_mb']:.0f} MB).",
        ]
    lines += [
        "",
        "## Per feed",
        "",
        "| feed | rows delivered | pipeline s | pipeline rows/s | baseline s | baseline rows/s |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for feed, entry in result["feeds_measured"].items():
        lines.append(
            f"| {feed} | {entry['rows_delivered']:,} | {entry['pipeline_seconds']:.1f} | "
            f"{entry['pipeline_rows_per_second'] or 0:,} | {entry.get('baseline_seconds', '-')} | "
            f"{entry.get('baseline_rows_per_second') or '-':,} |"
            if entry.get("baseline_rows_per_second")
            else f"| {feed} | {entry['rows_delivered']:,} | {entry['pipeline_seconds']:.1f} | "
            f"{entry['pipeline_rows_per_second'] or 0:,} | - | - |"
        )
    lines += ["", "## Steps of the full run (Dagster event log)", "", "| run | step | assets | seconds |"]
    lines.append("|---|---|---|---:|")
    for step in sorted(full["steps"], key=lambda s: -s["seconds"]):
        lines.append(f"| {step['run']} | {step['step']} | {', '.join(step['assets'])} | {step['seconds']:.2f} |")
    lines.append(
        "| | *outside steps (interpreter, imports, Dagster start, run bookkeeping)* | | "
        f"{full['outside_steps_seconds']:.2f} |"
    )
    if nightly:
        lines += ["", "## Steps of the nightly run", "", "| run | step | seconds |", "|---|---|---:|"]
        for step in sorted(nightly["steps"], key=lambda s: -s["seconds"]):
            lines.append(f"| {step['run']} | {step['step']} | {step['seconds']:.2f} |")
        lines.append(f"| | *outside steps* | {nightly['outside_steps_seconds']:.2f} |")
    if result.get("gold_comparison"):
        lines += ["", "## Gold: baseline against pipeline", "", "| table | rows (pipeline / baseline) | equal |"]
        lines.append("|---|---|---|")
        for table, entry in result["gold_comparison"].items():
            differing = ", ".join(f"{m['column']} ({m['rows']} rows)" for m in entry["mismatches"])
            lines.append(
                f"| {table} | {entry['rows_pipeline']} / {entry['rows_baseline']} | "
                f"{'yes' if entry['equal'] else 'no: ' + differing} |"
            )
    if base:
        lines += ["", "The baseline leaves out: " + "; ".join(base["leaves_out"]) + "."]
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---:|---|"]
    for name, check in result["targets"].items():
        lines.append(f"| {name} | {check['value']} | {'yes' if check['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    known, _ = available_feeds()
    parser.add_argument("--scale", type=float, default=1.0, help="about S million dossier versions a year")
    parser.add_argument("--feeds", default=",".join(known), help=f"comma-separated, of: {', '.join(known)}")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-api", action="store_true", help="skip the dossier API path")
    parser.add_argument("--skip-nightly", action="store_true", help="skip the nightly incremental run")
    parser.add_argument("--regenerate", action="store_true", help="write the delivery again even if present")
    parser.add_argument(
        "--generate-large",
        action="store_true",
        help="for S > 1, run the generator at S (slow: ~4k versions/s) instead of replicating S=1's export",
    )
    parser.add_argument("--api-max-versions", type=int, default=2_000_000, help="versions the gateway serves")
    parser.add_argument(
        "--api-page-size",
        type=int,
        default=20000,
        help="page size asked of the gateway (the production default, IOC_DOSSIER_API_PAGE_SIZE)",
    )
    parser.add_argument("--label", default="", help="a note stored with the result")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=600,
        help=f"seconds to wait before each measured part for the 1-minute load to drop to {QUIET_LOAD} "
        "(a part started above it is marked loaded)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    parser.add_argument(
        "--scenario",
        choices=["full", "scale-out"],
        default="full",
        help="full: the steps above; scale-out: the partitioned work on 1 vs 2 Dask workers (bench/scale_out.py)",
    )
    parser.add_argument("--months", type=int, default=3, help="scale-out: months of dossiers (the partitions)")
    parser.add_argument("--workers", default="1,2", help="scale-out: worker counts to compare")
    parser.add_argument("--provinces", default="", help="scale-out: former provinces (92,93,94), S each")
    args = parser.parse_args(argv)
    if args.scenario == "scale-out":
        from bench import scale_out

        return scale_out.main(
            [
                f"--scale={args.scale:g}",
                f"--months={args.months}",
                f"--workers={args.workers}",
                f"--provinces={args.provinces}",
                f"--quiet-wait={args.quiet_wait:g}",
                f"--out={args.out}",
                f"--work={args.work}",
            ]
        )
    feeds = [f for f in args.feeds.split(",") if f]
    unknown = [f for f in feeds if f not in known]
    if unknown:
        parser.error(f"unknown feed(s) {', '.join(unknown)}; this checkout has {', '.join(known)}")
    started = datetime.now(UTC)
    work = (args.work / f"S{args.scale:g}").resolve()
    landing, nightly_landing = work / "landing", work / "nightly"
    result: dict = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scale": args.scale,
        "feeds": feeds,
        "label": args.label or ("procedure catalog only" if feeds == ["procedures"] else ""),
        "machine": machine(),
        "versions": versions(),
        "targets_set": TARGETS,
    }
    replicate_from = None
    if args.scale > 1 and args.scale == int(args.scale) and not args.generate_large:
        replicate_from = ((args.work / "S1").resolve(), int(args.scale))
    progress = work / "result-in-progress.json"

    def checkpoint() -> None:
        """What is measured so far, in the work dir: a long run that is stopped keeps its figures."""
        progress.write_text(json.dumps(result, indent=1, default=str) + "\n")

    result["delivery"] = generate(landing, nightly_landing, feeds, args.scale, args.regenerate, replicate_from)
    result["load"] = {}
    if not args.skip_baseline:
        units_csv = work / "units_reference.csv"
        units_reference(units_csv)
        quiet = wait_for_quiet("baseline", args.quiet_wait)
        result["baseline"] = run_baseline(landing, work / "baseline", units_csv, feeds)
        result["load"]["baseline"] = part_done(quiet)
        checkpoint()
    data = work / "pipeline"
    pipeline_landing = fresh_data_dir(data, landing)
    quiet = wait_for_quiet("full run", args.quiet_wait)
    full, run_ids = run_pipeline(data, pipeline_landing, "full")
    result["load"]["full"] = part_done(quiet)
    if full.returncode != 0:
        raise SystemExit("the full pipeline run failed (see above)")
    groups = asset_groups()
    steps = step_timings(data, run_ids)
    result["pipeline"] = {
        "full": {
            **full.summary(),
            "dagster_runs": len(run_ids),
            "steps": steps,
            "outside_steps_seconds": round(full.seconds - sum(s["seconds"] for s in steps), 2),
        }
    }
    rows = bronze_rows(data)
    result["bronze_rows"] = rows
    if not args.skip_baseline:
        result["ratio_pipeline_to_baseline"] = round(full.seconds / result["baseline"]["wall_seconds"], 2)
        result["gold_comparison"] = compare_gold(data / "lake", work / "baseline")
    result["feeds_measured"] = per_feed(steps, groups, rows, feeds, result.get("baseline", {}))
    checkpoint()
    held_back = result["delivery"].get("nightly")
    if held_back and not args.skip_nightly:
        target = pipeline_landing / held_back["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(nightly_landing / held_back["file"], target)
        quiet = wait_for_quiet("nightly run", args.quiet_wait)
        measured, nightly_ids = run_pipeline(data, pipeline_landing, "nightly")
        result["load"]["nightly"] = part_done(quiet)
        if measured.returncode != 0:
            raise SystemExit("the nightly pipeline run failed (see above)")
        nightly_steps = step_timings(data, nightly_ids)
        result["pipeline"]["nightly"] = {
            **measured.summary(),
            "dagster_runs": len(nightly_ids),
            "steps": nightly_steps,
            "outside_steps_seconds": round(measured.seconds - sum(s["seconds"] for s in nightly_steps), 2),
            "share_of_full": round(measured.seconds / full.seconds, 3),
        }
        checkpoint()
    if "dossiers" in feeds and not args.skip_api:
        quiet = wait_for_quiet("API path", args.quiet_wait)
        result["api"] = run_api_path(landing, work / "api", args.api_max_versions, args.api_page_size)
        result["load"]["api"] = part_done(quiet)
    result["loaded"] = sorted(part for part, load in result["load"].items() if load["loaded"])
    result["targets"] = targets(result)
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    result["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = (
        f"{started:%Y%m%dT%H%M%SZ}_S{args.scale:g}"
        + ("_procedures-only" if feeds == ["procedures"] else "")
        + ("_LOADED" if result["loaded"] else "")
    )
    return save(result, args.out / stem, markdown)


if __name__ == "__main__":
    main()
