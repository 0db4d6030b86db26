"""Real servers for the operating tests: `make dev` (webserver + daemon) and a PostgreSQL cluster.

Both listen on 127.0.0.1 on a free port, keep their state in temp folders, and are stopped by
the tests that started them. Debian packages they need come from tools/system-packages.sh.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ensure_system_packages() -> None:
    """Install what is missing (root only) or fail saying what to install."""
    done = subprocess.run(["bash", str(REPO / "tools" / "system-packages.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"system packages missing: {done.stderr.strip()}")


def processes_with_env(name: str, value: str) -> list[str]:
    """Command lines of the live processes whose environment has `name=value` (ours, wherever they went)."""
    needle = f"{name}={value}".encode()
    found = []
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            if needle in Path(environ).read_bytes().split(b"\0"):
                stat = Path(environ).with_name("stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(Path(environ).with_name("cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def wait_for(condition, what: str, attempts: int = 600, pause: float = 0.5):
    """Poll `condition` until it returns something truthy (bounded), else fail naming `what`."""
    for _ in range(attempts):
        value = condition()
        if value:
            return value
        time.sleep(pause)
    pytest.fail(f"gave up waiting for {what}")


# --- make dev -------------------------------------------------------------------------------------


@dataclass
class DevServer:
    """`make dev` in its own process group, over a data dir with its own DAGSTER_HOME."""

    process: subprocess.Popen
    port: int
    home: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def left_behind(self) -> list[str]:
        return processes_with_env("DAGSTER_HOME", str(self.home))

    def stop(self, sig: signal.Signals = signal.SIGTERM, group: bool = False) -> int:
        """SIGTERM to make (a service manager), or SIGINT to the process group (Ctrl-C in a terminal)."""
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        return self.process.wait(timeout=120)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def _default_signals() -> None:
    """What a terminal or a service manager gives `make`: every stop signal at its default. (A test
    runner started in the background, or a library in it, may have left some ignored: an ignored
    signal stays ignored across exec, and `make` would then never hear it.)"""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def start_dev_server(data_dir: Path) -> DevServer:
    """`make dev` exactly as a person types it, on a free port, over `data_dir`."""
    port = free_port()
    venv = Path(sys.executable).parent.parent
    home = data_dir / "dagster_home"
    log = data_dir / "make-dev.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IOC_", "DAGSTER_HOME", "PYTEST", "MAKEFLAGS", "MFLAGS"))
    }
    env |= {"IOC_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            # -o: the venv is set up already (the one running these tests); do not reinstall it
            ["make", "--no-print-directory", "-o", f"{venv}/.installed", "dev", f"VENV={venv}", f"DEV_PORT={port}"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    server = DevServer(process, port, home, log)
    for _ in range(360):
        if server.answers():
            return server
        if process.poll() is not None:
            pytest.fail(f"make dev exited with {process.returncode}:\n{server.tail()}")
        time.sleep(0.5)
    server.stop()
    pytest.fail(f"the UI did not answer on {server.url}:\n{server.tail()}")


# --- PostgreSQL -------------------------------------------------------------------------------------


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.database,
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
        }

    def query(self, sql: str, *params: object) -> list[tuple]:
        import psycopg2

        con = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.database
        )
        try:
            with con.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            con.close()


def _pg_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        ensure_system_packages()
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        pytest.fail(f"PostgreSQL's {tool} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster: temp data dir, loopback only, a free port, password auth.

    PostgreSQL refuses to run as root: as root (CI) the cluster belongs to the `postgres` user
    (runuser); as anyone else it runs as that user."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="ioc-pg-", dir="/tmp"))
    data, password = base / "data", "ioc-test-secret"
    (base / "pwfile").write_text(password)
    if as_postgres:
        shutil.chown(base, "postgres")
        shutil.chown(base / "pwfile", "postgres")
    port = free_port()
    server = Postgres("127.0.0.1", port, "dagster", password, "dagster")

    def run(*command: str) -> None:
        done = subprocess.run([*as_postgres, *command], capture_output=True, text=True, cwd=base)
        if done.returncode != 0:
            log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{log[-3000:]}")

    run(
        initdb, "-D", str(data), "-U", "dagster", f"--pwfile={base / 'pwfile'}", "--auth=scram-sha-256",
        "--no-sync", "--encoding=UTF8", "--locale=C",
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
    run(pg_ctl, "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "-t", "120", "start")
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", password=password, dbname="postgres")
        try:
            con.autocommit = True
            with con.cursor() as cursor:
                cursor.execute("create database dagster")
        finally:
            con.close()
        yield server
    finally:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
