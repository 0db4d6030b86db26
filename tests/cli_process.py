"""`python -m ioc_pipeline.cli …` as a process of its own, without paying the interpreter's start each time.

A crash test kills a run with SIGKILL, then runs the next one: a dozen processes in one file, each of which
would spend about 7 s of CPU importing Great Expectations, Dagster and dlt before its first step. Here they are
forked from one server process per test worker (multiprocessing's *forkserver*) that imported those packages
once. Each child is a real process: its own pid, session and environment, stdout and stderr to a log file,
signals at their defaults, `cli.main` run as `python -m ioc_pipeline.cli` runs it, its exit code (or the signal
that killed it, negative, as `subprocess.Popen` reports it) returned.

What the server preloads must not read settings at import (they are the child's, given at its start):
`ioc_pipeline.cli` imports `definitions` only inside `run`, and third-party packages read none of ours.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

PRELOAD = ["ioc_pipeline.cli", "great_expectations", "dlt", "dagster", "polars", "duckdb", "pyarrow.parquet"]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)


def _main(args: list[str], env: dict[str, str], cwd: str, log: str) -> None:
    """The child: a session of its own (as `start_new_session`), the log as stdout and stderr, then the CLI."""
    os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.argv = ["python -m ioc_pipeline.cli", *args]
    from ioc_pipeline import cli

    cli.main(args)  # exits with the CLI's code (SystemExit: multiprocessing makes it the exit code)


class CliProcess:
    """The parts of `subprocess.Popen` the tests use: pid, poll, wait (with a timeout), send_signal."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.args = args
        self._process = _CONTEXT.Process(target=_main, args=(args, env, str(cwd), str(log)), daemon=False)
        self._process.start()
        self.pid: int = self._process.pid  # type: ignore[assignment]

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)
