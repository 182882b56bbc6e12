"""Property-based tests of parse_products over hostile and malformed uploads.

The contract under test: whatever bytes arrive, parse_products either returns valid ProductRows or
raises ValidationError (PayloadTooLarge included) whose problems say where (line, column) and why;
never any other exception. Structured files are built from row "kinds" whose verdict is known, so
the tests also check that every bad row is reported at its own line and column and that a file of
good rows comes back exactly.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.csv_input import MAX_CELL_CHARS, MAX_LINE_BYTES, MAX_PROBLEMS, parse_products
from shared.errors import PayloadTooLarge, Problem, ValidationError
from shared.models import ProductRow
from shared.urls import url_problem

SERIAL, NAME, URLS = "S. No.", "Product Name", "Input Image Urls"
WHOLE_FILE_PROBLEMS = ("the file is empty", "the file has a header but no product rows")
MAX_URLS = 5

# --- the invariant every outcome must satisfy ---------------------------------------------------


def physical_lines(data: bytes) -> int:
    return data.count(b"\n") + 1


def last_content_line(data: bytes) -> int:
    """The number of the last line with anything on it: no problem can sit on the blank tail."""
    lines = data.split(b"\n")
    return max((number for number, text in enumerate(lines, start=1) if text.strip(b"\r")), default=1)


def appears_from_line(url: str, data: bytes, line: int) -> bool:
    """Whether ``url`` is in the file at or after ``line``, as written or with CSV-doubled quotes."""
    tail = b"\n".join(data.split(b"\n")[line - 1 :])
    return any(form.encode("utf-8") in tail for form in (url, url.replace('"', '""')))


def check_problem(problem: Problem, data: bytes) -> None:
    assert isinstance(problem.message, str) and problem.message.strip()
    if problem.line is None:
        assert problem.message in WHOLE_FILE_PROBLEMS, problem
    else:
        assert 1 <= problem.line <= last_content_line(data), (problem, last_content_line(data))
    assert problem.column is None or problem.column.strip(), problem


def check_rows(rows: list[ProductRow], data: bytes, max_products: int) -> None:
    assert 0 < len(rows) <= max_products
    serials = [row.serial for row in rows]
    assert len(set(serials)) == len(serials)
    assert [row.line for row in rows] == sorted(row.line for row in rows)
    for row in rows:
        assert isinstance(row, ProductRow)
        assert row.serial > 0 and 1 < row.line <= physical_lines(data)
        assert row.name and row.name == row.name.strip() and len(row.name) <= 1000
        assert 1 <= len(row.urls) <= MAX_URLS
        for url in row.urls:
            # Every URL comes from the input, on the row's own line or a later one (quoted cells
            # may span lines): the parser neither invents nor moves URLs between rows.
            assert appears_from_line(url, data, row.line), (url, row.line)
            assert url_problem(url) is None, url
            assert url.lower().startswith(("http://", "https://"))


def outcome(data: bytes, max_products: int = 50) -> list[ProductRow] | ValidationError:
    """Parse and check the invariant; any exception other than ValidationError fails the test."""
    try:
        rows = parse_products(data, max_products=max_products, max_urls_per_row=MAX_URLS)
    except ValidationError as error:
        assert error.problems, "a ValidationError must list its problems"
        assert len(error.problems) <= MAX_PROBLEMS
        for problem in error.problems:
            check_problem(problem, data)
        if isinstance(error, PayloadTooLarge):
            assert len(error.problems) == 1 and error.problems[0].line is not None
        return error
    check_rows(rows, data, max_products)
    return rows


# --- unstructured input ------------------------------------------------------------------------

CSV_ALPHABET = st.sampled_from(list(',"\r\n\x00 \t;.1a=+-@|%:/\ufeff\u00e9\u2028\x85'))
HEADER_TEXT = f"{SERIAL},{NAME},{URLS}\r\n"
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252", "utf-32")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_crash(data: bytes) -> None:
    outcome(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_after_a_valid_header_never_crash(tail: bytes) -> None:
    outcome(HEADER_TEXT.encode() + tail)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=CSV_ALPHABET | st.characters(codec="utf-8"), max_size=400),
    st.sampled_from(ENCODINGS),
    st.booleans(),
)
def test_csv_like_text_in_any_encoding_never_crashes(text: str, encoding: str, with_header: bool) -> None:
    body = (HEADER_TEXT if with_header else "") + text
    outcome(body.encode(encoding, errors="replace"))


# --- structured input with a known verdict per row ------------------------------------------------

GOOD_HOSTS = ("example.com", "cdn.example.org", "127.0.0.1", "[::1]", "img.xn--bcher-kva.example", "a-b.c_d.example")
FORMULA_NAMES = ("=HYPERLINK(\"http://evil/\",\"x\")", "+1+2", "-3", "@SUM(A1:A2)", "=cmd|' /C calc'!A0",
                 "|pipe", "%x", "\t=1+1")
BAD_SCHEME_URLS = ("javascript:alert(1)", "file:///etc/passwd", "data:image/svg+xml;utf8;<svg/onload=alert(1)>",
                   "ftp://example.com/a.jpg", "gopher://example.com/", "JAVASCRIPT://x/%0aalert(1)",
                   "//example.com/a.jpg", "/img/a.jpg", "example.com/a.jpg")
CREDENTIAL_URLS = ("http://user:hunter2@example.com/a.jpg", "https://token@example.com/a.jpg",
                   "http://:hunter2@example.com/a.jpg")


@dataclass(frozen=True)
class Row:
    serial_cell: str
    name_cell: str
    url_cells: tuple[str, ...]
    bad_column: str | None  # where its problem must be reported; None for a good row
    forbidden_in_messages: str = ""

    def __repr__(self) -> str:  # keeps Hypothesis' report of a huge cell short
        cells = (self.serial_cell, self.name_cell, *self.url_cells)
        shown = [cell if len(cell) < 80 else f"<{len(cell)} chars>" for cell in cells]
        return f"Row({shown!r}, bad_column={self.bad_column!r})"


def urls_strategy() -> st.SearchStrategy[list[str]]:
    path = st.text(alphabet="abcdefghij0123456789-_/", min_size=1, max_size=12)
    url = st.builds(lambda scheme, host, p: f"{scheme}://{host}/{p}.jpg", st.sampled_from(("http", "https", "HTTPS")),
                    st.sampled_from(GOOD_HOSTS), path)
    return st.lists(url, min_size=1, max_size=MAX_URLS)


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=40)
good_name = (names | st.sampled_from(FORMULA_NAMES)).filter(lambda n: bool(n.strip()))


@st.composite
def row_strategy(draw: st.DrawFn, serial: int) -> Row:
    kinds = ["good", "good", "good", "scheme", "credentials", "dup", "empty_name", "too_many_urls", "no_url"]
    if serial != 1:  # row 1 must record serial 1, which "dup" rows reuse
        kinds += ["bad_serial", "huge_cell"]
    kind = draw(st.sampled_from(kinds))
    serial_cell = draw(st.sampled_from((str(serial), f"{serial}.", f" {serial} ")))
    name = draw(good_name)
    urls = draw(urls_strategy())
    if kind == "good":
        return Row(serial_cell, name, tuple(urls), None)
    if kind == "scheme":
        urls = urls[: MAX_URLS - 1]
        urls.insert(draw(st.integers(0, len(urls))), draw(st.sampled_from(BAD_SCHEME_URLS)))
        return Row(serial_cell, name, tuple(urls), URLS)
    if kind == "credentials":
        urls[draw(st.integers(0, len(urls) - 1))] = draw(st.sampled_from(CREDENTIAL_URLS))
        return Row(serial_cell, name, tuple(urls), URLS, forbidden_in_messages="hunter2")
    if kind == "dup":
        return Row("1", name, tuple(urls), SERIAL if serial != 1 else None)
    if kind == "empty_name":
        return Row(serial_cell, draw(st.sampled_from(("", "   ", "\t"))), tuple(urls), NAME)
    if kind == "bad_serial":
        return Row(draw(st.sampled_from(("0", "-1", "abc", "1.5", "", "=1+1", "0x10"))), name, tuple(urls), SERIAL)
    if kind == "huge_cell":
        return Row(serial_cell, "N" * (MAX_CELL_CHARS + 1), tuple(urls), NAME)
    if kind == "too_many_urls":
        return Row(serial_cell, name, tuple(urls * (MAX_URLS + 1))[: MAX_URLS + 1], URLS)
    return Row(serial_cell, name, (), URLS)


@dataclass(frozen=True)
class CsvFile:
    rows: list[Row]
    line_end: str
    bom: bool

    def encode(self) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator=self.line_end)
        writer.writerow([SERIAL, NAME, URLS])
        for row in self.rows:
            writer.writerow([row.serial_cell, row.name_cell, ",".join(row.url_cells)])
        return (("\ufeff" if self.bom else "") + buffer.getvalue()).encode("utf-8")


@st.composite
def csv_file(draw: st.DrawFn) -> CsvFile:
    count = draw(st.integers(1, 12))
    rows = [draw(row_strategy(serial)) for serial in range(1, count + 1)]
    return CsvFile(rows, draw(st.sampled_from(("\r\n", "\n"))), draw(st.booleans()))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(csv_file())
def test_every_bad_row_is_reported_at_its_line_and_column(generated: CsvFile) -> None:
    data, rows = generated.encode(), generated.rows
    result = outcome(data)
    bad = {index + 2: row for index, row in enumerate(rows) if row.bad_column is not None}
    if not bad:
        assert isinstance(result, list), result
        assert [(r.line, r.serial, r.name, r.urls) for r in result] == [
            (index + 2, int(row.serial_cell.strip().rstrip(".")), row.name_cell.strip(), row.url_cells)
            for index, row in enumerate(rows)
        ]
        return
    assert isinstance(result, ValidationError) and not isinstance(result, PayloadTooLarge), result
    reported = {(p.line, p.column) for p in result.problems}
    for line, row in bad.items():
        assert (line, row.bad_column) in reported, (line, row, result.problems)
    good_lines = {index + 2 for index, row in enumerate(rows) if row.bad_column is None}
    assert not {p.line for p in result.problems} & good_lines, result.problems
    for problem in result.problems:
        for row in bad.values():
            if row.forbidden_in_messages:
                assert row.forbidden_in_messages not in problem.message


# Bytes that stop the parser where they start, and what the problem must mention.
FATAL_TAILS = {
    "unterminated quote": (b'99,Open,"https://example.com/a.jpg\n', "never closed"),
    "NUL": (b"99,Nul\x00,https://example.com/a.jpg\n", "NUL"),
    "latin-1": (b"99,Latin \xe9t\xe9,https://example.com/a.jpg\n", "UTF-8"),
    "huge line": (b"99,X," + b"h" * (MAX_LINE_BYTES + 1) + b"\n", "longer than"),
    "text after quote": (b'99,"Quoted"trailing,https://example.com/a.jpg\n', "closing quote"),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(csv_file(), st.sampled_from(sorted(FATAL_TAILS)))
def test_unreadable_bytes_are_reported_at_their_line(generated: CsvFile, tail: str) -> None:
    rows = generated.rows
    bad_bytes, mentioned = FATAL_TAILS[tail]
    data = generated.encode() + bad_bytes
    result = outcome(data)
    assert isinstance(result, ValidationError)
    fatal_line = len(rows) + 2
    assert any(p.line == fatal_line and mentioned in p.message for p in result.problems), result.problems
    assert all(p.line is not None and p.line <= fatal_line for p in result.problems)


# --- fixed hostile cases -----------------------------------------------------------------------


def test_utf16_upload_is_refused_at_line_1_with_a_hint() -> None:
    data = f'{SERIAL},{NAME},{URLS}\n1,A,"https://example.com/a.jpg"\n'.encode("utf-16")
    result = outcome(data)
    assert isinstance(result, ValidationError)
    assert result.problems[0].line == 1 and "UTF-16" in result.problems[0].message


def test_100k_rows_are_refused_as_too_many_at_the_first_row_over_the_limit() -> None:
    lines = [f"{SERIAL},{NAME},{URLS}"] + [f"{i},SKU{i},https://example.com/{i}.jpg" for i in range(1, 100_001)]
    data = ("\n".join(lines) + "\n").encode()
    with pytest.raises(PayloadTooLarge) as caught:
        parse_products(data, max_products=10_000, max_urls_per_row=MAX_URLS)
    assert [(p.line, "10000" in p.message) for p in caught.value.problems] == [(10_002, True)]


def test_many_duplicate_serials_are_capped_and_marked_truncated() -> None:
    lines = [f"{SERIAL},{NAME},{URLS}"] + [f"7,SKU{i},https://example.com/{i}.jpg" for i in range(500)]
    with pytest.raises(ValidationError) as caught:
        parse_products(("\n".join(lines)).encode(), max_products=10_000, max_urls_per_row=MAX_URLS)
    problems = caught.value.problems
    assert len(problems) == MAX_PROBLEMS and caught.value.truncated
    assert problems[0] == Problem("serial number 7 is already used on line 2", line=3, column=SERIAL)


@pytest.mark.parametrize("url", [*BAD_SCHEME_URLS, *CREDENTIAL_URLS])
def test_each_refused_url_form_is_named_by_line_and_column_without_echoing_it(url: str) -> None:
    data = f'{SERIAL},{NAME},{URLS}\n1,A,"https://example.com/ok.jpg,{url}"\n'.encode()
    result = outcome(data)
    assert isinstance(result, ValidationError)
    assert [(p.line, p.column) for p in result.problems] == [(2, URLS)]
    assert result.problems[0].message.startswith("URL 2 ")
    assert url not in result.problems[0].message and "hunter2" not in result.problems[0].message
