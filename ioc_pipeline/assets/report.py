"""`report/ioc`: the IOC report, one self-contained HTML page rendered from the published warehouse.

    publish/warehouse (ioc.duckdb, read-only) ──► lake/report/ioc/<snapshot>.html and latest.html

Downstream of the publish, so every refresh that reaches the warehouse re-renders it (`make report`
does the same outside Dagster). Its materialization links to the page: the path in the lake, and
a URL when `IOC_REPORT_BASE_URL` says where the lake's `report/` folder is served (`make dev` serves
it on the next port and sets the variable).
"""

from typing import Any

import dagster as dg

from ioc_pipeline.assets.layers import OWNERS
from ioc_pipeline.policies import WAREHOUSE_HOST, pool_for
from ioc_pipeline.resources import LakeResource, ReportResource, WarehouseResource

WAREHOUSE_KEY = dg.AssetKey(["publish", "warehouse"])


@dg.asset(
    key=["report", "ioc"],
    deps=[WAREHOUSE_KEY],
    group_name="report",
    kinds={"html", "plotly"},
    owners=OWNERS,
    pool=pool_for("report", "ioc"),
    op_tags=WAREHOUSE_HOST,  # reads the warehouse file
    description="The IOC report: scorecard beside the founding report, public services, BTS map, postal network "
    "and feed states, as one offline HTML page (report/ioc/YYYY-MM-DD.html of the snapshot, and latest.html) in "
    "Vietnamese and English. The `url` in its metadata opens it (when IOC_REPORT_BASE_URL is set; `make dev` sets it).",
)
def report_ioc(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource, report: ReportResource
) -> dg.MaterializeResult:
    from ioc_pipeline.report import ioc  # plotly and duckdb: imported by this step, not with the definitions

    rendered = ioc.build(warehouse.path)
    written = ioc.write(lake.lake(), rendered)
    context.log.info(f"IOC report of {rendered.snapshot}: {written.latest_url} ({written.size_bytes:,} bytes)")
    metadata: dict[str, Any] = {}
    for name, relative in (("url", "ioc/latest.html"), ("snapshot_url", f"ioc/{rendered.snapshot}.html")):
        url = report.url_of(relative)
        if url:  # first, so the link heads the metadata on the asset's page
            metadata[name] = dg.MetadataValue.url(url)
    metadata |= {
        "path": dg.MetadataValue.path(written.latest_path or written.latest_url),
        "snapshot_file": dg.MetadataValue.path(written.snapshot_url),
        "snapshot": rendered.snapshot,
        "size_bytes": written.size_bytes,
        "charts": len(rendered.charts),
        "site_markers": rendered.site_markers,
        "sections": dg.MetadataValue.json(rendered.sections),
    }
    return dg.MaterializeResult(metadata=metadata)
