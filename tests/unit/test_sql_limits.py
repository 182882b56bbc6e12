"""Limits checked in the unit the database counts: UTF-16 code units for NVARCHAR, INT for serials.

SQLite stores any length, SQL Server's NVARCHAR(n) holds n UTF-16 code units: validation must
reject what SQL Server would, and accept exactly up to the limit. The values at the limits are
stored and read back by tests/unit/test_store.py, which tests/sqlserver runs on SQL Server too.
"""

from __future__ import annotations

import pytest

from shared.csv_input import parse_products
from shared.errors import ValidationError
from shared.models import ProductRow
from shared.sql_limits import INT_MAX, PRODUCT_NAME_UNITS, URL_UNITS, too_long, truncate_utf16, utf16_units
from shared.store import MAX_ERROR_CHARS

EMOJI = "\N{GRINNING FACE}"  # outside the BMP: two UTF-16 code units
UMLAUT = "\N{LATIN SMALL LETTER U WITH DIAERESIS}"  # inside the BMP: one


def test_utf16_units_count_surrogate_pairs() -> None:
    assert utf16_units("abc") == 3
    assert utf16_units(UMLAUT * 10) == 10
    assert utf16_units(EMOJI * 1000) == 2000
    assert utf16_units(EMOJI * 1000) == len((EMOJI * 1000).encode("utf-16-le")) // 2


def test_truncation_never_splits_a_character() -> None:
    text = "a" + EMOJI * 10
    assert truncate_utf16(text, 4) == "a" + EMOJI  # a third unit would split the second emoji
    assert utf16_units(truncate_utf16(EMOJI * 1000, MAX_ERROR_CHARS)) == MAX_ERROR_CHARS
    assert truncate_utf16("short", 10) == "short"
    assert too_long(EMOJI * 500, 1000) is None and too_long(EMOJI * 501, 1000) is not None


def csv(name: str, serial: str = "1", url: str = "https://img.example/a.jpg") -> bytes:
    return f'S. No.,Product Name,Input Image Urls\n{serial},"{name}","{url}"\n'.encode()


def parse(data: bytes) -> list[ProductRow]:
    return parse_products(data, max_products=10, max_urls_per_row=5)


def test_product_names_are_limited_in_utf16_units() -> None:
    assert parse(csv(EMOJI * (PRODUCT_NAME_UNITS // 2)))[0].name == EMOJI * 500
    with pytest.raises(ValidationError) as caught:
        parse(csv(EMOJI * (PRODUCT_NAME_UNITS // 2 + 1)))  # 501 characters, 1,002 units
    assert "UTF-16" in caught.value.problems[0].message and caught.value.problems[0].column == "Product Name"


def test_urls_are_limited_in_utf16_units() -> None:
    base = "https://img.example/"
    fits = base + "a" * (URL_UNITS - len(base) - 2) + EMOJI
    assert utf16_units(fits) == URL_UNITS
    over = base + "a" * (URL_UNITS - len(base) - 1) + EMOJI  # 2,048 characters, 2,049 units
    assert len(over) == URL_UNITS
    parsed = [p.urls for p in parse(csv("Mug", url=fits))]
    assert parsed == [(fits,)]
    with pytest.raises(ValidationError) as caught:
        parse(csv("Mug", url=over))
    assert "UTF-16" in caught.value.problems[0].message


@pytest.mark.parametrize("serial", ["1", "2147483647", "0002147483647", "42."])
def test_serials_within_int_are_accepted(serial: str) -> None:
    assert 1 <= parse(csv("Mug", serial=serial))[0].serial <= INT_MAX


@pytest.mark.parametrize("serial", ["2147483648", "3000000000", "9" * 5000, "0"])
def test_serials_beyond_int_are_refused(serial: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(csv("Mug", serial=serial))
    assert "from 1 to 2147483647" in caught.value.problems[0].message
