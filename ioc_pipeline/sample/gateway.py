"""A local stand-in for the provincial data-sharing gateway's dossier API (tests and demos only).

    python -m ioc_pipeline.sample.gateway --landing data/landing --port 8765 --token demo-token \\
        [--fail-429 N] [--fail-500 N] [--fail-every K] [--slow-ms MS] [--drop-body N] [--endless]

then run the pipeline against it:

    IOC_DOSSIER_API_URL=http://127.0.0.1:8765 IOC_DOSSIER_API_TOKEN=demo-token make run

It serves the dossier versions of the export files under `<landing>/public_service/` exactly as the
landing-zone contract describes the API: `GET /dossiers?updated_from=<ISO 8601>&page=<n>&page_size=<m>`
with `Authorization: Bearer <token>`, answering `{"data": [...], "page", "page_size", "total_pages",
"total"}`, pages 1-based, versions ordered by NgayCapNhat. Switches make it answer 429 or 500 (the
next N requests, or every K-th), slow pages, break the connection in the middle of a page's body, and
misbehave at paging (always announce one more page; answer page 1 whatever page is asked). Every
request is logged (`requests`) so tests can see what the pipeline asked for. Records are serialised
once when loaded; a page is a join of bytes, so the server is never what limits a measurement.
Production code never imports this module.
"""

from __future__ import annotations

import argparse
import bisect
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import orjson
import polars as pl

from ioc_pipeline import parsing

MIN_TIME = datetime(1970, 1, 1).astimezone()
TRUNCATE = "x-sample-truncate"  # internal: the handler sends half the body and closes the connection


def _timestamps(texts: list[str | None]) -> list[datetime | None]:
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    return frame.select(parsing.datetime_local("t")).get_column("t").to_list()


@dataclass
class Gateway:
    """The served versions and the failure switches (change them while the server runs)."""

    token: str
    fail_429: int = 0  # answer 429 to the next N requests
    fail_500: int = 0  # answer 500 to the next N requests
    fail_every: int = 0  # answer 503 to every K-th request (0: never)
    slow_seconds: float = 0.0
    drop_body: int = 0  # the next N pages: send the headers and half the body, then close the connection
    endless: bool = False  # announce total_pages = page + 1 on every page (a gateway that never ends)
    repeat_first_page: bool = False  # answer page 1's versions whatever page is asked
    requests: list[dict[str, Any]] = field(default_factory=list)
    _keys: list[tuple[datetime, str]] = field(default_factory=list)
    _bodies: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

    def add_lines(self, lines: list[bytes], fallback: datetime = MIN_TIME) -> int:
        """Serve more versions (JSON objects, one per line); unreadable lines are not served."""
        codes, updated, bodies = [], [], []
        for line in lines:
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(item, dict):
                codes.append(str(item.get("MaHoSo")))
                updated.append(None if item.get("NgayCapNhat") is None else str(item.get("NgayCapNhat")))
                bodies.append(line.strip())
        stamps = _timestamps(updated)
        fresh = [((stamp or fallback, code), body) for code, stamp, body in zip(codes, stamps, bodies, strict=True)]
        with self._lock:
            merged = sorted([*zip(self._keys, self._bodies, strict=True), *fresh], key=lambda kb: kb[0])
            self._keys = [k for k, _ in merged]
            self._bodies = [b for _, b in merged]
        return len(fresh)

    def add_landing(self, landing: Path) -> int:
        total = 0
        for path in sorted((landing / "public_service").glob("dossiers_*.ndjson")):
            month = path.stem.rsplit("_", 1)[-1]
            fallback = datetime(int(month[:4]), int(month[4:6]), 1).astimezone(parsing_tz())
            total += self.add_lines(path.read_bytes().splitlines(), fallback)
        return total

    def __len__(self) -> int:
        return len(self._bodies)

    def answer(self, query: dict[str, list[str]], authorization: str | None) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self._count += 1
            count = self._count
            entry: dict[str, Any] = {k: v[0] for k, v in query.items()}
            self.requests.append(entry)
            if authorization != f"Bearer {self.token}":
                entry["status"] = 401
                return 401, b'{"error":"invalid token"}', {}
            if self.fail_429 > 0:
                self.fail_429 -= 1
                entry["status"] = 429
                return 429, b'{"error":"too many requests"}', {"Retry-After": "0"}
            if self.fail_500 > 0:
                self.fail_500 -= 1
                entry["status"] = 500
                return 500, b'{"error":"internal error"}', {}
            if self.fail_every and count % self.fail_every == 0:
                entry["status"] = 503
                return 503, b'{"error":"busy"}', {}
            entry["status"] = 200
            try:
                page = int(entry.get("page", "1"))
                size = int(entry.get("page_size", "1000"))
                since = datetime.fromisoformat(entry["updated_from"]) if "updated_from" in entry else MIN_TIME
                if since.tzinfo is None:
                    since = since.replace(tzinfo=parsing_tz())
            except (ValueError, KeyError):
                entry["status"] = 400
                return 400, b'{"error":"bad parameters"}', {}
            if page < 1 or not 1 <= size <= 50_000:
                entry["status"] = 400
                return 400, b'{"error":"page is 1-based and page_size in 1..50000"}', {}
            start = bisect.bisect_left(self._keys, (since, ""))
            total = len(self._keys) - start
            first = start + ((1 if self.repeat_first_page else page) - 1) * size
            data = b",".join(self._bodies[first : min(first + size, len(self._bodies))])
            total_pages = page + 1 if self.endless else -(-total // size)
            headers = {}
            if self.drop_body > 0:
                self.drop_body -= 1
                entry["status"] = "dropped"
                headers[TRUNCATE] = "1"
        if self.slow_seconds:
            time.sleep(self.slow_seconds)
        tail = f'],"page":{page},"page_size":{size},"total_pages":{total_pages},"total":{total}}}'.encode()
        return 200, b'{"data":[' + data + tail, headers


def parsing_tz() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(parsing.TIMEZONE)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: GatewayServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        if url.path.rstrip("/") != "/dossiers":
            status, body, headers = 404, b'{"error":"not found"}', dict[str, str]()
        else:
            status, body, headers = self.server.gateway.answer(parse_qs(url.query), self.headers.get("Authorization"))
        truncate = headers.pop(TRUNCATE, None)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if truncate:  # a connection dropped mid-body: the client sees fewer bytes than Content-Length
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): nothing to answer
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the gateway object logs
        return


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.gateway = gateway
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{cast(str, host)}:{port}"

    def start(self) -> GatewayServer:
        self._thread = threading.Thread(target=self.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=10)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ioc_pipeline.sample.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, default=Path("data/landing"), help="landing root with public_service/")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="demo-token", help="the bearer token it accepts")
    parser.add_argument("--fail-429", type=int, default=0, help="answer 429 to the first N requests")
    parser.add_argument("--fail-500", type=int, default=0, help="answer 500 to the next N requests after those")
    parser.add_argument("--fail-every", type=int, default=0, help="answer 503 to every K-th request")
    parser.add_argument("--slow-ms", type=float, default=0.0, help="delay every page by this many milliseconds")
    parser.add_argument("--drop-body", type=int, default=0, help="break the connection mid-body on the next N pages")
    parser.add_argument("--endless", action="store_true", help="always announce one more page")
    args = parser.parse_args(argv)
    gateway = Gateway(
        args.token, args.fail_429, args.fail_500, args.fail_every, args.slow_ms / 1000, args.drop_body, args.endless
    )
    loaded = gateway.add_landing(args.landing)
    server = GatewayServer(gateway, args.host, args.port)
    print(f"serving {loaded} dossier versions at {server.url}/dossiers (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
