"""A small delivery of one former province of the merged Cần Thơ city (92 old Cần Thơ, 93 Hậu Giang), as of
2022-04-30: its catalog, the four carriers' BTS registers, its postal registers and a month of dossiers.

Sóc Trăng (94) keeps the committed sample (the founding report's figures, `sample/__main__.py`); this
writer is for the other former provinces, so one deployment can be run on three provinces' deliveries.
Every place is one of the province's own communes, named as the package names it (with its district),
at its centroid: the names resolve, the coordinates fall inside the province. Nothing is meant to be
refused; `figures(code, seed)` is the truth a test compares the pipeline with.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from ioc_pipeline.sample.places import offset

AS_OF = date(2022, 4, 30)
CARRIERS = ("viettel", "vinaphone", "mobifone", "vietnamobile")
TECHNOLOGIES = (("2G", "3G", "4G"), ("3G", "4G"), ("2G", "3G"), ("4G",), ("2G",))
SECTORS = ("Hộ tịch", "Đất đai", "Tư pháp", "Xây dựng", "Giáo dục và Đào tạo")
TIERS = ("Cấp tỉnh", "Cấp huyện", "Cấp xã")
POINT_TYPES = ("Bưu cục cấp 2", "Bưu cục cấp 3", "Điểm Bưu điện - Văn hóa xã", "Đại lý bưu chính")
PROCEDURES = 40
DOSSIERS = 60
COMMUNES = 12  # communes with sites and service points (the first ones, by code, whose names resolve)


@dataclass(frozen=True)
class Place:
    commune: str  # official name, "Phường I"
    district: str  # official name, "Thành phố Vị Thanh"
    lon: float
    lat: float


def places(code: str) -> list[Place]:
    """The province's communes whose official name, with its district, resolves to that very commune
    (a name shared by two communes of one district is left out), by code."""
    from ioc_pipeline.units import UnitResolver, admin_units

    units = admin_units((code,)).filter(era="pre_2025", province_code=code)
    districts = {u["unit_code"]: u["unit_name"] for u in units.filter(level="district").to_dicts()}
    resolver = UnitResolver(code)
    communes = units.filter(level="commune").sort("unit_code")
    shared = communes.filter(pl.struct("longitude", "latitude").is_duplicated())["unit_code"].to_list()
    out = []
    for u in communes.to_dicts():
        district = districts[u["parent_code"]]
        if u["unit_code"] in shared or u["longitude"] is None:
            continue  # two communes at one centroid in the package: their sites would be one
        if resolver.resolve(u["unit_name"], district).unit_code == u["unit_code"]:
            out.append(Place(u["unit_name"], district, u["longitude"], u["latitude"]))
    return out


def _bare(code: str) -> str:
    """`Tỉnh Hậu Giang` -> `Hậu Giang`: the province's name in agencies' and enterprises' names."""
    from ioc_pipeline.units import province_name

    name = province_name(code)
    return name.split(" ", 1)[1] if name.startswith("Tỉnh ") else name.removeprefix("Thành phố ")


def _stations(code: str, seed: int) -> list[dict[str, str]]:
    """Three sites per commune; each site carries one station of one or two carriers (a shared mast)."""
    rng = random.Random(f"{seed}:{code}:bts")
    rows = []
    for c, place in enumerate(places(code)[:COMMUNES]):
        for s in range(3):
            lon, lat = offset(place.lon, place.lat, 120.0 * (s + 1), 2.1 * s)  # sites 120 m apart and more
            carriers = rng.sample(CARRIERS, 2 if s == 0 else 1)
            tech = TECHNOLOGIES[(c + s) % len(TECHNOLOGIES)]
            for carrier in carriers:
                rows.append(
                    {
                        "carrier": carrier,
                        "site": f"{c}:{s}",
                        "Mã trạm": f"{carrier[:3].upper()}_{code}_{c:02d}{s}",
                        "Tên trạm": f"{place.commune} {s + 1}",
                        "Doanh nghiệp": carrier.capitalize(),
                        "Kinh độ": f"{lon:.6f}",
                        "Vĩ độ": f"{lat:.6f}",
                        "Xã/Phường/Thị trấn": place.commune,
                        "Huyện/Thị xã/Thành phố": place.district,
                        "Công nghệ": ", ".join(tech),
                        "Mã vị trí dùng chung": f"VT{code}{c:02d}{s}" if len(carriers) > 1 else "",
                        "Ngày phát sóng": f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2020",
                    }
                )
    return rows


def figures(code: str, seed: int) -> dict[str, int]:
    """What the pipeline must find in this delivery (scorecard indicator codes -> values)."""
    stations = _stations(code, seed)
    sites = {r["site"]: r["Công nghệ"] for r in stations}
    levels = [_level(code, seed, i) for i in range(PROCEDURES)]
    return {
        "procedures_total": PROCEDURES,
        "procedures_level_4": levels.count(4),
        "bts_sites": len(sites),
        "bts_sites_4g": sum("4G" in t for t in sites.values()),
        "postal_enterprises": 2,
        "postal_service_points": len(places(code)[:COMMUNES]) * 2,
        "dossiers_received": DOSSIERS,  # all received in April 2022, the latest complete month
    }


def _level(code: str, seed: int, i: int) -> int:
    return random.Random(f"{seed}:{code}:procedure:{i}").choice((2, 3, 3, 4))


def _csv(path: Path, rows: list[dict[str, str]], headers: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=headers, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write(out: Path, code: str, seed: int, scale: float | None = None, months: int = 12) -> list[Path]:
    """Write the province's delivery under `out` (its landing folder: the landing root, or `<root>/<code>`);
    with `scale`, its dossiers are the benchmark's (about `scale` million versions a year over `months`, the
    scaled generator's shapes and habits) for its own catalog and units."""
    name = _bare(code)
    written = []
    catalog = [
        {
            "MaTTHC": f"{1 + i % 3}.{int(code) * 10000 + i:06d}",
            "TenTTHC": f"Thủ tục {SECTORS[i % len(SECTORS)].lower()} số {i + 1}",
            "LinhVuc": SECTORS[i % len(SECTORS)],
            "CapThucHien": TIERS[i % len(TIERS)],
            "CoQuanThucHien": f"Sở Tư pháp {name}" if i % 2 else f"UBND {name}",
            "MucDoDVC": str(_level(code, seed, i)),
            "DVCTrucTuyen": {4: "Toàn trình", 3: "Một phần"}.get(_level(code, seed, i), ""),
            "NgayCapNhat": f"{AS_OF:%d/%m/%Y}",
        }
        for i in range(PROCEDURES)
    ]
    path = out / "procedures" / f"tthc_{AS_OF:%Y%m%d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(catalog, ensure_ascii=False, indent=1), encoding="utf-8")
    written.append(path)

    stations = _stations(code, seed)
    headers = [h for h in stations[0] if h not in ("carrier", "site")]
    for carrier in CARRIERS:
        rows = [r for r in stations if r["carrier"] == carrier]
        written.append(_csv(out / "telecom" / "bts" / f"{carrier}_{AS_OF:%Y%m%d}.csv", rows, headers))

    taxes = [f"{int(code) * 100 + 18:04d}{i:06d}" for i in (1, 2)]
    enterprises = [
        {
            "Tên doanh nghiệp": f"Bưu điện {name}" if i == 0 else f"Công ty chuyển phát {name}",
            "Mã số thuế": tax,
            "Số giấy phép": f"{100 + i}/GP-BTTTT",
            "Ngày cấp": "15/03/2019",
            "Phạm vi": "Nội tỉnh",
            "Trạng thái": "Đang hoạt động",
        }
        for i, tax in enumerate(taxes)
    ]
    written.append(_csv(out / "postal" / f"enterprises_{AS_OF:%Y%m%d}.csv", enterprises, list(enterprises[0])))
    points = [
        {
            "Mã điểm": f"BC{code}{c:02d}{k}",
            "Tên điểm phục vụ": f"Điểm phục vụ {place.commune}",
            "Loại điểm": POINT_TYPES[(c + k) % len(POINT_TYPES)],
            "Mã số thuế DN": taxes[k],
            "Xã/Phường/Thị trấn": place.commune,
            "Huyện/Thị xã/Thành phố": place.district,
            "Kinh độ": f"{place.lon:.6f}",
            "Vĩ độ": f"{place.lat:.6f}",
        }
        for c, place in enumerate(places(code)[:COMMUNES])
        for k in range(2)
    ]
    written.append(_csv(out / "postal" / f"service_points_{AS_OF:%Y%m%d}.csv", points, list(points[0])))
    if scale is None:
        written.append(_dossiers(out, code, seed, catalog))
    else:
        from ioc_pipeline.sample import dossiers

        own = dossiers.context(seed, code, catalog)
        written.extend(dossiers.write_scaled(out, seed + int(code), scale, months, own))
    return written


def _dossiers(out: Path, code: str, seed: int, catalog: list[dict[str, str]]) -> Path:
    """A month of dossiers (April 2022), one version each; the applicants are invented."""
    rng = random.Random(f"{seed}:{code}:dossiers")
    path = out / "public_service" / "dossiers_202204.ndjson"
    path.parent.mkdir(parents=True, exist_ok=True)
    communes = places(code)[:COMMUNES]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(DOSSIERS):
            received = datetime(2022, 4, 1, 8) + timedelta(days=rng.randrange(25), minutes=rng.randrange(480))
            due = received + timedelta(days=10)
            finished = received + timedelta(days=rng.randrange(3, 14)) if i % 5 else None
            record = {
                "MaHoSo": f"{code}-2204-{i:05d}",
                "MaTTHC": catalog[i % len(catalog)]["MaTTHC"],
                "DonViXuLy": catalog[i % len(catalog)]["CoQuanThucHien"],
                "DonViHanhChinh": communes[i % len(communes)].commune + ", " + communes[i % len(communes)].district,
                "KenhThucHien": rng.choice(("1", "2")),
                "NgayTiepNhan": received.isoformat(),
                "NgayHenTra": due.isoformat(),
                "NgayKetThucXuLy": finished.isoformat() if finished else None,
                "NgayTra": finished.isoformat() if finished else None,
                "TrangThaiHoSo": "10" if finished else "4",
                "SoLanBoSung": 0,
                "DuocThanhToanTrucTuyen": rng.random() < 0.3,
                "HoSoCoThanhPhanSoHoa": rng.random() < 0.5,
                "CoKetQuaDienTu": bool(finished) and rng.random() < 0.5,
                "ChuHoSo": {
                    "HoTen": f"Người nộp {i}",
                    "SoGiayTo": f"0{int(code):02d}{rng.randrange(10**9):09d}",
                    "SoDienThoai": f"09{rng.randrange(10**8):08d}",
                    "DiaChi": communes[i % len(communes)].commune,
                },
                "NgayCapNhat": (finished or received).isoformat(),
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
