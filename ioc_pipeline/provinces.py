"""The former provinces one deployment receives, declared once (`IOC_PROVINCES`).

Since 1 July 2025 Cần Thơ city (92) is the former Cần Thơ city (92), Hậu Giang (93) and Sóc Trăng (94):
until their departments merge, each former province still delivers its own files. `IOC_PROVINCES` lists
the former province codes this deployment receives (`92,93,94`); unset, it is the legacy single province
(Sóc Trăng, 94), and the landing zone, lake and dlt state keep the layout they always had.

Layout rule (one place: `landing_prefix`, `lake_partition`; a dlt pipeline's name ends with its lake partition):

- unset `IOC_PROVINCES` (legacy): feed folders at the landing root (`<landing>/procedures/…`), bronze,
  silver and quarantine files directly under `<layer>/<table>/`, dlt pipelines `ioc_<table>`;
- set: each former province delivers under `<landing>/<code>/<feed folder>/…`, its bronze, silver and
  quarantine files are under `<layer>/<table>/<code>/`, its dlt pipeline is `ioc_<table>_<code>` (own
  state, own load records), so two provinces never share a path or a state. A set `IOC_PROVINCES`
  whose province has no `<code>/` folder in the landing zone reads that province from the landing
  root when it is the only province listed (the legacy layout, documented in the README).

Names come from the admin-unit package (units.py), never written by hand. No Dagster import.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

SETTING = "IOC_PROVINCES"
LEGACY = ("94",)  # the one province the project knew before issue 15: Sóc Trăng
MERGED_CITY = "92"  # Cần Thơ city after 1 July 2025: the new units of every former province
SCOPE_FORMER = "former_province"
SCOPE_MERGED = "merged_city"
PROVINCE_DIMENSION = "province"  # the Dagster partitions dimension of the former provinces (dossiers: × month)


@dataclass(frozen=True)
class Province:
    """A former (pre-2025) province the deployment receives deliveries from."""

    code: str
    name: str  # official, from the package: "Tỉnh Hậu Giang"


def codes() -> tuple[str, ...]:
    """The former province codes of `IOC_PROVINCES` (in the order given, duplicates dropped), or the legacy one."""
    raw = os.environ.get(SETTING, "").strip()
    if not raw:
        return LEGACY
    listed = tuple(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))
    known = former_codes()
    unknown = [c for c in listed if c not in known]
    if unknown:
        raise ValueError(
            f"{SETTING}: {', '.join(unknown)} is no former province merged into {MERGED_CITY} "
            f"(the admin-unit package knows {', '.join(sorted(known))})"
        )
    return listed


def partitioned() -> bool:
    """Whether the per-province layout is in force (`IOC_PROVINCES` set), rather than the legacy one."""
    return bool(os.environ.get(SETTING, "").strip())


def several() -> bool:
    """More than one former province: the merged city's figures differ from any one province's."""
    return len(codes()) > 1


def configured() -> list[Province]:
    from ioc_pipeline import units

    return [Province(code, units.province_name(code)) for code in codes()]


def former_codes() -> frozenset[str]:
    """The pre-2025 provinces the package merges into Cần Thơ city (92)."""
    from ioc_pipeline import units

    return frozenset(units.merged_into(MERGED_CITY))


def landing_prefix(code: str, landing_has_folder: bool) -> str:
    """The folder (relative to the landing root, '' for the root) a province's feed folders are under."""
    if not partitioned():
        return ""
    if not landing_has_folder and codes() == (code,):
        return ""  # one province listed, delivered in the legacy layout
    return code


def lake_partition(code: str) -> str | None:
    """The folder under `<layer>/<table>/` of a province's files (None: the legacy layout, no folder)."""
    return code if partitioned() else None


class _Delivered(Protocol):
    def under(self, prefix: str) -> Any: ...


F = TypeVar("F", bound=_Delivered)


def deliveries(feed: F, landing: Any) -> list[tuple[str, F, str | None]]:
    """Each configured province's view of a feed: (code, the feed under the province's landing folder,
    its lake partition). `landing` is a `lake.Landing` (its `fs` and `root` tell which folders exist)."""
    out = []
    for code in codes():
        has_folder = bool(landing.fs.isdir(f"{landing.root}/{code}"))
        out.append((code, feed.under(landing_prefix(code, has_folder)), lake_partition(code)))
    return out


def of_path(path: str) -> str:
    """The former province a delivered file's path (relative to the landing root) belongs to."""
    head = path.split("/", 1)[0]
    return head if partitioned() and head in codes() else codes()[0]


@dataclass(frozen=True)
class Scope:
    """What a gold row or scorecard row is about: one former province, or the merged city (all of them,
    by the new units). `province_code` is the former province's code, or the city's (92) when merged."""

    province_code: str
    scope: str  # SCOPE_FORMER or SCOPE_MERGED
    members: tuple[str, ...]  # the former provinces whose rows it takes


def scopes() -> list[Scope]:
    """Each former province, and the merged city when there are several (with one, the city's figures
    would only repeat the province's)."""
    out = [Scope(code, SCOPE_FORMER, (code,)) for code in codes()]
    if several():
        out.append(Scope(MERGED_CITY, SCOPE_MERGED, codes()))
    return out


_CURRENT: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("ioc_province", default=None)


def current() -> str:
    """The former province whose batch is being typed and gated (units resolve against it)."""
    return in_scope()[0]


def in_scope() -> tuple[str, ...]:
    """The former provinces whose units a step is reading (one while gating; all for the merged city)."""
    return _CURRENT.get() or codes()


@contextmanager
def gating(*members: str) -> Iterator[None]:
    """Within: names resolve against former province `members[0]` (its old communes, its bounding box),
    and the units listed by gold tables are those of `members`."""
    token = _CURRENT.set(tuple(members))
    try:
        yield
    finally:
        _CURRENT.reset(token)
