"""Sample delivery of the postal network: Sóc Trăng as of 2022-04-30, the founding report's figures.

`postal/enterprises_20220430.xlsx`: 15 active enterprises (the report's figure), 8 suspended and
12 revoked ones that must not count, under title rows; statuses and scopes in several spellings.
`postal/service_points_20220430.csv`: 186 service points of active enterprises (the report's
figure) and 5 of suspended ones (kept in silver, not counted); `,`-separated, quoted where needed,
Vietnamese decimals, unit names in the contract's spellings. `BAD_ROWS` lists each row the gates
must refuse with the rule(s) it breaks. The enterprises and tax codes are invented.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from ioc_pipeline.sample.places import Commune, abbreviated, communes, district_spelling, offset, plain
from ioc_pipeline.sample.variations import nfd, vn_decimal
from ioc_pipeline.vocabularies import ENTERPRISE_STATUS_NAMES, POINT_TYPE_NAMES, POSTAL_SCOPE_NAMES

AS_OF = date(2022, 4, 30)
ENTERPRISES_FILE = f"postal/enterprises_{AS_OF:%Y%m%d}.xlsx"
SERVICE_POINTS_FILE = f"postal/service_points_{AS_OF:%Y%m%d}.csv"
ACTIVE, SUSPENDED, REVOKED = 15, 8, 12
SERVICE_POINTS = 186  # of active enterprises
POINTS_OF_SUSPENDED = 5

PUBLIC_OPERATOR = "Bưu điện tỉnh Sóc Trăng"
ACTIVE_NAMES = [
    PUBLIC_OPERATOR,
    "Chi nhánh Bưu chính Quân đội Sóc Trăng",
    "Công ty CP Chuyển phát nhanh Bưu điện - Chi nhánh Sóc Trăng",
    "Công ty TNHH Chuyển phát nhanh Mê Kông",
    "Công ty CP Giao vận Sông Hậu",
    "Công ty TNHH MTV Bưu chính Phú Lợi",
    "Công ty TNHH Giao hàng Ba Xuyên",
    "Công ty CP Vận chuyển Miền Tây Express",
    "Công ty TNHH Dịch vụ Chuyển phát Trần Đề",
    "Công ty TNHH Thương mại Dịch vụ Kế Sách",
    "Công ty CP Chuyển phát Nam Sông Hậu",
    "Công ty TNHH Giao nhận Vĩnh Châu",
    "Công ty TNHH Chuyển phát Đồng Bằng",
    "Công ty CP Logistics Cửu Long",
    "Công ty TNHH Giao hàng Tiện Lợi",
]
OTHER_WORDS = ["Hưng Phát", "Tân Tiến", "Phương Nam", "Hoàng Long", "Minh Châu", "Thành Đạt", "Nhật Quang",
               "An Khang", "Bảo Ngọc", "Thiên Phú", "Kim Long", "Đại Phát", "Hòa Bình", "Sao Mai", "Trường Thịnh",
               "Gia Huy", "Ngọc Lan", "Vạn Xuân", "Phúc Lộc", "Thái Sơn"]  # fmt: skip
# the official name (ioc_pipeline.vocabularies), then how clerks also write it
STATUS_SPELLINGS = {
    "active": [ENTERPRISE_STATUS_NAMES["active"], "đang hoạt động", "ĐANG HOẠT ĐỘNG"],
    "suspended": [ENTERPRISE_STATUS_NAMES["suspended"], "Tạm ngừng hoạt động"],
    "revoked": [ENTERPRISE_STATUS_NAMES["revoked"], "Đã thu hồi giấy phép"],
}
SCOPE_NAMES = POSTAL_SCOPE_NAMES
TYPE_NAMES = POINT_TYPE_NAMES
# the public operator's network, the army post's, the express post's; the other 12 share the rest
PUBLIC_NETWORK = {"post_office_1": 1, "post_office_2": 10, "post_office_3": 20, "commune_cultural_post": 70,
                  "postal_agent": 15}  # fmt: skip
SECOND_NETWORK = {"post_office_2": 2, "post_office_3": 10, "transaction_point": 12}
THIRD_NETWORK = {"post_office_3": 3, "transaction_point": 6}

ENTERPRISE_HEADERS = {
    "name": "Tên doanh nghiệp",
    "tax": "Mã số thuế",
    "licence": "Số giấy phép",
    "date": "Ngày cấp",
    "scope": "Phạm vi",
    "status": "Trạng thái",
}
POINT_HEADERS = {
    "code": "Mã điểm",
    "name": "Tên điểm phục vụ",
    "type": "Loại điểm",
    "tax": "Mã số thuế DN",
    "address": "Địa chỉ",
    "commune": "Xã/Phường/Thị trấn",
    "district": "Huyện/Thị xã/Thành phố",
    "lon": "Kinh độ",
    "lat": "Vĩ độ",
}

DISSOLVED_TAX_CODE = "2200345678"  # an enterprise whose status no one can read: refused, so are its points
# Rows the gates must refuse: (file, the rules each breaks, the change to a valid row).
BAD_ROWS: list[tuple[str, tuple[str, ...], dict[str, object]]] = [
    ("enterprises", ("enterprise_name_required",), {"name": " "}),
    ("enterprises", ("tax_code_required",), {"tax": ""}),
    ("enterprises", ("tax_code_pattern",), {"tax": "220012345"}),
    ("enterprises", ("tax_code_unique",), {"tax": "2200777001"}),
    ("enterprises", ("tax_code_unique",), {"tax": "2200777001"}),
    ("enterprises", ("licence_required",), {"licence": "", "scope": "Nội tỉnh"}),
    ("enterprises", ("licence_date_date",), {"date": "30/02/2019"}),
    ("enterprises", ("scope_known",), {"scope": "Toàn quốc"}),
    ("enterprises", ("status_known",), {"status": "Giải thể", "tax": DISSOLVED_TAX_CODE}),
    ("enterprises", ("status_required",), {"status": "-"}),
    ("service_points", ("point_code_required",), {"code": ""}),
    ("service_points", ("point_code_unique",), {"code": "950999"}),
    ("service_points", ("point_code_unique",), {"code": "950999"}),
    ("service_points", ("point_type_required",), {"type": "N/A"}),
    ("service_points", ("point_type_known",), {"type": "Bưu cục cấp 4"}),
    ("service_points", ("enterprise_tax_code_required",), {"tax": ""}),
    ("service_points", ("enterprise_exists",), {"tax": "2200999999"}),
    ("service_points", ("enterprise_exists",), {"tax": DISSOLVED_TAX_CODE}),
    ("service_points", ("unit_unknown",), {"commune": "Xã Hòa An", "district": ""}),
    ("service_points", ("unit_ambiguous",), {"commune": "Phường 2", "district": ""}),
    ("service_points", ("unit_missing",), {"commune": "-"}),
    ("service_points", ("longitude_numeric",), {"lon": "105.97.12"}),
    ("service_points", ("latitude_in_province",), {"lat": "8,950000"}),
    ("service_points", ("coordinates_complete",), {"lat": ""}),
]


@dataclass(frozen=True)
class Enterprise:
    name: str
    tax_code: str
    licence: str
    licence_date: date
    scopes: tuple[str, ...]
    status: str


@dataclass(frozen=True)
class ServicePoint:
    code: str
    name: str
    point_type: str
    tax_code: str
    commune: Commune
    lon: float | None
    lat: float | None
    address: str
    counted: bool  # its enterprise is active


@dataclass
class Design:
    enterprises: list[Enterprise]
    points: list[ServicePoint]


def _tax_code(rng: random.Random, used: set[str]) -> str:
    while True:
        code = rng.choice(["22", "22", "01", "03"]) + f"{rng.randrange(10**8):08d}"
        if rng.random() < 0.3:
            code += f"-{rng.randint(1, 30):03d}"  # a branch
        if code not in used and not code.startswith("22007770") and code != DISSOLVED_TAX_CODE:
            used.add(code)
            return code


def _enterprises(rng: random.Random) -> list[Enterprise]:
    used: set[str] = set()
    others = rng.sample(OTHER_WORDS, SUSPENDED + REVOKED)
    names = ACTIVE_NAMES + [f"Công ty TNHH Chuyển phát {w}" for w in others]
    statuses = ["active"] * ACTIVE + ["suspended"] * SUSPENDED + ["revoked"] * REVOKED
    out = []
    for i, (name, status) in enumerate(zip(names, statuses, strict=True)):
        scopes = (
            ("provincial", "interprovincial", "international")
            if i < 3
            else rng.choice(
                [
                    ("provincial",),
                    ("provincial", "interprovincial"),
                    ("interprovincial",),
                    ("interprovincial", "international"),
                ]
            )
        )
        ministry = "interprovincial" in scopes or "international" in scopes
        out.append(
            Enterprise(
                name=name,
                tax_code=_tax_code(rng, used),
                licence=f"{rng.randint(10, 999)}/GP-{'BTTTT' if ministry else 'STTTT'}",
                licence_date=date(rng.randint(2011, 2021), rng.randint(1, 12), rng.randint(1, 28)),
                scopes=scopes,
                status=status,
            )
        )
    return out


def design(seed: int) -> Design:
    """The enterprises and the service points (with the commune each stands in)."""
    rng = random.Random(seed * 31 + 5)
    enterprises = _enterprises(rng)
    places = communes()
    villages = [c for c in places if c.unit_type == "Xã"]
    towns = [c for c in places if c.unit_type != "Xã"]
    active = [e for e in enterprises if e.status == "active"]
    networks: list[tuple[Enterprise, dict[str, int]]] = [
        (active[0], PUBLIC_NETWORK),
        (active[1], SECOND_NETWORK),
        (active[2], THIRD_NETWORK),
    ]
    rest = SERVICE_POINTS - sum(sum(n.values()) for _, n in networks)
    shares = [rest // 12 + (1 if i < rest % 12 else 0) for i in range(12)]
    for enterprise, n in zip(active[3:], shares, strict=True):
        agents = rng.randint(0, n)
        networks.append((enterprise, {"transaction_point": n - agents, "postal_agent": agents}))
    suspended = [e for e in enterprises if e.status == "suspended"]
    networks += [(suspended[0], {"transaction_point": 3}), (suspended[1], {"postal_agent": POINTS_OF_SUSPENDED - 3})]

    cultural = iter(rng.sample(villages, PUBLIC_NETWORK["commune_cultural_post"]))
    points = []
    number = 0
    for enterprise, network in networks:
        for point_type, count in network.items():
            for _ in range(count):
                number += 1
                if point_type == "commune_cultural_post":
                    commune = next(cultural)
                elif point_type in ("post_office_1", "post_office_2"):
                    commune = rng.choice(
                        [c for c in towns if c.district_code == "941"] if point_type == "post_office_1" else towns
                    )
                else:
                    commune = rng.choice(towns if rng.random() < 0.5 else places)
                located = rng.random() < 0.6
                lon, lat = (
                    offset(commune.lon, commune.lat, rng.uniform(50, 250), rng.uniform(0, 6.28))
                    if located
                    else (None, None)
                )
                code = f"{950000 + number * 10}" if enterprise.name == PUBLIC_OPERATOR else f"DGD-{number:04d}"
                points.append(
                    ServicePoint(
                        code=code,
                        name=f"{TYPE_NAMES[point_type]} {commune.name if commune.bare.isdigit() else commune.bare}",
                        point_type=point_type,
                        tax_code=enterprise.tax_code,
                        commune=commune,
                        lon=lon,
                        lat=lat,
                        address=f"Ấp {rng.randint(1, 9)}" if commune.unit_type == "Xã" else f"Số {rng.randint(1, 300)}",
                        counted=enterprise.status == "active",
                    )
                )
    return Design(enterprises, points)


def _enterprise_row(e: Enterprise, rng: random.Random) -> dict[str, object]:
    return {
        "name": e.name,
        "tax": e.tax_code,
        "licence": e.licence,
        "date": rng.choice(
            [
                e.licence_date.strftime("%d/%m/%Y"),
                datetime(e.licence_date.year, e.licence_date.month, e.licence_date.day),
            ]
        ),
        "scope": rng.choice(["; ", ";", ", "]).join(SCOPE_NAMES[s] for s in e.scopes),
        "status": rng.choice(STATUS_SPELLINGS[e.status]),
    }


def _point_row(p: ServicePoint, rng: random.Random) -> dict[str, object]:
    style = rng.randrange(4)
    commune = [p.commune.name, abbreviated(p.commune, rng), plain(p.commune.name), nfd(p.commune.name)][style]
    type_name = TYPE_NAMES[p.point_type]
    if p.point_type == "commune_cultural_post" and rng.random() < 0.3:
        type_name = rng.choice(["Điểm Bưu điện – Văn hóa xã", "Điểm BĐ-VHX"])
    return {
        "code": p.code,
        "name": p.name,
        "type": nfd(type_name) if rng.random() < 0.1 else type_name,
        "tax": p.tax_code,
        "address": p.address,
        "commune": commune,
        "district": district_spelling(p.commune, rng, without_accents=style == 2),
        "lon": "" if p.lon is None else vn_decimal(p.lon, 6),
        "lat": "" if p.lat is None else vn_decimal(p.lat, 6),
    }


def write(out: Path, seed: int) -> list[Path]:
    truth = design(seed)
    rng = random.Random(seed * 31 + 6)
    folder = out / "postal"
    folder.mkdir(parents=True, exist_ok=True)
    public = truth.enterprises[0]
    places = communes()

    enterprises = [_enterprise_row(e, rng) for e in truth.enterprises]
    points = [_point_row(p, rng) for p in truth.points]
    for n, (file, _, change) in enumerate(BAD_ROWS):
        if file == "enterprises":
            row = _enterprise_row(
                Enterprise(f"Công ty TNHH Lỗi mẫu {n}", f"22009{n:05d}", f"{n}/GP-STTTT", date(2020, 1, 2),
                           ("provincial",), "active"),
                rng,
            )  # fmt: skip
            enterprises.append({**row, **change})
        else:
            commune = places[(n * 11) % len(places)]
            point = ServicePoint(f"LOI-{n:02d}", f"Điểm lỗi {n}", "postal_agent", public.tax_code, commune,
                                 *offset(commune.lon, commune.lat, 100.0, 2.0), "Ấp 1", True)  # fmt: skip
            points.append({**_point_row(point, rng), **change})
    rng.shuffle(enterprises)
    rng.shuffle(points)

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Doanh nghiep"
    sheet.append(["DANH SÁCH DOANH NGHIỆP CUNG ỨNG DỊCH VỤ BƯU CHÍNH TRÊN ĐỊA BÀN TỈNH SÓC TRĂNG"])
    sheet.append([f"(Cập nhật đến ngày {AS_OF:%d/%m/%Y})"])
    sheet.append([])
    fields = list(ENTERPRISE_HEADERS)
    sheet.append(["STT", *[ENTERPRISE_HEADERS[f] for f in fields]])
    for i, row in enumerate(enterprises, start=1):
        sheet.append([i, *[row[f] for f in fields]])
    book.save(out / ENTERPRISES_FILE)

    with (out / SERVICE_POINTS_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(POINT_HEADERS.values()))
        writer.writerows([[row[f] for f in POINT_HEADERS] for row in points])
    return [out / ENTERPRISES_FILE, out / SERVICE_POINTS_FILE]
