"""Sample delivery of the procedure catalog: Sóc Trăng as of 2022-04-30, the founding report's figures.

1,843 procedures of at least level 2 (560 at level 2, 312 at level 3, 971 at level 4), delivered as
JSON; an older snapshot (2022-03-31) as an xlsx export with title rows above the header, which the
newer one supersedes; and `BAD_ROWS`, one or more rows of each kind the gate refuses.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

from ioc_pipeline.sample.variations import date_text, header, maybe_nfd

AS_OF = date(2022, 4, 30)
LEVEL_COUNTS = {2: 560, 3: 312, 4: 971}
PREVIOUS_SNAPSHOT = date(2022, 3, 31)

SECTORS = {
    "Đất đai": "Sở Tài nguyên và Môi trường",
    "Môi trường": "Sở Tài nguyên và Môi trường",
    "Hộ tịch": "Sở Tư pháp",
    "Chứng thực": "Sở Tư pháp",
    "Xây dựng": "Sở Xây dựng",
    "Giáo dục và Đào tạo": "Sở Giáo dục và Đào tạo",
    "Y tế": "Sở Y tế",
    "Lao động, Tiền lương": "Sở Lao động - Thương binh và Xã hội",
    "Người có công": "Sở Lao động - Thương binh và Xã hội",
    "Đường bộ": "Sở Giao thông vận tải",
    "Công thương": "Sở Công Thương",
    "Trồng trọt": "Sở Nông nghiệp và Phát triển nông thôn",
    "Văn hóa": "Sở Văn hóa, Thể thao và Du lịch",
    "Du lịch": "Sở Văn hóa, Thể thao và Du lịch",
    "Bưu chính": "Sở Thông tin và Truyền thông",
    "Xuất bản, In và Phát hành": "Sở Thông tin và Truyền thông",
    "Thành lập và hoạt động doanh nghiệp": "Sở Kế hoạch và Đầu tư",
    "Quản lý công sản": "Sở Tài chính",
    "Tôn giáo": "Sở Nội vụ",
    "Khoa học và Công nghệ": "Sở Khoa học và Công nghệ",
}
TIER_SETS = [
    ("Cấp tỉnh",),
    ("Cấp tỉnh",),
    ("Cấp tỉnh",),
    ("Cấp huyện",),
    ("Cấp xã",),
    ("Cấp tỉnh", "Cấp huyện"),
    ("Cấp huyện", "Cấp xã"),
    ("Cấp tỉnh", "Cấp huyện", "Cấp xã"),
]
ACTIONS = ["Cấp", "Cấp lại", "Gia hạn", "Điều chỉnh", "Thu hồi", "Đăng ký", "Xác nhận", "Công nhận", "Thẩm định"]
OBJECTS = ["giấy phép", "giấy chứng nhận", "chứng chỉ hành nghề", "quyết định", "hồ sơ", "văn bản chấp thuận"]
FIELDS = ["MaTTHC", "TenTTHC", "LinhVuc", "CapThucHien", "CoQuanThucHien", "MucDoDVC", "DVCTrucTuyen", "NgayCapNhat"]
XLSX_HEADERS = {
    "MaTTHC": "Mã TTHC",
    "TenTTHC": "Tên TTHC",
    "LinhVuc": "Lĩnh vực",
    "CapThucHien": "Cấp thực hiện",
    "CoQuanThucHien": "Cơ quan thực hiện",
    "MucDoDVC": "Mức độ DVC",
    "DVCTrucTuyen": "DVC trực tuyến",
    "NgayCapNhat": "Ngày cập nhật",
}

# Rows the gate must refuse, each with the rule it breaks (the tests read this list).
BAD_ROWS: list[tuple[str, dict[str, object]]] = [
    ("procedure_code_pattern", {"MaTTHC": "1.23"}),
    ("procedure_code_pattern", {"MaTTHC": "TTHC-0042"}),
    ("procedure_code_required", {"MaTTHC": ""}),
    ("procedure_code_unique", {"MaTTHC": "2.999001"}),
    ("procedure_code_unique", {"MaTTHC": "2.999001"}),
    ("procedure_name_required", {"TenTTHC": "  "}),
    ("sector_required", {"LinhVuc": "N/A"}),
    ("agency_required", {"CoQuanThucHien": None}),
    ("tiers_required", {"CapThucHien": "-"}),
    ("tiers_known", {"CapThucHien": "Cấp tỉnh; Cấp thôn"}),
    ("service_level_required", {"MucDoDVC": ""}),
    ("service_level_in_set", {"MucDoDVC": "1"}),
    ("service_level_in_set", {"MucDoDVC": "Mức độ 1"}),
    ("service_level_in_set", {"MucDoDVC": 5}),
    ("online_class_known", {"DVCTrucTuyen": "Trực tuyến một nửa"}),
    ("updated_at_date", {"NgayCapNhat": "31/02/2022"}),
]


def _level_text(rng: random.Random, level: int) -> object:
    return rng.choice([level, str(level), f"Mức độ {level}", f"DVC mức độ {level}"])


def _online_class(rng: random.Random, level: int) -> str:
    if rng.random() < 0.4:
        return {4: "Toàn trình", 3: "Một phần"}.get(level, "")
    return ""


def catalog(rng: random.Random) -> list[dict[str, object]]:
    """The 1,843 valid procedures, in a shuffled order, with the contract's spelling variations."""
    levels = [level for level, n in LEVEL_COUNTS.items() for _ in range(n)]
    rng.shuffle(levels)
    codes = rng.sample(range(1000, 990000), len(levels))  # 99xxxx is left to BAD_ROWS
    sectors = list(SECTORS)
    rows = []
    for i, (level, number) in enumerate(zip(levels, codes, strict=True)):
        sector = rng.choice(sectors)
        tiers = rng.choice(TIER_SETS)
        agency = (
            SECTORS[sector] if "Cấp tỉnh" in tiers else ("UBND cấp huyện" if "Cấp huyện" in tiers else "UBND cấp xã")
        )
        rows.append(
            {
                "MaTTHC": f"{rng.choice('123')}.{number:06d}",
                "TenTTHC": maybe_nfd(
                    rng, f"{rng.choice(ACTIONS)} {rng.choice(OBJECTS)} lĩnh vực {sector.lower()} ({i + 1})"
                ),
                "LinhVuc": maybe_nfd(rng, sector),
                "CapThucHien": rng.choice(["; ", ";", ", "]).join(tiers),
                "CoQuanThucHien": maybe_nfd(rng, agency),
                "MucDoDVC": _level_text(rng, level),
                "DVCTrucTuyen": _online_class(rng, level),
                "NgayCapNhat": date_text(rng, AS_OF - timedelta(days=rng.randrange(0, 900))),
            }
        )
    return rows


def bad_rows(rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for n, (_, change) in enumerate(BAD_ROWS):
        row: dict[str, object] = {
            "MaTTHC": f"3.{990000 + n:06d}",
            "TenTTHC": f"Thủ tục lỗi mẫu {n + 1}",
            "LinhVuc": "Hộ tịch",
            "CapThucHien": "Cấp xã",
            "CoQuanThucHien": "UBND cấp xã",
            "MucDoDVC": "3",
            "DVCTrucTuyen": "",
            "NgayCapNhat": "15/04/2022",
        }
        row.update(change)
        rows.append(row)
    return rows


def write(out: Path, seed: int) -> list[Path]:
    rng = random.Random(seed)
    folder = out / "procedures"
    folder.mkdir(parents=True, exist_ok=True)
    good = catalog(rng)
    rows = good + bad_rows(rng)
    for row in rng.sample(rows, 40):
        row["GhiChu"] = "Cột thêm của đơn vị"  # an extra column: kept in bronze, ignored later
    order = list(range(len(rows)))
    rng.shuffle(order)
    newest = folder / f"tthc_{AS_OF:%Y%m%d}.json"
    newest.write_text(json.dumps([rows[i] for i in order], ensure_ascii=False, indent=1), encoding="utf-8")
    older = folder / f"tthc_{PREVIOUS_SNAPSHOT:%Y%m%d}.xlsx"
    _write_xlsx(older, [{k: v for k, v in r.items() if k != "GhiChu"} for r in good[:1790]], rng)
    return [older, newest]


def _write_xlsx(path: Path, rows: list[dict[str, object]], rng: random.Random) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "TTHC"
    sheet.append(["DANH MỤC THỦ TỤC HÀNH CHÍNH TỈNH SÓC TRĂNG"])
    sheet.append([f"(Dữ liệu đến ngày {PREVIOUS_SNAPSHOT:%d/%m/%Y})"])
    sheet.append([])
    sheet.append([header(rng, XLSX_HEADERS[f]) for f in FIELDS])
    for row in rows:
        sheet.append([row.get(f) for f in FIELDS])
    book.save(path)
