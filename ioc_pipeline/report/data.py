"""What the IOC report shows, read from the published warehouse (read-only) into plain rows.

    warehouse: gold.*, silver.bts_sites, silver.admin_units, ops.feed_status ──load()──► ReportData

Only gold tables, the BTS sites and the administrative units are read: nothing that could hold
personal data. A feed not delivered yet has no table: its section is left out, never shown as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from ioc_pipeline.warehouse import connect

Row = dict[str, Any]

# Technologies from best to worst: a site is coloured by the best it offers.
TECHNOLOGIES = ("5G", "4G", "3G", "2G")


@dataclass
class ReportData:
    """Everything the page needs, as lists of rows (None: the table is not in the warehouse)."""

    snapshot: date | None
    tables: set[str]
    scorecard: list[Row] = field(default_factory=list)  # every indicator and snapshot (the history)
    kpis_monthly: list[Row] | None = None
    agencies_latest: list[Row] | None = None
    agencies_month: date | None = None
    sites: list[Row] | None = None
    communes: list[Row] = field(default_factory=list)  # pre-2025 communes of the province, with centroids
    gaps: list[Row] | None = None
    coverage_by_new_unit: list[Row] | None = None
    postal_by_new_unit: list[Row] | None = None
    postal_by_commune: list[Row] | None = None
    feed_status: list[Row] | None = None


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[Row]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {f"{s}.{t}" for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}


def load(warehouse_path: str) -> ReportData:
    with connect(warehouse_path, read_only=True) as con:
        return read(con)


def read(con: duckdb.DuckDBPyConnection) -> ReportData:
    tables = _tables(con)
    has = tables.__contains__
    data = ReportData(snapshot=None, tables=tables)
    if has("gold.ioc_scorecard"):
        data.scorecard = _rows(
            con,
            "select indicator_code, indicator_name_vi, value, unit, as_of_date, source_asset "
            "from gold.ioc_scorecard order by indicator_code, as_of_date",
        )
        data.snapshot = max((r["as_of_date"] for r in data.scorecard), default=None)
    if has("gold.public_service_kpis_monthly"):
        data.kpis_monthly = _rows(con, "select * from gold.public_service_kpis_monthly order by month")
    if has("gold.public_service_kpis_by_agency_monthly"):
        newest = con.execute("select max(month) from gold.public_service_kpis_by_agency_monthly").fetchone()
        data.agencies_month = newest[0] if newest else None
        data.agencies_latest = _rows(
            con,
            "select * from gold.public_service_kpis_by_agency_monthly "
            "where month = (select max(month) from gold.public_service_kpis_by_agency_monthly) order by agency",
        )
    if has("silver.bts_sites"):
        data.sites = _rows(
            con,
            "select site_id, longitude, latitude, commune_name, district_name, new_unit_name, "
            "array_to_string(technologies, ', ') as technologies, array_to_string(carriers, ', ') as carriers, "
            "stations, case when has_5g then '5G' when has_4g then '4G' when has_3g then '3G' "
            "when has_2g then '2G' else 'other' end as best_technology "
            "from silver.bts_sites where longitude is not null and latitude is not null order by site_id",
        )
    if has("silver.admin_units"):
        data.communes = _rows(
            con,
            "select c.unit_code, c.unit_name, d.unit_name as district_name, c.latitude, c.longitude "
            "from silver.admin_units c join silver.admin_units d "
            "on d.unit_code = c.parent_code and d.era = c.era and d.level = 'district' "
            "where c.era = 'pre_2025' and c.level = 'commune' and c.latitude is not null order by c.unit_code",
        )
    if has("gold.telecom_coverage_gaps"):
        data.gaps = _rows(
            con,
            "select * from gold.telecom_coverage_gaps where as_of_date = "
            "(select max(as_of_date) from gold.telecom_coverage_gaps) order by level, district_name, unit_name",
        )
    if has("gold.telecom_coverage_by_new_unit"):
        data.coverage_by_new_unit = _rows(
            con,
            "select * from gold.telecom_coverage_by_new_unit "
            "where as_of_date = (select max(as_of_date) from gold.telecom_coverage_by_new_unit) order by new_unit_name",
        )
    if has("gold.postal_network_by_new_unit"):
        data.postal_by_new_unit = _rows(
            con,
            "select * exclude (old_commune_codes, enterprise_names) from gold.postal_network_by_new_unit "
            "where as_of_date = (select max(as_of_date) from gold.postal_network_by_new_unit) "
            "order by service_points desc, new_unit_name",
        )
    if has("gold.postal_network_by_commune"):
        data.postal_by_commune = _rows(
            con,
            "select * exclude (enterprise_names) from gold.postal_network_by_commune "
            "where as_of_date = (select max(as_of_date) from gold.postal_network_by_commune) "
            "order by district_name, commune_name",
        )
    if has("ops.feed_status"):
        rows = _rows(con, "select * from ops.feed_status")
        data.feed_status = sorted(rows, key=lambda r: (str(r.get("feed") or ""), str(r.get("carrier") or "")))
    return data
