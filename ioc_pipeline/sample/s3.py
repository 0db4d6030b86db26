"""A local S3-compatible server for the tests and the bench: moto's server mode on 127.0.0.1.

    with local_s3(log) as aws:   # {"AWS_ENDPOINT_URL": "http://127.0.0.1:<port>", "AWS_ACCESS_KEY_ID": …}
        … IOC_LAKE_DIR=s3://bucket/prefix with `aws` in the environment …

Dev and tests only (moto comes with the `dev` extra): a real server in its own process, never an object mocked
in the test's process, so every S3 client of the pipeline (s3fs, dlt, DuckDB through fsspec) talks HTTP to it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Until something listens on loopback `port`; fails with `process`'s log if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the process meant to listen on {port} exited: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port}: {log.read_text()}") from None
            time.sleep(0.2)


@contextmanager
def local_s3(log: Path, timeout: float = 60) -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port until the block ends; yields the AWS variables that reach it."""
    port = free_port()
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    try:
        wait_for_port(port, server, log, timeout)
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "ioc-test",
            "AWS_SECRET_ACCESS_KEY": "ioc-test-secret",
            "AWS_DEFAULT_REGION": "ap-southeast-1",
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def bucket_client(aws: dict[str, str]):
    """An S3 client of the caller's own (not the pipeline's cached one), to make or look into a bucket."""
    import s3fs  # type: ignore[import-untyped]

    return s3fs.S3FileSystem(
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        key=aws["AWS_ACCESS_KEY_ID"],
        secret=aws["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"region_name": aws["AWS_DEFAULT_REGION"]},
        skip_instance_cache=True,
    )
