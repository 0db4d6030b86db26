"""The one list of feeds: every registry of the project is derived from `DOMAINS`.

    DOMAINS ──► definitions (asset modules) ──► publish (warehouse docs) ──► scorecard (indicator parts)
            ──► automation (one delivery sensor per feed) ──► ops/feed_status (owner, cadence, late after)
            ──► the sample generator (one writer per domain)

A domain is one asset group: its asset module (assets, `DOCS`, `indicators`, `INDICATOR_INPUTS`), the
deliveries it reads (each a `FeedSpec`: the source's `Feed` plus who delivers it and how often, as the
landing-zone contract's "Who delivers, and how often" table says) and its sample writer. Adding a feed
is its own modules (source, checks, assets, sample) plus one line here.

This module imports no Dagster and no asset module (they are named, and imported by who needs them),
so the sample generator and the CLI's `validate` can read it cheaply.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType

from ioc_pipeline.sources import dossiers, postal, procedures, telecom
from ioc_pipeline.sources.files import Feed

MONTHLY = ("Ảnh chụp hằng tháng", "monthly snapshot")
LATE_MONTHLY = timedelta(days=35)


@dataclass(frozen=True)
class Owner:
    """The department that delivers a feed (the contract's owner column)."""

    vi: str
    en: str


PEOPLES_COMMITTEE_OFFICE = Owner(
    "Văn phòng UBND tỉnh (Bộ phận một cửa)", "Provincial People's Committee office (one-stop-shop unit)"
)
DIC = Owner("Sở Thông tin và Truyền thông", "Department of Information and Communications")
SERVICE_CENTRE = Owner("Trung tâm Phục vụ hành chính công", "Public administration service centre")


@dataclass(frozen=True)
class FeedSpec:
    """One delivery of the contract: where its files are (`source`), who delivers it and how often.

    `parts` are the units a feed is judged by separately (the carriers of the BTS feed: each carrier
    delivers its own register and is late on its own)."""

    source: Feed
    owner: Owner
    cadence: tuple[str, str] = MONTHLY  # (vi, en)
    late_after: timedelta = LATE_MONTHLY
    parts: tuple[str, ...] = ()
    api_late_after: timedelta | None = None  # a feed that can also come through an API: late sooner there

    @property
    def name(self) -> str:
        return self.source.table


@dataclass(frozen=True)
class Domain:
    """One asset group: its asset module, the feeds it reads, and its sample writer."""

    group: str
    assets: str  # module path, imported by `module()`
    feeds: tuple[FeedSpec, ...] = ()
    sample: str | None = None  # `ioc_pipeline.sample.<sample>.write(landing, seed)`

    def module(self) -> ModuleType:
        return importlib.import_module(self.assets)


DOMAINS: tuple[Domain, ...] = (
    Domain("reference", "ioc_pipeline.assets.reference"),
    Domain(
        "procedures",
        "ioc_pipeline.assets.procedures",
        (FeedSpec(procedures.FEED, PEOPLES_COMMITTEE_OFFICE),),
        "procedures",
    ),
    Domain("telecom", "ioc_pipeline.assets.telecom", (FeedSpec(telecom.FEED, DIC, parts=telecom.CARRIERS),), "telecom"),
    Domain(
        "postal",
        "ioc_pipeline.assets.postal",
        (FeedSpec(postal.ENTERPRISES, DIC), FeedSpec(postal.SERVICE_POINTS, DIC)),
        "postal",
    ),
    Domain(
        "public_service",
        "ioc_pipeline.assets.public_service",
        (
            FeedSpec(
                dossiers.FEED,
                SERVICE_CENTRE,
                ("Hằng ngày qua API; tệp xuất hằng tháng dự phòng", "daily through the API; monthly export files"),
                api_late_after=timedelta(days=2),
            ),
        ),
        "dossiers",
    ),
)


def feeds() -> list[FeedSpec]:
    return [feed for domain in DOMAINS for feed in domain.feeds]


def feed(name: str) -> FeedSpec:
    found = {f.name: f for f in feeds()}
    if name not in found:
        raise KeyError(f"no feed {name!r}; the feeds are {', '.join(found)}")
    return found[name]


def group_of(name: str) -> str:
    return next(domain.group for domain in DOMAINS if any(f.name == name for f in domain.feeds))


def sample_writers() -> dict[str, str]:
    """Sample name -> writer module (`python -m ioc_pipeline.sample --feeds NAME`)."""
    return {d.sample: f"ioc_pipeline.sample.{d.sample}" for d in DOMAINS if d.sample}
