"""Feed 1 of the landing-zone contract: the administrative procedure catalog.

    landing/procedures/tthc_YYYYMMDD.{json,xlsx} ──dlt──► bronze/procedures

The province's export of the national database on administrative procedures, one snapshot a
file; the newest snapshot is the catalog in force.
"""

from __future__ import annotations

from ioc_pipeline.sources.files import Feed, contract_feed

FEED = contract_feed(
    Feed(
        table="procedures",
        patterns=("procedures/tthc_*.json", "procedures/tthc_*.xlsx"),
        columns={
            "MaTTHC": "procedure_code",
            "TenTTHC": "procedure_name",
            "LinhVuc": "sector",
            "CapThucHien": "tiers",
            "CoQuanThucHien": "agency",
            "MucDoDVC": "service_level",
            "DVCTrucTuyen": "online_class",
            "NgayCapNhat": "updated_at",
            # the same fields as the national portal's spreadsheet export heads them
            "Mã TTHC": "procedure_code",
            "Tên TTHC": "procedure_name",
            "Lĩnh vực": "sector",
            "Cấp thực hiện": "tiers",
            "Cơ quan thực hiện": "agency",
            "Mức độ DVC": "service_level",
            "DVC trực tuyến": "online_class",
            "Ngày cập nhật": "updated_at",
        },
        required=("procedure_code", "procedure_name", "sector", "tiers", "agency", "service_level"),
    )
)
