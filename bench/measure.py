"""Run a command and measure it: wall time and the peak resident memory of its whole process tree.

The tree (the process and every descendant, found through /proc's parent links) is sampled every
~50 ms; at each sample the RSS of every member is summed, and the maximum sum is the peak. Pages
shared between processes count once per process, so the figure errs on the high side.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields start after the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    children = _children_map()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss(pid: int) -> tuple[int, int]:
    """Summed RSS in bytes of a process tree, and how many processes it has."""
    total, count = 0, 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * PAGE
                count += 1
        except (OSError, IndexError, ValueError):
            continue
    return total, count


@dataclass
class Measured:
    command: list[str]
    returncode: int
    seconds: float
    peak_rss_bytes: int
    max_processes: int
    samples: int
    stdout: str = ""
    stderr: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 2**20

    def summary(self) -> dict:
        return {
            "command": " ".join(self.command),
            "returncode": self.returncode,
            "wall_seconds": round(self.seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "max_processes": self.max_processes,
            "memory_samples": self.samples,
        }


def run(
    command: list[str], env: dict[str, str] | None = None, cwd: str | None = None, interval: float = 0.05
) -> Measured:
    """Run `command` to completion, sampling its tree's memory; output is captured (not streamed)."""
    out_path = f"/tmp/bench-{os.getpid()}-{time.monotonic_ns()}"
    with open(f"{out_path}.out", "wb") as out, open(f"{out_path}.err", "wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        peak, most, samples = 0, 0, 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak, most, samples
            while not done.is_set():
                rss, count = tree_rss(process.pid)
                peak, most, samples = max(peak, rss), max(most, count), samples + 1
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = process.wait()
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
    with open(f"{out_path}.out", encoding="utf-8", errors="replace") as out:
        stdout = out.read()
    with open(f"{out_path}.err", encoding="utf-8", errors="replace") as err:
        stderr = err.read()
    for suffix in (".out", ".err"):
        os.remove(out_path + suffix)
    return Measured(command, returncode, seconds, peak, most, samples, stdout, stderr)
