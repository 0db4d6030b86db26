"""`python -m ioc_pipeline.devserver` (what `make dev` runs): the Dagster UI and daemon on loopback.

    make dev ──► devserver ──► dg dev (own process group) ──► webserver, daemon, code server

It also serves the lake's `report/` folder (the IOC report) on the next port, and tells Dagster
where (`IOC_REPORT_BASE_URL`), so the report asset's link opens from its page: see report/server.py.

Stops cleanly on Ctrl-C, SIGTERM or SIGHUP, leaving no process behind. `dagster dev` alone does
not: started in the background by a script it inherits an ignored SIGINT and then ignores SIGTERM
too. So this wrapper handles the signals itself, asks `dagster dev` to shut down (SIGTERM), waits,
and then ends whatever of its descendants is still there.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ioc_pipeline.report import server as report_server

REPO = Path(__file__).resolve().parents[1]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _become_subreaper() -> None:
    """Orphaned descendants (a server that forked and left) re-parent to us, not to init: we find them."""
    # not Linux: the process tree below dagster dev is all we can see
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _name(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(w.decode(errors="replace") for w in words[:4] if w)[:80]


def _kill(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _serve_reports(host: str, port: int) -> report_server.ThreadingHTTPServer | None:
    """The lake's report folder on `port` (0: not served); Dagster (our child) inherits its URL."""
    folder = report_server.report_folder()
    if not port or folder is None:
        print("devserver: reports not served (no port, or the lake is not a local folder)", flush=True)
        return None
    try:
        reports = report_server.start(folder, host, port)
    except OSError as error:
        print(f"devserver: reports not served: port {port}: {error}", flush=True)
        return None
    url = os.environ.setdefault("IOC_REPORT_BASE_URL", report_server.base_url(host, port))
    print(f"devserver: reports of {folder} on {url}/ioc/latest.html", flush=True)
    return reports


def serve(host: str, port: int, workspace: Path, grace: float = 30.0, report_port: int | None = None) -> int:
    home = os.environ.setdefault("DAGSTER_HOME", str(REPO / "data" / "dagster_home"))
    Path(home).mkdir(parents=True, exist_ok=True)
    if not (Path(home) / "dagster.yaml").exists():
        shutil.copy(REPO / "deploy" / "dagster.local.yaml", Path(home) / "dagster.yaml")
    dg_cli = Path(sys.executable).with_name("dg")  # `dagster dev` warns that `dg dev` supersedes it
    command = [str(dg_cli), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]
    _become_subreaper()
    stopping: list[int] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda number, _frame: stopping.append(number))
    reports = _serve_reports(host, port + 1 if report_port is None else report_port)
    child = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "VIRTUAL_ENV": sys.prefix},  # dg: this interpreter's venv is the project's
        start_new_session=True,  # Ctrl-C reaches this wrapper only; it stops the tree in order
        preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in STOP_SIGNALS],
    )
    print(f"devserver: Dagster UI on http://{host}:{port} (DAGSTER_HOME={home}); Ctrl-C stops it", flush=True)
    while child.poll() is None and not stopping:
        time.sleep(0.2)
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)  # dg dev stops its webserver, daemon and code server
        deadline = time.monotonic() + grace
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    _reap()
    left = [pid for pid in descendants(os.getpid()) if _alive(pid)]
    if left:
        names = ", ".join(sorted({_name(pid) for pid in left}))
        print(f"devserver: ending {len(left)} process(es) left behind: {names}", flush=True)
        _kill(left, signal.SIGTERM)
        # the code server's multiprocessing helpers ignore SIGTERM (they wait for their parent):
        # a short grace, then SIGKILL; nothing here holds state worth waiting for
        deadline = time.monotonic() + 3
        while any(_alive(pid) for pid in left) and time.monotonic() < deadline:
            _reap()
            time.sleep(0.2)
        _kill([pid for pid in left if _alive(pid)], signal.SIGKILL)
    child.wait()
    _reap()
    if reports is not None:
        reports.shutdown()
        reports.server_close()
    print("devserver: stopped", flush=True)
    return 0 if stopping else child.returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ioc_pipeline.devserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--workspace", type=Path, default=REPO / "workspace.yaml")
    parser.add_argument(
        "--report-port", type=int, default=None, help="port of the reports (default: --port + 1; 0: off)"
    )
    args = parser.parse_args(argv)
    sys.exit(serve(args.host, args.port, args.workspace, report_port=args.report_port))


if __name__ == "__main__":
    main()
