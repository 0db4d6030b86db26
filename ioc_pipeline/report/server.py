"""Serve the lake's `report/` folder over HTTP on loopback, beside the Dagster UI (`make dev`).

    make dev ──devserver──► dagster dev on PORT   (IOC_REPORT_BASE_URL=http://HOST:PORT+1 in its environment)
                      └───► this server on PORT+1 ──► <lake>/report/ (ioc/latest.html, ioc/<snapshot>.html, …)

The report asset's materialization links to `IOC_REPORT_BASE_URL/ioc/latest.html`, so the link on
the asset's page opens in the operator's browser. Read-only, static files, no listing outside the
folder. A lake on object storage (`s3://`) is not served from here: the link is then left out.
Imports nothing heavy (the dev server starts it before Dagster).
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def report_folder(environ: dict[str, str] | None = None) -> Path | None:
    """The lake's `report/` folder as resources.py resolves the lake (IOC_LAKE_DIR, else IOC_DATA_DIR/lake);
    None when the lake is not a local folder."""
    env = os.environ if environ is None else environ
    root = env.get("IOC_LAKE_DIR") or os.path.join(env.get("IOC_DATA_DIR") or "data", "lake")
    if root.startswith("file://"):
        root = root.removeprefix("file://")
    elif "://" in root:
        return None
    return Path(root).resolve() / "report"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")  # latest.html changes under the same name
        super().end_headers()


def start(folder: Path, host: str, port: int) -> ThreadingHTTPServer:
    """Serve `folder` on host:port from a daemon thread; `.shutdown()` stops it."""
    folder.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, name="report-server", daemon=True).start()
    return server


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://{shown}:{port}"
