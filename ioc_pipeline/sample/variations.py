"""How real deliveries vary (landing-zone contract, "General rules"), for the sample generator.

Every generator draws from a seeded `random.Random`, so a sample is the same on every machine.
"""

from __future__ import annotations

import random
import unicodedata
from datetime import date, datetime


def nfd(text: str) -> str:
    """Decomposed diacritics, as some Mac/Excel exports write them."""
    return unicodedata.normalize("NFD", text)


def maybe_nfd(rng: random.Random, text: str, share: float = 0.1) -> str:
    return nfd(text) if rng.random() < share else text


def vn_decimal(value: float, digits: int) -> str:
    """`105,9712`: a comma as the decimal mark."""
    return f"{value:.{digits}f}".replace(".", ",")


def vn_thousands(value: int) -> str:
    """`1.268`: dots grouping thousands."""
    return f"{value:,}".replace(",", ".")


def date_text(rng: random.Random, day: date | datetime) -> str:
    """A date in one of the contract's forms."""
    forms = ("%d/%m/%Y", "%Y-%m-%d", "%d/%m/%Y")
    return day.strftime(rng.choice(forms))


def datetime_text(rng: random.Random, moment: datetime) -> str:
    forms = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S+07:00")
    return moment.strftime(rng.choice(forms))


def header(rng: random.Random, name: str) -> str:
    """A header as some department's spreadsheet writes it: as is, upper case without accents, or NFD."""
    choice = rng.randrange(3)
    if choice == 1:
        stripped = "".join(c for c in nfd(name.replace("đ", "d").replace("Đ", "D")) if not unicodedata.combining(c))
        return stripped.upper()
    return nfd(name) if choice == 2 else name
