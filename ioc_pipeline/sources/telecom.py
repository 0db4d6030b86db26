"""Feed 2 of the landing-zone contract: the carriers' BTS station registers.

    landing/telecom/bts/<carrier>_YYYYMMDD.{csv,xlsx} ──dlt──► bronze/bts_stations

One file per carrier (`viettel`, `vinaphone`, `mobifone`, `vietnamobile`) and snapshot; a newer
file of a carrier supersedes its older ones (the carrier in the file name is the unit of
supersession, since some carriers' files have no `Doanh nghiệp` column).
"""

from __future__ import annotations

import re

from ioc_pipeline.sources.files import Feed, contract_feed

CARRIERS = ("viettel", "vinaphone", "mobifone", "vietnamobile")
_FILE_CARRIER = re.compile(r"(?:^|/)([^/]+?)_\d{6,8}\.[a-z]+$")


def carrier_of_file(path: str) -> str:
    """`telecom/bts/viettel_20220430.csv` -> `viettel` (lower case; the contract names four)."""
    found = _FILE_CARRIER.search(path.lower())
    return found.group(1) if found else path.rsplit("/", 1)[-1].lower()


FEED = contract_feed(
    Feed(
        table="bts_stations",
        patterns=("telecom/bts/*.csv", "telecom/bts/*.xlsx"),
        columns={
            # the contract's headers; any case, accents, NFC/NFD and spacing fold to these
            "Mã trạm": "station_code",
            "Tên trạm": "station_name",
            "Doanh nghiệp": "carrier",
            "Kinh độ": "longitude",
            "Vĩ độ": "latitude",
            "Địa chỉ": "address",
            "Xã/Phường/Thị trấn": "commune",
            "Huyện/Thị xã/Thành phố": "district",
            "Công nghệ": "technologies",
            "Mã vị trí dùng chung": "shared_site_code",
            "Ngày phát sóng": "on_air_date",
        },
        required=("station_code", "longitude", "latitude", "commune", "technologies"),
        partition_of=carrier_of_file,
    )
)
