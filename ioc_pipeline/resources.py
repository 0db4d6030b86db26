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

from ioc_pipeline import provinces
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
            url=setting(GATEWAY_URL, ""),
            token=setting(GATEWAY_TOKEN, ""),
            by_province={
                code: ProvinceGateway(
                    url=setting(f"{GATEWAY_URL}_{code}", ""), token=setting(f"{GATEWAY_TOKEN}_{code}", "")
                )
                for code in provinces.codes()
                if os.environ.get(f"{GATEWAY_URL}_{code}")
            },
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


GATEWAY_URL = "IOC_DOSSIER_API_URL"
GATEWAY_TOKEN = "IOC_DOSSIER_API_TOKEN"


class ProvinceGateway(dg.Config):
    """One former province's own gateway (`IOC_DOSSIER_API_URL_<code>`, `IOC_DOSSIER_API_TOKEN_<code>`): until
    their one-stop-shop systems merge, each former province has its own."""

    url: str = ""
    token: str = ""


class DossierGatewayResource(dg.ConfigurableResource):
    """The data-sharing gateways' dossier API: a URL and token per former province (`by_province`), the unsuffixed
    pair being the single province's, or the first listed one's; a province with no URL reads its export files.
    The tuning settings are common to every gateway."""

    url: str = ""  # IOC_DOSSIER_API_URL
    token: str = ""
    by_province: dict[str, ProvinceGateway] = {}  # code -> its own URL and token, when it has one
    page_size: int = 20000
    backoff_seconds: float = 1.0
    max_attempts: int = 6  # requests of one page before the load fails
    step_retries: int = 5  # then the step is retried this often (NETWORK_RETRY's delays)
    timeout_seconds: int = 60  # to connect, and between two bytes of an answer
    lookback_hours: int = 48  # asked again before the newest version loaded: late backdated versions
    reconcile_days: int = 7  # counts per month compared with the gateway's this often (0: every load)

    def endpoint(self, code: str) -> tuple[str, str, str]:
        """Former province `code`'s gateway: (URL, token, the token's setting), the URL empty when it has none.
        Its own pair wins; the unsuffixed pair is the first listed province's (the single one's, as before
        issue 15). A token never goes to another province's URL. The HTTP client is the dossier source's
        (`sources.dossiers.Gateway.from_settings`): resources know no feed's client."""
        own = self.by_province.get(code)
        if own is not None and own.url.strip():
            return own.url.strip(), own.token, f"{GATEWAY_TOKEN}_{code}"
        if code == provinces.codes()[0] and self.url.strip():
            return self.url.strip(), self.token, GATEWAY_TOKEN
        return "", "", f"{GATEWAY_TOKEN}_{code}"

    def api_provinces(self) -> frozenset[str]:
        """The former provinces whose dossiers come through a gateway (the others' from export files)."""
        return frozenset(code for code in provinces.codes() if self.endpoint(code)[0])

    @property
    def configured(self) -> bool:
        """Some province's dossiers come through a gateway."""
        return bool(self.api_provinces())


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
