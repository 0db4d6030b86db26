"""The contract's vocabularies, written once: the pipeline reads them, the sample generator writes them.

    vocabularies ──► assets (folded lookups: any spelling → code)     ioc_pipeline/assets/*.py
                 └─► sample generator (the official spellings)        ioc_pipeline/sample/*.py

Plain data and one folding helper: importing this module imports neither Dagster nor polars, so
the generator stays fast and the two sides can never drift apart.
"""

from __future__ import annotations

import re

from ioc_pipeline.parsing import fold

# Feed 4, one-stop-shop dossiers: the national status codes and the channels (code -> (key, name)).
DOSSIER_STATUS_NAMES = {
    1: "Mới đăng ký",
    2: "Được tiếp nhận",
    3: "Không được tiếp nhận",
    4: "Đang xử lý",
    5: "Yêu cầu bổ sung",
    6: "Yêu cầu thực hiện nghĩa vụ tài chính",
    7: "Công dân rút hồ sơ",
    8: "Dừng xử lý",
    9: "Đã xử lý xong",
    10: "Đã trả kết quả",
}
DOSSIER_CHANNELS = {1: ("in_person", "Trực tiếp"), 2: ("online", "Trực tuyến"), 3: ("postal", "Bưu chính công ích")}

# Feed 3, the postal network: enterprise states, licence scopes, service point types (key -> official name).
ENTERPRISE_STATUS_NAMES = {"active": "Đang hoạt động", "suspended": "Tạm ngừng", "revoked": "Đã thu hồi"}
ENTERPRISE_STATUS_ALIASES = {"Thu hồi": "revoked"}
POSTAL_SCOPE_NAMES = {"provincial": "Nội tỉnh", "interprovincial": "Liên tỉnh", "international": "Quốc tế"}
POINT_TYPE_NAMES = {
    "post_office_1": "Bưu cục cấp 1",
    "post_office_2": "Bưu cục cấp 2",
    "post_office_3": "Bưu cục cấp 3",
    "commune_cultural_post": "Điểm Bưu điện - Văn hóa xã",
    "postal_agent": "Đại lý bưu chính",
    "transaction_point": "Điểm giao dịch",
}
POINT_TYPE_ALIASES = {"Điểm BĐ-VHX": "commune_cultural_post"}

# Feed 2, BTS registers: the technologies a station can broadcast.
TECHNOLOGIES = ("2G", "3G", "4G", "5G")


def words(text: str) -> str:
    """`fold` with punctuation as spaces, as the pipeline compares vocabulary words: `Điểm BĐ-VHX` -> `diem bd vhx`."""
    return re.sub(r"[^a-z0-9]+", " ", fold(text)).strip()


def lookup(names: dict[str, str], aliases: dict[str, str] | None = None) -> dict[str, str]:
    """Folded spelling -> key, from key -> official name (and alias -> key), in the names' order."""
    table = {words(name): key for key, name in names.items()}
    table.update({words(alias): key for alias, key in (aliases or {}).items()})
    return table
