"""`python -m bench.run --scenario scale-out` (or `python -m bench.scale_out`): the partitioned work on a Dask
cluster of one worker process against two, the lake in a bucket of the local S3 server (moto, 127.0.0.1).

    python -m bench.scale_out --scale 0.2 --months 3 [--provinces 92,93,94] [--workers 1,2] [--out bench/results]

One delivery (`python -m ioc_pipeline.sample --scale S --months M`: the dossiers scaled, the other feeds the
sample's; with `--provinces`, each former province's delivery at that scale under `<landing>/<code>/`, run with
`IOC_PROVINCES`), then for each worker count a fresh data dir, a fresh lake prefix and a fresh cluster
(`ioc_pipeline.sample.cluster`: `dask scheduler` and N × `dask worker`, one thread each), and
`IOC_EXECUTOR=dask python -m ioc_pipeline.cli run` measured: the run's wall time, the partitioned phase's wall
time (first partition run's start to the last one's end, from the Dagster instance), each partition's step
seconds, and the peak RSS of each worker process (sampled every 50 ms, bench/measure.py). Which runs are
partitioned is read from the definitions (`PARTITIONED_FEEDS`: their jobs, their partitions), so province
partitions are measured the day they exist. Before each measured part the bench's load guard waits for a
quiet machine (bench/run.py `wait_for_quiet`); a part started loaded is marked so.
Results: `bench/results/<UTC time>_scale-out_S<scale>.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import measure
from bench.run import (
    PYTHON,
    QUIET_LOAD,
    REPO,
    _instance,
    log,
    machine,
    part_done,
    pipeline_env,
    save,
    versions,
    wait_for_quiet,
)

BUCKET = "ioc-bench"


def generate(landing: Path, scale: float, months: int, provinces: list[str] | None = None) -> dict:
    """The delivery, once per parameters."""
    marker = landing / ".scale-out.json"
    params = {"scale": scale, "months": months} | ({"provinces": provinces} if provinces else {})
    if marker.exists() and json.loads(marker.read_text())["params"] == params:
        log(f"reusing the delivery in {landing}")
        return json.loads(marker.read_text())
    shutil.rmtree(landing, ignore_errors=True)
    command = [
        PYTHON,
        "-m",
        "ioc_pipeline.sample",
        "--out",
        str(landing),
        "--scale",
        str(scale),
        "--months",
        str(months),
    ] + (["--province", ",".join(provinces)] if provinces else [])
    log(f"generating: {' '.join(command[1:])}")
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    files = {str(p.relative_to(landing)): p.stat().st_size for p in sorted(landing.rglob("*")) if p.is_file()}
    report = {
        "params": params,
        "generation_seconds": round(time.monotonic() - started, 1),
        "bytes": sum(files.values()),
    }
    marker.write_text(json.dumps(report, indent=1))
    return report


class PeakRss:
    """Samples the RSS of each of some processes (and their children) until stopped; the peak of each."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.pids, self.interval = pids, interval
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], measure.tree_rss(pid)[0])
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mb(self) -> dict[str, float]:
        return {name: round(peak / 2**20, 1) for name, peak in self.peaks.items()}


def _partitioned_steps(instance, run_id: str, assets: set[str]) -> list[dict]:  # noqa: ANN001 - a DagsterInstance
    """The steps of a run that materialized some of `assets`: pid, seconds."""
    import dagster as dg

    steps: dict[str, dict] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        step = steps.setdefault(event.step_key, {"assets": set()})
        if event.event_type == dg.DagsterEventType.STEP_START:
            step["start"], step["pid"] = entry.timestamp, event.pid
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            step["end"] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION and event.asset_key:
            step["assets"].add(event.asset_key.to_python_identifier())
    return [
        {"step": key, "pid": s.get("pid"), "seconds": round(s["end"] - s["start"], 3)}
        for key, s in steps.items()
        if "start" in s and "end" in s and s["assets"] & assets  # the steps that materialized them
    ]


def partitioned_runs(data: Path) -> dict[str, list[dict]]:
    """The runs of the partitioned jobs (from the definitions) and their partitioned steps: start, end, seconds.
    `months`: the month ranges of the partitioned feeds (dossier months × province); `provinces`: a run per former
    province of the province job (each province's bronze and silver of the snapshot feeds, its dossier bronze)."""
    from ioc_pipeline.cli import PARTITION_TAG, PROVINCE_PARTITIONS, PROVINCES_JOB
    from ioc_pipeline.definitions import PARTITIONED_FEEDS, defs

    month_jobs = {feed.job_name for feed in PARTITIONED_FEEDS}
    graph = defs.resolve_asset_graph()
    by_month = {key.to_python_identifier() for feed in PARTITIONED_FEEDS for key in feed.assets.resolve(graph)}
    by_province = {
        key.to_python_identifier()
        for key in graph.get_all_asset_keys()
        if isinstance(graph.get(key).partitions_def, PROVINCE_PARTITIONS)
    }
    found: dict[str, list[dict]] = {"months": [], "provinces": []}
    with _instance(data) as instance:
        for run in instance.get_runs():
            start = run.tags.get("dagster/asset_partition_range_start")
            if run.job_name in month_jobs and start is not None:
                end = run.tags.get("dagster/asset_partition_range_end")
                kind, partitions, assets = "months", f"{start}..{end}", by_month
            elif run.job_name == PROVINCES_JOB and PARTITION_TAG in run.tags:
                kind, partitions, assets = "provinces", run.tags[PARTITION_TAG], by_province
            else:
                continue
            stats = instance.get_run_stats(run.run_id)
            found[kind].append(
                {
                    "job": run.job_name,
                    "partitions": partitions,
                    "status": run.status.value,
                    "start": stats.start_time,
                    "end": stats.end_time,
                    "steps": _partitioned_steps(instance, run.run_id, assets),
                }
            )
    return {kind: sorted(runs, key=lambda r: r["start"] or 0) for kind, runs in found.items()}


def _phase(runs: list[dict], pids: dict[int, str]) -> tuple[float | None, list[dict]]:
    """The phase's wall seconds (first run's start to the last one's end) and the runs, steps named by worker."""
    for run in runs:
        for step in run["steps"]:
            step["worker"] = pids.get(step.pop("pid"), "?")
    starts = [r["start"] for r in runs if r["start"]]
    ends = [r["end"] for r in runs if r["end"]]
    listed = [
        {k: v for k, v in r.items() if k not in ("start", "end")}
        | {"run_seconds": round(r["end"] - r["start"], 2) if r["start"] and r["end"] else None}
        for r in runs
    ]
    return (round(max(ends) - min(starts), 2) if starts and ends else None), listed


def run_with_workers(
    workers: int, landing: Path, work: Path, aws: dict[str, str], quiet_wait: float, provinces: list[str] | None = None
) -> dict:
    from ioc_pipeline.sample.cluster import local_cluster

    data = work / f"workers-{workers}"
    shutil.rmtree(data, ignore_errors=True)
    (data / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.local.yaml", data / "dagster_home" / "dagster.yaml")
    lake = {"IOC_LAKE_DIR": f"s3://{BUCKET}/{work.name}/workers-{workers}"}
    env = pipeline_env(data, landing, aws | lake | ({"IOC_PROVINCES": ",".join(provinces)} if provinces else {}))
    with local_cluster(env, data / "dask-logs", cwd=data, workers=workers) as cluster:
        env = {**env, "IOC_EXECUTOR": "dask", "IOC_DASK_SCHEDULER": cluster.address}
        quiet = wait_for_quiet(f"{workers} worker(s)", quiet_wait)
        log(f"{workers} worker(s): IOC_EXECUTOR=dask python -m ioc_pipeline.cli run")
        with PeakRss(cluster.workers) as rss:
            measured = measure.run([PYTHON, "-m", "ioc_pipeline.cli", "run"], env=env, cwd=data)
        load = part_done(quiet)
        pids = {pid: name for name, pid in cluster.workers.items()}
    log(f"{workers} worker(s): exit {measured.returncode} in {measured.seconds:.1f} s")
    if measured.returncode != 0:
        sys.stderr.write(measured.stdout[-4000:] + measured.stderr[-8000:])
        raise SystemExit(f"the run on {workers} worker(s) failed (see above)")
    runs = partitioned_runs(data)
    month_phase, month_runs = _phase(runs["months"], pids)
    province_phase, province_runs = _phase(runs["provinces"], pids)
    return {
        "workers": workers,
        "wall_seconds": round(measured.seconds, 2),
        "orchestrator_peak_rss_mb": round(measured.peak_rss_mb, 1),  # cli run and the runs' processes it spawns
        "worker_peak_rss_mb": rss.mb(),
        "partitioned_phase_seconds": month_phase,
        "partition_runs": month_runs,
        "province_phase_seconds": province_phase,
        "province_runs": province_runs,
        "load": load,
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Scale-out: S={result['scale']:g}, {result['months']} month(s)"
        + (f", former provinces {', '.join(result['provinces'])} (S each)" if result.get("provinces") else "")
        + ", lake on the local S3 server",
        "",
        f"{result['started_at']}, {result['machine']['cores']} cores ({result['machine']['cpu_model']}), "
        f"commit {result['versions'].get('git_commit')}" + (" (LOADED: not to be quoted)" if result["loaded"] else ""),
        "",
        "| workers | cli run (s) | province phase (s) | partitioned phase (s) | speed-up (run) "
        "| speed-up (provinces) | speed-up (partitions) | peak RSS per worker (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for part in result["parts"]:
        speed = result["speed_up"].get(str(part["workers"]), {})
        lines.append(
            f"| {part['workers']} | {part['wall_seconds']} | {part.get('province_phase_seconds')} | "
            f"{part['partitioned_phase_seconds']} | {speed.get('run', '-')} | {speed.get('province_phase', '-')} | "
            f"{speed.get('partitioned_phase', '-')} | "
            + ", ".join(f"{n} {mb}" for n, mb in part["worker_peak_rss_mb"].items())
            + " |"
        )
    lines += ["", "Per partition (the partitioned steps' seconds, and the worker that ran each):", ""]
    lines += ["| workers | partitions | step | worker | seconds |", "|---|---|---|---|---|"]
    for part in result["parts"]:
        for run in part.get("province_runs", []) + part["partition_runs"]:
            for step in run["steps"]:
                cells = [part["workers"], run["partitions"], step["step"], step["worker"], step["seconds"]]
                lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", result["note"], ""]
    return "\n".join(lines)


NOTE = (
    "On this 2-core machine two workers share two cores with the run's own process, the scheduler and the S3 "
    "server, so the speed-up is bounded by the cores (at most 2, less the serial parts: the upstream run, "
    "the downstream run, each run's start). On a cluster each worker machine brings its cores: the partitioned "
    "phase divides by the number of workers as long as there are more partitions than workers and the lake's "
    "object store keeps up; the serial parts stay."
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.2, help="about S million dossier versions a year")
    parser.add_argument("--months", type=int, default=3, help="months of dossiers from January 2022 (partitions)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, comma-separated")
    parser.add_argument("--provinces", default="", help="former provinces (92,93,94), each delivering S: IOC_PROVINCES")
    parser.add_argument("--quiet-wait", type=float, default=600, help=f"seconds to wait for load {QUIET_LOAD}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    args = parser.parse_args(argv)
    from ioc_pipeline.sample.s3 import bucket_client, local_s3

    started = datetime.now(UTC)
    provinces = [c.strip() for c in args.provinces.split(",") if c.strip()]
    work = (args.work / (f"scale-out-S{args.scale:g}-M{args.months}" + "".join(f"-{c}" for c in provinces))).resolve()
    landing = work / "landing"
    result: dict = {
        "scenario": "scale-out",
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scale": args.scale,
        "months": args.months,
        "provinces": provinces,
        "machine": machine(),
        "versions": versions(),
        "delivery": generate(landing, args.scale, args.months, provinces),
        "parts": [],
        "note": NOTE,
    }
    work.mkdir(parents=True, exist_ok=True)
    with local_s3(work / "moto.log") as aws:
        bucket_client(aws).mkdir(BUCKET)
        for count in [int(n) for n in args.workers.split(",") if n]:
            result["parts"].append(run_with_workers(count, landing, work, aws, args.quiet_wait, provinces))
    base = result["parts"][0]
    result["speed_up"] = {
        str(p["workers"]): {
            "run": round(base["wall_seconds"] / p["wall_seconds"], 2),
            **{
                phase: round(base[f"{phase}_seconds"] / p[f"{phase}_seconds"], 2)
                if base[f"{phase}_seconds"] and p[f"{phase}_seconds"]
                else None
                for phase in ("province_phase", "partitioned_phase")
            },
        }
        for p in result["parts"]
    }
    result["loaded"] = [p["workers"] for p in result["parts"] if p["load"]["loaded"]]
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    result["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y%m%dT%H%M%SZ}_scale-out_S{args.scale:g}" + "".join(f"-{c}" for c in provinces)
    stem += "_LOADED" if result["loaded"] else ""
    return save(result, args.out / stem, markdown)


if __name__ == "__main__":
    main()
