"""Product names carrying terminal escapes or bidi overrides reach the output CSV defused (finding 8).

A product name is whatever the client wrote; the output CSV is read by people in terminals and
spreadsheets. ESC [ ... m restyles a terminal (or hides text), U+202E reverses what follows so
``gpj.exe`` reads as ``exe.jpg``. Every such character becomes U+FFFD; ordinary text (accents,
emoji with joiners) is kept.
"""

from __future__ import annotations

import csv
import io

import pytest

from shared.report import output_csv
from tests.unit.test_report import image

HOSTILE_NAMES = [
    "\x1b[2J\x1b[31mSKU\x1b[0m",  # clear screen, red
    "invoice\u202egpj.exe",  # right-to-left override
    "a\u2066b\u2069c\u200fd\u061c",  # isolates and marks
    "bell\x07 nul\x00 del\x7f c1\x9b",
    "line\u2028break\nnewline\rreturn",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_control_and_bidi_characters_never_reach_the_output_csv(name) -> None:
    text = output_csv([image(0, 1, name, 0)])
    cell = list(csv.reader(io.StringIO(text)))[1][1]
    assert "\ufffd" in cell
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or 0x202A <= ord(ch) <= 0x202E
                   or 0x2066 <= ord(ch) <= 0x2069 or ch in "\u200e\u200f\u061c\u2028\u2029" for ch in cell), cell


def test_ordinary_unicode_is_kept() -> None:
    name = "Café déjà vu 👩\u200d💻 ١٢٣"
    text = output_csv([image(0, 1, name, 0)])
    assert list(csv.reader(io.StringIO(text)))[1][1] == name


def test_each_unsafe_character_becomes_exactly_one_replacement_character() -> None:
    text = output_csv([image(0, 1, "a\x1bb\u202ec", 0)])
    assert list(csv.reader(io.StringIO(text)))[1][1] == "a\ufffdb\ufffdc"
