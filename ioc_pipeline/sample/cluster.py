"""A local Dask cluster of separate processes for the tests and the bench: `dask scheduler` and `dask worker`
(the CLIs production runs, see README "Running on a Dask cluster") on 127.0.0.1.

    with local_cluster(env, logs, cwd, workers=2) as cluster:   # cluster.address: tcp://127.0.0.1:<port>
        … IOC_EXECUTOR=dask IOC_DASK_SCHEDULER=<cluster.address> python -m ioc_pipeline.cli run …

Each worker is one process with one thread and no nanny (the process started is the worker: its pid is the pid
Dagster's step events carry); the first has the warehouse resource (`--resources warehouse=1`). Dev and tests only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ioc_pipeline.sample.s3 import free_port, wait_for_port

WAREHOUSE_WORKER = "worker-0"


@dataclass
class Cluster:
    address: str
    workers: dict[str, int]  # name -> pid of the worker process
    logs: Path

    def log_text(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-tail:]}" for p in sorted(self.logs.glob("*.log")))


@contextmanager
def local_cluster(
    env: dict[str, str], logs: Path, cwd: Path, workers: int = 2, timeout: float = 120
) -> Iterator[Cluster]:
    """The scheduler and `workers` worker processes until the block ends (then SIGTERM, SIGKILL after 30 s)."""
    from dask.distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    quiet = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]  # its HTTP status port on loopback too
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        started: list[subprocess.Popen] = []

        def start(name: str, *args: str) -> subprocess.Popen:
            out = stack.enter_context(open(logs / f"{name}.log", "wb"))
            process = subprocess.Popen([*dask, *args], env=env, cwd=cwd, stdout=out, stderr=out)
            started.append(process)
            return process

        try:
            scheduler = start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), *quiet)
            wait_for_port(port, scheduler, logs / "scheduler.log", timeout)
            pids = {}
            for number in range(workers):
                name = f"worker-{number}"
                extra = ["--resources", "warehouse=1"] if name == WAREHOUSE_WORKER else []
                worker = start(
                    name, "worker", address, "--name", name, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                    "--local-directory", str(logs / name), *quiet, *extra,
                )  # fmt: skip
                pids[name] = worker.pid
            with Client(address, timeout=timeout) as client:
                client.wait_for_workers(workers, timeout=timeout)
                found = sorted(client.run(os.getpid).values())
                if found != sorted(pids.values()):
                    raise RuntimeError(f"the workers' pids {found} are not the processes started {pids}")
            yield Cluster(address, pids, logs)
        finally:
            for process in reversed(started):
                process.terminate()
            for process in reversed(started):
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
