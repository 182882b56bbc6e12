"""parse_products: the brief's CSV and its variants in, every problem out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.csv_input import MAX_CELL_CHARS, MAX_PROBLEMS, parse_products
from shared.errors import PayloadTooLarge, Problem, ValidationError
from shared.models import ProductRow

HEADER = "S. No.,Product Name,Input Image Urls\n"
A = "https://example.com/a.jpg"
B = "https://example.com/b.jpg"
C = "https://example.com/c.jpg"


def parse(text: str | bytes, *, max_products: int = 100, max_urls_per_row: int = 5) -> list[ProductRow]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_products(data, max_products=max_products, max_urls_per_row=max_urls_per_row)


def problems_of(text: str | bytes, **limits: int) -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        parse(text, **limits)
    return caught.value.problems


def test_the_brief_example() -> None:
    rows = parse(HEADER + f'1.,SKU1,"{A},{B}"\n2,SKU2,"{C}"\n')
    assert rows == [
        ProductRow(line=2, serial=1, name="SKU1", urls=(A, B)),
        ProductRow(line=3, serial=2, name="SKU2", urls=(C,)),
    ]


def test_bom_crlf_blank_lines_and_header_variants() -> None:
    header = "\ufeffserial number , PRODUCT_NAME,input image URLs\r\n"
    text = header + f'\r\n1,SKU1,"{A}, {B}"\r\n\r\n2,SKU2,{C}\r\n'
    rows = parse(text)
    assert [(r.line, r.serial, r.urls) for r in rows] == [(3, 1, (A, B)), (5, 2, (C,))]


def test_spilled_urls_in_unquoted_extra_columns() -> None:
    rows = parse(HEADER + f"1,SKU1,{A},{B},{C}\n")
    assert rows[0].urls == (A, B, C)


def test_named_column_after_urls_is_not_taken_for_spilled_urls() -> None:
    rows = parse("S. No.,Product Name,Input Image Urls,Notes\n" + f'1,SKU1,"{A}",{B}\n')
    assert rows[0].urls == (A,)


def test_columns_in_another_order() -> None:
    rows = parse("Product Name,Input Image Urls,S. No.\n" + f'SKU1,"{A},{B}",7\n')
    assert rows == [ProductRow(line=2, serial=7, name="SKU1", urls=(A, B))]


def test_multiline_quoted_cell_keeps_the_starting_line() -> None:
    rows = parse(HEADER + f'1,SKU1,"{A},\n{B}"\n2,SKU2,{C}\n')
    assert [(r.line, r.urls) for r in rows] == [(2, (A, B)), (4, (C,))]


def test_name_is_stripped_and_no_final_newline_is_fine() -> None:
    rows = parse(HEADER + f"1,  Blue Mug  ,{A}")
    assert rows[0].name == "Blue Mug"


def test_every_row_problem_is_reported_with_line_and_column() -> None:
    text = HEADER + (
        f"0,SKU0,{A}\n"  # line 2: serial not positive
        f"x,SKUx,{A}\n"  # line 3: serial not an integer
        f"1,,{A}\n"  # line 4: empty name
        "2,SKU2,\n"  # line 5: no URL
        "3,SKU3,ftp://example.com/a.jpg\n"  # line 6: bad URL
        f"3,SKU3b,{A}\n"  # line 7: duplicate serial (3 was first seen on line 6)
        f'4,SKU4,"{A},{B},{C}"\n'  # line 8: too many URLs (limit 2)
    )
    found = {(p.line, p.column) : p.message for p in problems_of(text, max_urls_per_row=2)}
    assert set(found) == {
        (2, "S. No."), (3, "S. No."), (4, "Product Name"), (5, "Input Image Urls"),
        (6, "Input Image Urls"), (7, "S. No."), (8, "Input Image Urls"),
    }
    assert "line 6" in found[(7, "S. No.")]
    assert "3 image URLs" in found[(8, "Input Image Urls")]


def test_missing_columns_are_all_named() -> None:
    problems = problems_of("Name,Urls\n1,a\n")
    messages = " ".join(p.message for p in problems)
    assert "S. No." in messages and "Product Name" in messages and "Input Image Urls" in messages
    assert all(p.line == 1 for p in problems)


def test_duplicate_header_column() -> None:
    problems = problems_of("S. No.,Product Name,Product name,Input Image Urls\n1,a,b,https://x.com/\n")
    assert any("more than once" in p.message for p in problems)


@pytest.mark.parametrize(
    ("text", "word"),
    [("", "empty"), ("\n\r\n  \n", "empty"), (HEADER, "no product rows"), (HEADER + "\n,,\n", "no product")],
)
def test_empty_and_header_only(text: str, word: str) -> None:
    assert word in problems_of(text)[0].message


def test_not_utf8_names_line_and_byte() -> None:
    data = (HEADER + f"1,SKU1,{A}\n").encode() + "2,Caf\u00e9,".encode("latin-1") + A.encode() + b"\n"
    [problem] = problems_of(data)
    assert problem.line == 3
    assert "UTF-8" in problem.message
    offset = data.index(b"\xe9")
    assert f"byte offset {offset}" in problem.message


def test_nul_byte_and_utf16() -> None:
    assert "NUL" in problems_of(HEADER + f"1,SK\x00U,{A}\n")[0].message
    assert "NUL" in problems_of(HEADER.encode("utf-16-le"))[0].message


def test_unterminated_quote() -> None:
    problems = problems_of(HEADER + f'1,SKU1,{A}\n2,SKU2,"{A}\n3,SKU3,{B}\n')
    assert problems[-1].line == 3
    assert "never closed" in problems[-1].message


def test_text_after_closing_quote() -> None:
    assert "closing quote" in problems_of(HEADER + f'1,"SKU"1,{A}\n')[0].message


def test_huge_cell_is_refused() -> None:
    problems = problems_of(HEADER + f'1,"{"n" * (MAX_CELL_CHARS + 1)}",{A}\n')
    assert problems[0].column == "Product Name" and str(MAX_CELL_CHARS) in problems[0].message


def test_earlier_problems_are_kept_when_a_fatal_one_stops_parsing() -> None:
    problems = problems_of((HEADER + f"0,SKU,{A}\n").encode() + b"2,SKU2\x00,x\n")
    assert [p.line for p in problems] == [2, 3]


def test_problems_are_capped_and_marked_truncated() -> None:
    text = HEADER + "".join(f"{n},,{A}\n" for n in range(1, MAX_PROBLEMS + 20))
    with pytest.raises(ValidationError) as caught:
        parse(text, max_products=1000)
    assert len(caught.value.problems) == MAX_PROBLEMS
    assert caught.value.truncated


def test_exactly_the_cap_is_not_truncated() -> None:
    text = HEADER + "".join(f"{n},,{A}\n" for n in range(1, MAX_PROBLEMS + 1))
    with pytest.raises(ValidationError) as caught:
        parse(text, max_products=1000)
    assert len(caught.value.problems) == MAX_PROBLEMS
    assert not caught.value.truncated


def test_too_many_products_stops_at_the_limit() -> None:
    rows = "".join(f"{n},SKU{n},{A}\n" for n in range(1, 4))
    assert len(parse(HEADER + rows, max_products=3)) == 3
    # Garbage after the first row over the limit is never read: the size error wins.
    with pytest.raises(PayloadTooLarge) as caught:
        parse(HEADER + rows + f"4,SKU4,{A}\n" + '5,"unterminated\n', max_products=3)
    assert caught.value.status_code == 413
    assert caught.value.problems[0].line == 5


def test_credentials_in_urls_are_not_echoed() -> None:
    [problem] = problems_of(HEADER + "1,SKU,https://bob:pw123@example.com/a.jpg\n")
    assert "pw123" not in problem.message and "credentials" in problem.message


@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1).filter(str.strip),
            st.lists(st.sampled_from([A, B, C]), min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_round_trip_through_the_csv_writer(products: list[tuple[str, list[str]]]) -> None:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["S. No.", "Product Name", "Input Image Urls"])
    for serial, (name, urls) in enumerate(products, start=1):
        writer.writerow([serial, name, ",".join(urls)])
    rows = parse(out.getvalue())
    assert [(r.serial, r.name, r.urls) for r in rows] == [
        (serial, name.strip(), tuple(urls)) for serial, (name, urls) in enumerate(products, start=1)
    ]
