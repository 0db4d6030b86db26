"""Places of old Sóc Trăng for the sample generators: communes with a placement radius, points
around their centres, and the spellings departments give unit names (landing-zone contract,
"General rules": `P.2`, `TT Kế Sách`, `X. An Hiệp`, no diacritics, NFD).
"""

from __future__ import annotations

import math
import random
import unicodedata
from dataclasses import dataclass

METRES_PER_DEGREE = math.pi * 6_371_008.8 / 180.0


@dataclass(frozen=True)
class Commune:
    code: str
    name: str  # official, "Xã An Hiệp"
    unit_type: str  # Xã, Phường, Thị trấn
    bare: str  # "An Hiệp"
    district_code: str
    district_name: str
    lat: float
    lon: float
    radius_m: float
    bare_unique: bool  # the bare name (no type) names one commune in the province
    typed_unique: bool  # the full name names one commune in the province


def communes() -> list[Commune]:
    """The 108 communes of old Sóc Trăng, from the units package, with a placement radius: 45 % of the
    distance to the nearest other centroid (so a site stays nearer its own commune's centre)."""
    from ioc_pipeline.units import admin_units

    units = admin_units().filter(era="pre_2025").to_dicts()
    districts = {u["unit_code"]: u["unit_name"] for u in units if u["level"] == "district"}
    rows = [u for u in units if u["level"] == "commune"]
    bare_names = [fold(bare_name(u["unit_name"], u["unit_type"])) for u in rows]
    typed_names = [fold(u["unit_name"]) for u in rows]
    out = []
    for u, folded_bare, folded_typed in zip(rows, bare_names, typed_names, strict=True):
        distances = [metres(u["longitude"], u["latitude"], v["longitude"], v["latitude"]) for v in rows]
        nearest = min(d for d in distances if d > 10)  # two communes share a centroid in the package
        out.append(
            Commune(
                code=u["unit_code"],
                name=u["unit_name"],
                unit_type=u["unit_type"],
                bare=bare_name(u["unit_name"], u["unit_type"]),
                district_code=u["parent_code"],
                district_name=districts[u["parent_code"]],
                lat=u["latitude"],
                lon=u["longitude"],
                radius_m=min(max(0.45 * nearest, 300.0), 2500.0),
                bare_unique=bare_names.count(folded_bare) == 1 and not folded_bare.isdigit(),
                typed_unique=typed_names.count(folded_typed) == 1,
            )
        )
    return sorted(out, key=lambda c: c.code)


def bare_name(name: str, unit_type: str) -> str:
    """`Xã An Hiệp` -> `An Hiệp`."""
    return name[len(unit_type) + 1 :]


def fold(text: str) -> str:
    """Lower case without diacritics, to compare names."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def plain(text: str) -> str:
    """Without diacritics, case kept: `Xã An Hiệp` -> `Xa An Hiep`."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine distance in metres (the sphere ioc_pipeline.sites measures on)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def offset(lon: float, lat: float, distance_m: float, bearing: float) -> tuple[float, float]:
    """The point `distance_m` from (lon, lat) towards `bearing` (radians), rounded to 6 decimals (~0.1 m)."""
    dlat = distance_m * math.cos(bearing) / METRES_PER_DEGREE
    dlon = distance_m * math.sin(bearing) / (METRES_PER_DEGREE * math.cos(math.radians(lat)))
    return round(lon + dlon, 6), round(lat + dlat, 6)


DISTRICT_ABBREVIATIONS = {"Thành phố": "TP.", "Thị xã": "TX.", "Huyện": "H."}
COMMUNE_ABBREVIATIONS = {"Phường": "P.", "Thị trấn": "TT", "Xã": "X."}


def district_type(name: str) -> str:
    return next(t for t in DISTRICT_ABBREVIATIONS if name.startswith(t + " "))


def abbreviated(commune: Commune, rng: random.Random) -> str:
    """`P.2`, `P. 2`, `TT Kế Sách`, `TT. Kế Sách`, `X. An Hiệp`."""
    short = COMMUNE_ABBREVIATIONS[commune.unit_type]
    if commune.unit_type == "Phường" and commune.bare.isdigit():
        return rng.choice([f"P.{commune.bare}", f"P. {commune.bare}", f"Phường {int(commune.bare):02d}"])
    if commune.unit_type == "Thị trấn":
        short = rng.choice(["TT", "TT."])
    return f"{short} {commune.bare}"


def district_spelling(commune: Commune, rng: random.Random, without_accents: bool = False) -> str:
    """`Huyện Kế Sách`, `H. Kế Sách`, `Kế Sách`; `TP. Sóc Trăng`, `TX. Vĩnh Châu`."""
    name = commune.district_name
    kind = district_type(name)
    bare = name[len(kind) + 1 :]
    choice = rng.choice([name, f"{DISTRICT_ABBREVIATIONS[kind]} {bare}", bare if kind == "Huyện" else name])
    return plain(choice) if without_accents else choice
