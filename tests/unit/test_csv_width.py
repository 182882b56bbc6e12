"""CSV parsing stays linear in the header's width, and the width is capped (issue 11, finding 4).

A header of 2,000 columns, named only up to the URL column, made every row scan the whole header
again (to decide whether the row's extra cells are spilled URLs): a 1.1 MB upload took 51 s. The
work is counted here in Python line events (deterministic, unlike a stopwatch).
"""

from __future__ import annotations

import sys
from types import FrameType

import pytest

from shared import csv_input
from shared.csv_input import MAX_COLUMNS, parse_products
from shared.errors import ValidationError

ROWS = 300


def wide_csv(width: int, rows: int = ROWS) -> bytes:
    header = "S. No.,Product Name,Input Image Urls" + "," * (width - 3) + "\n"
    body = "".join(f"{n},P{n},https://a.example/{n}.jpg\n" for n in range(1, rows + 1))
    return (header + body).encode()


def parser_line_events(data: bytes) -> int:
    """Lines of ``shared.csv_input`` executed while parsing ``data``."""
    events = 0
    source = csv_input.__file__

    def tracer(frame: FrameType, event: str, arg: object) -> object:
        nonlocal events
        if frame.f_code.co_filename != source:
            return None
        if event == "line":
            events += 1
        return tracer

    sys.settrace(tracer)
    try:
        parse_products(data, max_products=10_000, max_urls_per_row=20)
    except ValidationError:
        pass
    finally:
        sys.settrace(None)
    return events


def test_doubling_the_header_width_does_not_double_the_work_per_row() -> None:
    narrow = parser_line_events(wide_csv(MAX_COLUMNS // 2))
    wide = parser_line_events(wide_csv(MAX_COLUMNS))
    print(f"line events: {narrow} at width {MAX_COLUMNS // 2}, {wide} at width {MAX_COLUMNS}")
    # Linear: the header's own cells add a few events each, the rows add nothing per header cell.
    assert wide - narrow < 10 * MAX_COLUMNS


def test_a_wide_header_still_parses_its_rows() -> None:
    rows = parse_products(wide_csv(MAX_COLUMNS, rows=3), max_products=10, max_urls_per_row=20)
    assert [row.urls for row in rows] == [(f"https://a.example/{n}.jpg",) for n in (1, 2, 3)]


def test_a_header_wider_than_the_cap_is_a_clear_400() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_products(wide_csv(2000), max_products=10_000, max_urls_per_row=20)
    assert caught.value.status_code == 400
    assert [p.as_dict() for p in caught.value.problems] == [
        {"line": 1, "column": None, "message": f"the header has 2000 columns, at most {MAX_COLUMNS}"}
    ]


def test_a_row_wider_than_the_cap_is_refused_with_its_line() -> None:
    data = b"S. No.,Product Name,Input Image Urls\n1,P,https://a.example/1.jpg" + b",x" * MAX_COLUMNS + b"\n"
    with pytest.raises(ValidationError) as caught:
        parse_products(data, max_products=10, max_urls_per_row=20)
    assert caught.value.problems[0].as_dict() == {
        "line": 2, "column": None, "message": f"row has {MAX_COLUMNS + 3} cells, at most {MAX_COLUMNS}"
    }
