"""Personal data of applicants: replaced by a keyed pseudonym before anything is written.

    ChuHoSo {HoTen, SoGiayTo, SoDienThoai, DiaChi} ──► applicant_id = HMAC-SHA256(IOC_PII_KEY, citizen ID)

Under Vietnam's personal-data-protection rules (Decree 13/2023) an applicant's name, ID number,
phone and address must not reach the lake, the warehouse, logs or Dagster metadata. The source
keeps only `applicant_id`, the first 128 bits of an HMAC of the normalised 12-digit citizen ID:
the same person gets the same id in every delivery (repeat applicants can be counted), and nobody
without the key can test a guessed ID number against it (a plain hash of a 12-digit number can be
reversed by trying them all).

The mode (`IOC_MODE`) decides what a missing key means:
- `production` (the default): a run that needs the key refuses to start without one, with the public
  sample key, or with a key of obviously low entropy (shorter than 16 characters, or fewer than 8
  distinct characters: `________________`, `aaaaaaaaaaaaaaaa`, `abababababababab`);
- `sample` (what `make run`, `make dev` and the tests set): a fixed, public development key is
  used, so the sample delivery runs on a fresh clone. Sample pseudonyms protect nothing.
"""

from __future__ import annotations

import re
from hashlib import sha256

import polars as pl

MODES = ("production", "sample")
SAMPLE_KEY = "ioc-sample-key-not-secret"  # public on purpose: only for the sample and development
MIN_KEY_LENGTH = 16
MIN_KEY_DISTINCT = 8  # distinct characters of a production key (a hex token of 16+ characters has about 15)
PSEUDONYM_HEX = 32  # 128 bits


class PiiKeyError(RuntimeError):
    """The pipeline was asked to handle personal data without a usable key."""


def resolve_key(key: str | None, mode: str | None) -> bytes:
    """The HMAC key to use, or a clear refusal (the message never contains the key)."""
    mode = (mode or "production").strip().lower()
    if mode not in MODES:
        raise PiiKeyError(f"IOC_MODE={mode!r} is not one of {', '.join(MODES)}")
    key = (key or "").strip()
    if not key:
        if mode == "sample":
            return SAMPLE_KEY.encode()
        raise PiiKeyError(
            "IOC_PII_KEY is not set: the dossier feed carries applicants' personal data and is only "
            "ingested with a secret pseudonymisation key (at least 16 characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`). For the sample delivery and "
            "development, set IOC_MODE=sample instead (as `make run` does)."
        )
    if len(key) < MIN_KEY_LENGTH:
        raise PiiKeyError(f"IOC_PII_KEY is too short: use at least {MIN_KEY_LENGTH} characters")
    if mode == "production":
        advice = "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
        if key == SAMPLE_KEY:
            raise PiiKeyError(
                f"IOC_PII_KEY is the public sample key: production pseudonyms need a secret key ({advice})"
            )
        if len(set(key)) < MIN_KEY_DISTINCT:
            raise PiiKeyError(
                f"IOC_PII_KEY has fewer than {MIN_KEY_DISTINCT} distinct characters: a key of such low entropy "
                f"can be guessed ({advice})"
            )
    return key.encode()


_NOT_DIGIT = re.compile(r"\D")


def normalise_citizen_id(value: str | None) -> str | None:
    """Digits only; an 11-digit number is a 12-digit ID that lost its leading zero as a JSON number."""
    if value is None:
        return None
    digits = _NOT_DIGIT.sub("", value)
    if not digits:
        return None
    return digits.zfill(12) if len(digits) == 11 else digits


_KNOWN: dict[bytes, dict[str, str | None]] = {}  # key -> delivered ID -> pseudonym, for this process
_KNOWN_MAX = 500_000  # about 120 MB at most; a dossier's versions repeat its applicant's ID


def pseudonymise(ids: pl.Series, key: bytes) -> pl.Series:
    """The pseudonym of every citizen ID: the first 128 bits (hex) of HMAC-SHA256(key, normalised ID), or
    null when the value holds no digit. The only implementation (the source calls it on every page and
    batch): computed once per distinct ID and remembered for the process (a dossier's versions come in
    different pages and batches), with the HMAC's inner and outer hash states prepared once (RFC 2104; a
    third of the cost per ID)."""
    block = (sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner_base, outer_base = sha256(bytes(b ^ 0x36 for b in block)), sha256(bytes(b ^ 0x5C for b in block))
    known = _KNOWN.setdefault(key, {})
    if len(known) > _KNOWN_MAX:
        known.clear()
    distinct = ids.unique().drop_nulls()
    mapping = {value: known[value] for value in distinct.to_list() if value in known}
    for value in distinct.to_list():
        if value in mapping:
            continue
        normalised = normalise_citizen_id(value)
        if normalised is None:
            mapping[value] = known[value] = None
            continue
        inner, outer = inner_base.copy(), outer_base.copy()
        inner.update(normalised.encode())
        outer.update(inner.digest())
        mapping[value] = known[value] = outer.hexdigest()[:PSEUDONYM_HEX]
    return ids.replace_strict(mapping, default=None, return_dtype=pl.String)
