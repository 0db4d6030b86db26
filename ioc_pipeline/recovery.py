"""Crash recovery: nothing a dead run leaves behind may block, slow or change a later run.

    kill -9, power cut, OOM ──► the run stays STARTED, its pool slots stay claimed, temp files stay
    next `cli run` ──recover(instance)──► runs of dead processes marked failed, their slots freed,
                                          slots still held by finished runs freed, temp files of dead
                                          writers removed (lake `.*.tmp`, warehouse `.building`/`.wal`)
    make dev ──`dead_runs` sensor (30 s) + dagster.yaml `run_monitoring`──► the same, without a person
    SIGTERM / SIGINT to `cli run` ──stop_on_signals──► its runs canceled, their slots freed, exit at once

A run's process is known by the tags `run_tags()` puts on it (`ioc/pid`, `ioc/host`, `ioc/pid_started`)
or else by the pid Dagster records in the run's engine events ("Executing steps in process (pid: …)";
a run launched by the daemon: "Started process for run (pid: …)"). An untagged run is judged only by an
instance whose storage is a local SQLite file (its runs ran on this machine); a pid whose process started
after the run did was recycled, so the run's own process is dead. A run whose process is unknown is left
to Dagster's run monitoring. What dlt leaves behind is handled where dlt runs (`sources/files.py`).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._utils.interrupts import check_captured_interrupt

from ioc_pipeline import warehouse

PID_TAG, HOST_TAG, STARTED_TAG = "ioc/pid", "ioc/host", "ioc/pid_started"
HOST = socket.gethostname()
# Statuses of a run that has (or had) a process: judged when that process is known and dead.
JUDGED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
CLOCK_SLACK_SECONDS = 2.0  # /proc start times are in clock ticks; run timestamps come from another clock call
WATCH_SECONDS = 0.1  # how often the stop watcher looks at Dagster's captured-interrupt flag
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_DEADLINE_SECONDS = 5.0  # the longest a stop may spend recording its runs before the process exits anyway
TEMP_PATTERNS = (".*.tmp",)  # Lake.write's files beside their target before the rename


def run_tags() -> dict[str, str]:
    """Tags that name the process launching a run, so a later run can tell whether it died."""
    started = process_started(os.getpid())
    return {PID_TAG: str(os.getpid()), HOST_TAG: HOST, **({STARTED_TAG: f"{started:.2f}"} if started else {})}


# --------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def process_started(pid: int) -> float | None:
    """When process `pid` started (epoch seconds, from Linux /proc); None when it is gone, a zombie,
    or the system has no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    boot = _boot_time()
    if fields[0] in ("Z", "X") or boot is None:
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def alive(pid: int, started: float | None = None, started_by: float | None = None) -> bool:
    """Whether process `pid` lives and is the one meant: started at `started` (a tag), or already
    running at `started_by` (the run's start). A later start means the pid was recycled."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    if not Path("/proc/self/stat").exists():
        return True  # no /proc: existence is all that can be known
    actual = process_started(pid)
    if actual is None:
        return False  # a zombie: it has ended
    if started is not None:
        return abs(actual - started) <= CLOCK_SLACK_SECONDS
    if started_by is not None:
        return actual <= started_by + CLOCK_SLACK_SECONDS
    return True


@dataclass(frozen=True)
class Worker:
    """The process that executes (or executed) a run."""

    pid: int
    host: str | None  # None: not recorded
    started: float | None  # process start time from the tags, when recorded


def worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Worker | None:
    """The run's process: from our tags, else from the pid of its engine events; None when unknown."""
    tags = run.tags
    if tags.get(PID_TAG, "").isdigit():
        started = tags.get(STARTED_TAG)
        return Worker(int(tags[PID_TAG]), tags.get(HOST_TAG), float(started) if started else None)
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid")
        if pid is not None and str(pid.value).isdigit():
            return Worker(int(pid.value), None, None)
    return None


def _local(instance: dg.DagsterInstance) -> bool:
    """An instance whose runs all ran on this machine: SQLite files (make run, make dev) or in memory."""
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage  # SQLAlchemy: not at load

    return instance.is_ephemeral or isinstance(instance.run_storage, SqliteRunStorage)


def is_dead(instance: dg.DagsterInstance, record: dg.RunRecord) -> bool:
    """Whether the run is in progress on paper but its process is known to be gone."""
    found = worker(instance, record.dagster_run)
    if found is None:
        return False
    host = found.host or (HOST if _local(instance) else None)
    if host != HOST:
        return False  # another machine's run: its own instance or Dagster's run monitoring judges it
    return not alive(found.pid, found.started, record.start_time)


# --------------------------------------------------------------------------------------------------
# runs and pool slots
# --------------------------------------------------------------------------------------------------


@dataclass
class Recovery:
    """What a recovery did: each list names what it released or removed."""

    failed_runs: list[str] = field(default_factory=list)
    freed_runs: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.failed_runs or self.freed_runs or self.removed_files)

    def text(self) -> str:
        parts = []
        if self.failed_runs:
            parts.append(f"marked failed the run(s) of dead processes {', '.join(self.failed_runs)}")
        if self.freed_runs:
            parts.append(f"freed the pool slots of run(s) {', '.join(self.freed_runs)}")
        if self.removed_files:
            parts.append(f"removed {len(self.removed_files)} leftover file(s): {', '.join(self.removed_files)}")
        return "recovery: " + ("; ".join(parts) if parts else "nothing to do")


def slot_holders(instance: dg.DagsterInstance) -> set[str]:
    """Runs that claim a pool slot or wait in a pool's queue."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return set()
    holders = set(storage.get_concurrency_run_ids())
    for info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).values():
        holders.update(claim.run_id for claim in info.claimed_slots)
        holders.update(step.run_id for step in info.pending_steps)
    return holders


def release_dead_runs(instance: dg.DagsterInstance) -> Recovery:
    """Fail the runs whose process is dead, and free every slot a run that is not running holds."""
    done = Recovery()
    for record in instance.get_run_records(dg.RunsFilter(statuses=JUDGED)):
        if is_dead(instance, record):
            run = record.dagster_run
            instance.report_run_failed(
                run, f"The process of this run ({HOST}) is gone (killed or crashed): marked failed by recovery."
            )
            done.failed_runs.append(run.run_id)
    for run_id in sorted(slot_holders(instance)):
        holder = instance.get_run_by_id(run_id)
        if holder is None or holder.is_finished:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            done.freed_runs.append(run_id)
    return done


def _oldest_live_start(instance: dg.DagsterInstance) -> float:
    """When the oldest run still in progress began (now when none is): files older than it belong
    to dead writers."""
    starts = [
        record.start_time or record.create_timestamp.timestamp()
        for record in instance.get_run_records(dg.RunsFilter(statuses=JUDGED))
    ]
    return min([time.time(), *starts])


def remove_leftovers(lake_root: str, warehouse_path: str, before: float) -> list[str]:
    """Temp files of interrupted writes older than `before`: lake files written aside before their
    rename, and warehouse files built aside (with DuckDB's `.wal`). Object-store roots have none."""
    found: list[Path] = []
    if "://" not in lake_root and Path(lake_root).is_dir():
        found += [p for pattern in TEMP_PATTERNS for p in Path(lake_root).rglob(pattern)]
    found += [Path(p) for p in warehouse.leftovers(warehouse_path)]
    removed = []
    for path in sorted(set(found)):
        try:
            if path.is_file() and path.stat().st_mtime < before:
                path.unlink()
                removed.append(str(path))
        except FileNotFoundError:
            continue  # removed meanwhile by its own writer
    return removed


def configured(name: str) -> str:
    """A path setting of the resources as the environment gives it now (`lake`, `lake.dlt_dir`, `warehouse`)."""
    from ioc_pipeline.resources import resources

    resource, _, attribute = name.partition(".")
    setting = getattr(resources()[resource], attribute or ("root" if resource == "lake" else "path"))
    return setting.get_value() or "" if isinstance(setting, dg.EnvVar) else str(setting)


def recover(instance: dg.DagsterInstance, lake_root: str | None = None, warehouse_path: str | None = None) -> Recovery:
    """At the start of `cli run`: release what dead runs of this instance hold and remove the temp
    files they left; prints what it did (nothing when there was nothing to do)."""
    done = release_dead_runs(instance)
    before = _oldest_live_start(instance)
    done.removed_files = remove_leftovers(
        lake_root or configured("lake"), warehouse_path or configured("warehouse"), before
    )
    if done:
        print(done.text(), file=sys.stderr, flush=True)
    return done


# --------------------------------------------------------------------------------------------------
# stopping on SIGTERM / SIGINT
# --------------------------------------------------------------------------------------------------

_stopping = threading.Lock()
_wakeup_sockets: list[socket.socket] = []


@contextmanager
def stop_on_signals(instance: dg.DagsterInstance) -> Iterator[None]:
    """While in the block, make SIGTERM and SIGINT stop this process within seconds, whatever it is doing;
    the previous handlers are back afterwards (`cli.run` called in a process that goes on, e.g. a test).

    While a run executes, Dagster replaces the handlers with one that only sets a flag, read at step
    boundaries: a step waiting for a pool slot never reads it. So a watcher thread hears every signal
    through a wakeup socket (`signal.set_wakeup_fd`, which outlives Dagster's handler swaps) and, should
    something else take that socket, reads Dagster's flag. Stopping cancels this process's runs in the
    instance and frees their slots, then exits with 128 + the signal."""

    def handler(signum: int, _frame: object) -> None:
        stop(instance, signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    heard, wakeup = socket.socketpair()
    _wakeup_sockets.extend((heard, wakeup))  # a collected socket would close its fd under the signal machinery
    wakeup.setblocking(False)
    previous_fd = signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
    done = threading.Event()

    def received(timeout: float) -> bytes:
        heard.settimeout(timeout)
        try:
            return heard.recv(64)
        except TimeoutError:
            return b""

    def watch() -> None:
        while not done.is_set():
            signums = received(WATCH_SECONDS)
            if not signums and check_captured_interrupt():
                # Dagster's flag does not say which signal: its byte is on the socket, or about to be
                signums = received(1.0) or bytes([signal.SIGTERM])
            for signum in signums:
                if signum in STOP_SIGNALS and not done.is_set():
                    stop(instance, signum)

    watcher = threading.Thread(target=watch, name="ioc-stop-on-signal", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous_fd)
        for sig, old in previous.items():
            signal.signal(sig, old)
        watcher.join(timeout=2 * WATCH_SECONDS + 1.0)


def own_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs in progress whose process is this one."""
    runs = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=JUDGED)):
        found = worker(instance, record.dagster_run)
        if found is not None and found.pid == os.getpid() and found.host in (None, HOST):
            runs.append(record.dagster_run)
    return runs


def stop(instance: dg.DagsterInstance, signum: int) -> None:
    """Cancel this process's runs, free their slots and exit; never takes longer than a few seconds."""
    if not _stopping.acquire(blocking=False):
        return
    code = 128 + int(signum)
    name = signal.Signals(signum).name
    deadline = threading.Timer(STOP_DEADLINE_SECONDS, os._exit, args=(code,))
    deadline.daemon = True
    deadline.start()
    try:
        for run in own_runs(instance):
            instance.report_run_canceled(run, message=f"Stopped by {name}.")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    finally:
        print(f"stopped by {name}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(code)


# --------------------------------------------------------------------------------------------------
# without a person: the daemon's sensor
# --------------------------------------------------------------------------------------------------


@dg.sensor(
    name="dead_runs",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose process died (kill, crash, power cut) and frees the pool slots "
    "they, or any finished run, still hold: what Dagster's run monitoring cannot see with the default launcher.",
)
def dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    done = release_dead_runs(context.instance)
    if done:
        context.log.warning(done.text())
    return dg.SkipReason(done.text())
