"""Typed configuration of the pipeline: where the lake, landing zone and warehouse are, and secrets.

Every setting is an environment variable with a default under `data/` (see the README table);
`setting()` hands Dagster an `EnvVar` when the variable is set, so the UI shows where a value
came from, and the embedded default otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dagster as dg

from ioc_pipeline.lake import Lake, Landing
from ioc_pipeline.metadata import TableDoc
from ioc_pipeline.pii import resolve_key
from ioc_pipeline.warehouse import Published, build


def data_dir() -> str:
    return os.environ.get("IOC_DATA_DIR", "data")


def setting(name: str, default: str) -> str | dg.EnvVar:
    return dg.EnvVar(name) if os.environ.get(name) else default


def resolved(name: str) -> Any:
    """One resource of `resources()` with its `EnvVar` fields read: for code outside a Dagster run (the CLI).
    Built from the values (validated as the resource's fields): Dagster's `process_config_and_initialize`
    creates an ephemeral instance (in-memory SQLite and its migrations) at each call, a second of every start."""
    resource = resources()[name]
    fields = type(resource).model_fields
    return type(resource)(**{f: _value(getattr(resource, f)) for f in fields})


def _value(value: Any) -> Any:
    return value.get_value() if hasattr(value, "get_value") else value  # dg.EnvVar, and EnvVar.int's IntEnvVar


def int_setting(name: str, default: int) -> int:  # dg.EnvVar.int is an int (IntEnvVar)
    return dg.EnvVar.int(name) if os.environ.get(name) else default


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake (bronze, silver, gold, quarantine) and dlt's local working state."""

    root: str
    dlt_dir: str

    def lake(self) -> Lake:
        return Lake(self.root)


class LandingResource(dg.ConfigurableResource):
    """The landing zone the departments deliver to (read-only for the pipeline); a file modified less than
    `settle_seconds` ago is probably still being written and is left to a later run."""

    root: str
    settle_seconds: float = 2.0

    def landing(self) -> Landing:
        return Landing(self.root)


class WarehouseResource(dg.ConfigurableResource):
    """The analysts' DuckDB file, rebuilt aside and swapped in by the publish asset."""

    path: str

    def publish(
        self, store: Lake, docs: dict[str, TableDoc], on_orphan: Callable[[str], None] | None = None
    ) -> Published:
        return build(store, self.path, docs, on_orphan)


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go besides the lake and the log: a webhook (chat, paging) when one is set."""

    webhook_url: str = ""


class ReportResource(dg.ConfigurableResource):
    """Where a browser finds the lake's `report/` folder (`make dev` serves it and sets the URL); empty: no link."""

    base_url: str = ""

    def url_of(self, relative_path: str) -> str | None:
        return f"{self.base_url.rstrip('/')}/{relative_path}" if self.base_url.strip() else None


def resources() -> dict[str, dg.ConfigurableResource]:
    base = data_dir()
    return {
        "lake": LakeResource(
            root=setting("IOC_LAKE_DIR", os.path.join(base, "lake")),
            dlt_dir=setting("IOC_DLT_DIR", os.path.join(base, "dlt")),
        ),
        "landing": LandingResource(
            root=setting("IOC_LANDING_DIR", os.path.join(base, "landing")),
            settle_seconds=float(os.environ.get("IOC_LANDING_SETTLE_SECONDS") or 2.0),
        ),
        "warehouse": WarehouseResource(
            path=setting("IOC_WAREHOUSE_PATH", os.path.join(base, "warehouse", "ioc.duckdb"))
        ),
        "gateway": DossierGatewayResource(
            url=setting("IOC_DOSSIER_API_URL", ""),
            token=setting("IOC_DOSSIER_API_TOKEN", ""),
            page_size=int_setting("IOC_DOSSIER_API_PAGE_SIZE", 20000),
            backoff_seconds=float(os.environ.get("IOC_DOSSIER_API_BACKOFF_SECONDS") or 1.0),
            max_attempts=int_setting("IOC_DOSSIER_API_MAX_ATTEMPTS", 6),
            step_retries=int_setting("IOC_DOSSIER_API_STEP_RETRIES", 5),
            timeout_seconds=int_setting("IOC_DOSSIER_API_TIMEOUT_SECONDS", 60),
            lookback_hours=int_setting("IOC_DOSSIER_API_LOOKBACK_HOURS", 48),
            reconcile_days=int_setting("IOC_DOSSIER_API_RECONCILE_DAYS", 7),
        ),
        "pii": PiiResource(key=setting("IOC_PII_KEY", ""), mode=setting("IOC_MODE", "production")),
        "alerts": AlertsResource(webhook_url=setting("IOC_ALERT_WEBHOOK_URL", "")),
        "report": ReportResource(base_url=setting("IOC_REPORT_BASE_URL", "")),
    }


class DossierGatewayResource(dg.ConfigurableResource):
    """The provincial data-sharing gateway's dossier API; with no URL, the export files are read."""

    url: str = ""
    token: str = ""
    page_size: int = 20000
    backoff_seconds: float = 1.0
    max_attempts: int = 6  # requests of one page before the load fails
    step_retries: int = 5  # then the step is retried this often (NETWORK_RETRY's delays)
    timeout_seconds: int = 60  # to connect, and between two bytes of an answer
    lookback_hours: int = 48  # asked again before the newest version loaded: late backdated versions
    reconcile_days: int = 7  # counts per month compared with the gateway's this often (0: every load)

    @property
    def configured(self) -> bool:
        """A gateway URL is set (otherwise the dossiers come from the export files). The HTTP client is
        the dossier source's (`sources.dossiers.Gateway.from_settings`): resources know no feed's client."""
        return bool(self.url.strip())


class PiiResource(dg.ConfigurableResource):
    """The secret of the applicants' pseudonyms, and the mode that says whether a run may go without it.

    Checked when a run that needs it starts: in production mode, no key, no run (see ioc_pipeline/pii.py).
    """

    key: str = ""
    mode: str = "production"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.hmac_key()

    def hmac_key(self) -> bytes:
        return resolve_key(self.key, self.mode)
