"""Typed configuration of the pipeline: where the lake, landing zone and warehouse are, and secrets.

Every setting is an environment variable with a default under `data/` (see the README table);
`setting()` hands Dagster an `EnvVar` when the variable is set, so the UI shows where a value
came from, and the embedded default otherwise.
"""

from __future__ import annotations

import os

import dagster as dg

from ioc_pipeline.lake import Lake, Landing
from ioc_pipeline.metadata import TableDoc
from ioc_pipeline.warehouse import build


def data_dir() -> str:
    return os.environ.get("IOC_DATA_DIR", "data")


def setting(name: str, default: str) -> str | dg.EnvVar:
    return dg.EnvVar(name) if os.environ.get(name) else default


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake (bronze, silver, gold, quarantine) and dlt's local working state."""

    root: str
    dlt_dir: str

    def lake(self) -> Lake:
        return Lake(self.root)


class LandingResource(dg.ConfigurableResource):
    """The landing zone the departments deliver to (read-only for the pipeline)."""

    root: str

    def landing(self) -> Landing:
        return Landing(self.root)


class WarehouseResource(dg.ConfigurableResource):
    """The analysts' DuckDB file, rebuilt aside and swapped in by the publish asset."""

    path: str

    def publish(self, store: Lake, docs: dict[str, TableDoc]) -> dict[str, int]:
        return build(store, self.path, docs)


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go besides the lake and the log: a webhook (chat, paging) when one is set."""

    webhook_url: str = ""


def resources() -> dict[str, dg.ConfigurableResource]:
    base = data_dir()
    return {
        "lake": LakeResource(
            root=setting("IOC_LAKE_DIR", os.path.join(base, "lake")),
            dlt_dir=setting("IOC_DLT_DIR", os.path.join(base, "dlt")),
        ),
        "landing": LandingResource(root=setting("IOC_LANDING_DIR", os.path.join(base, "landing"))),
        "warehouse": WarehouseResource(
            path=setting("IOC_WAREHOUSE_PATH", os.path.join(base, "warehouse", "ioc.duckdb"))
        ),
        "alerts": AlertsResource(webhook_url=setting("IOC_ALERT_WEBHOOK_URL", "")),
    }
