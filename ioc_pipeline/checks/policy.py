"""The quality policy per feed, read from a TOML file: no code change to tune a feed's gate.

    checks/quality_policy.toml (or $IOC_QUALITY_POLICY) ──policy_for(table)──► Policy ──► gate.batch_checks

A batch is blocked when the refused share AND the refused count both exceed the policy (a handful
of bad rows in a tiny register never blocks it), or when its clean rows collapse against the
snapshot published before it. `warn_only` rules report but never refuse a row.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

DEFAULT_PATH = Path(__file__).with_name("quality_policy.toml")
ENV = "IOC_QUALITY_POLICY"


class PolicyError(ValueError):
    """The policy file cannot be read or names a setting that does not exist."""


@dataclass(frozen=True)
class Policy:
    max_refused_share: float = 0.10
    min_refused_rows: int = 10
    min_row_ratio: float = 0.5
    warn_only: frozenset[str] = field(default_factory=frozenset)

    def blocks(self, refused: int, delivered: int) -> bool:
        share = refused / delivered if delivered else 0.0
        return share > self.max_refused_share and refused > self.min_refused_rows

    def describe(self) -> tuple[str, str]:
        """The blocking rule in words (vi, en)."""
        pct, rows = f"{self.max_refused_share * 100:g} %", self.min_refused_rows
        pct_vi = pct.replace(".", ",")
        return (f"chặn khi bị loại trên {pct_vi} và trên {rows} dòng", f"blocks above {pct} and {rows} rows")


FIELDS = set(Policy.__dataclass_fields__)
TYPES: dict[str, tuple[type, ...]] = {
    "max_refused_share": (float, int),
    "min_refused_rows": (int,),
    "min_row_ratio": (float, int),
    "warn_only": (list,),
}


def path() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT_PATH)


@cache
def _load(where: Path, stamp: float) -> dict[str, dict]:
    try:
        with open(where, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"quality policy {where}: {error}") from None
    return {"": data.get("default", {}), **data.get("feeds", {})}


def _checked(where: Path, name: str, section: dict) -> dict:
    """One section's settings, refused by name when unknown or of the wrong type (only the feed whose
    section is wrong fails: the others' policies still load)."""
    label = f"[feeds.{name}]" if name else "[default]"
    unknown = set(section) - FIELDS
    if unknown:
        raise PolicyError(f"quality policy {where}: {label} has unknown setting(s) {', '.join(sorted(unknown))}")
    for key, setting in section.items():
        if not isinstance(setting, TYPES[key]) or isinstance(setting, bool):
            raise PolicyError(f"quality policy {where}: {label} {key} = {setting!r} is not a {TYPES[key][0].__name__}")
    return section


def policy_for(table: str) -> Policy:
    """The policy of one feed's table: the file's default, overridden by its `[feeds.<table>]`."""
    where = path()
    try:
        stamp = where.stat().st_mtime
    except OSError as error:
        raise PolicyError(f"quality policy {where}: {error}") from None
    sections = _load(where, stamp)
    merged = {**_checked(where, "", sections[""]), **_checked(where, table, sections.get(table, {}))}
    if "warn_only" in merged:
        merged["warn_only"] = frozenset(merged["warn_only"])
    return Policy(**merged)
