"""Parse and validate an uploaded product CSV into ``ProductRow`` records.

The format of the brief: a header row, then one row per product with the columns ``S. No.``
(or ``Serial Number``), ``Product Name`` and ``Input Image Urls`` (one or more URLs, comma-separated
inside one quoted cell). Headers match ignoring case, spaces and punctuation. Also accepted: a
UTF-8 byte order mark, CRLF line ends, blank lines, serials written ``1.``, and extra URLs spilled
into unquoted cells after the URL column (``1,SKU,https://a/1.jpg,https://a/2.jpg``).

Every problem is collected (line, column, message) and raised at the end in one
``ValidationError``; a file with more than ``max_products`` rows raises ``PayloadTooLarge`` as soon
as the row after the limit is seen. The bytes are decoded and parsed one physical line at a time, so
no second copy of the whole file is built. The byte-size limit is the caller's job.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from shared.errors import PayloadTooLarge, Problem, ValidationError
from shared.models import ProductRow
from shared.sql_limits import INT_MAX, PRODUCT_NAME_UNITS, URL_UNITS, too_long
from shared.urls import url_problem

MAX_PROBLEMS = 100
# csv's own field_size_limit is process-wide state; instead each line and cell is capped here.
MAX_CELL_CHARS = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
# The brief's CSV has three columns plus spilled URLs; far wider files are refused, not parsed.
MAX_COLUMNS = 200

SERIAL_HEADERS = frozenset({"sno", "serialnumber", "serialno", "srno", "serial"})
NAME_HEADERS = frozenset({"productname"})
URLS_HEADERS = frozenset({"inputimageurls", "inputimageurl"})
_SERIAL = re.compile(r"^\s*(\d+)\.?\s*$")


class _FatalInput(Exception):
    """Raised inside the parser when the rest of the file cannot be read meaningfully."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _normalise_header(cell: str) -> str:
    return "".join(ch for ch in cell.lower() if ch.isalnum())


def _decoded_lines(data: bytes) -> Iterator[str]:
    """Yield the text of each physical line (ends kept), refusing bad bytes with their position."""
    stream = io.BytesIO(data)
    offset = 0
    for number, raw in enumerate(iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b""), start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise _FatalInput(Problem(f"line is longer than {MAX_LINE_BYTES} bytes", line=number))
        nul = raw.find(b"\x00")
        if nul >= 0:
            raise _FatalInput(
                Problem(f"contains a NUL byte at byte offset {offset + nul} (is the file UTF-16?)", number)
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _FatalInput(
                Problem(f"is not valid UTF-8 at byte offset {offset + exc.start} (save the file as UTF-8)",
                        line=number)
            ) from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        offset += len(raw)
        yield text


class _Columns:
    """Where the three known columns are in the header, and what each is called there."""

    def __init__(self, header: list[str], line: int) -> None:
        self.line = line
        self.names = [cell.strip() for cell in header]
        self.width = len(header)
        self.problems: list[Problem] = []
        self.serial = self._find(SERIAL_HEADERS, "S. No.")
        self.name = self._find(NAME_HEADERS, "Product Name")
        self.urls = self._find(URLS_HEADERS, "Input Image Urls")
        # Decided once: asking per row rescanned the whole header for every row (quadratic).
        self._spills = not any(self.names[self.urls + 1 :])

    def _find(self, accepted: frozenset[str], label: str) -> int:
        found = [i for i, cell in enumerate(self.names) if _normalise_header(cell) in accepted]
        if not found:
            message = f"required column {label!r} is missing from the header"
            self.problems.append(Problem(message, line=self.line))
            return -1
        if len(found) > 1:
            self.problems.append(Problem(f"column {label!r} appears more than once", line=self.line))
        return found[0]

    def spill_indexes(self, row_width: int) -> range:
        """Cells after the URL column that have no header of their own hold spilled URLs."""
        return range(self.urls + 1, row_width) if self._spills else range(0)


class _Parser:
    def __init__(self, max_products: int, max_urls_per_row: int) -> None:
        self.max_products = max_products
        self.max_urls_per_row = max_urls_per_row
        self.problems: list[Problem] = []
        self.rows: list[ProductRow] = []
        self.serial_lines: dict[int, int] = {}

    def add(self, message: str, line: int | None, column: str | None = None) -> None:
        self.problems.append(Problem(message, line=line, column=column))
        if len(self.problems) > MAX_PROBLEMS:
            raise _FatalInput(self.problems.pop())

    def parse(self, data: bytes) -> None:
        reader = csv.reader(_decoded_lines(data), strict=True)
        columns: _Columns | None = None
        last_line = 0
        while True:
            start = last_line + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise _FatalInput(Problem(_describe_csv_error(str(exc)), line=start)) from None
            last_line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > MAX_COLUMNS:
                what = "the header has" if columns is None else "row has"
                noun = "columns" if columns is None else "cells"
                raise _FatalInput(Problem(f"{what} {len(cells)} {noun}, at most {MAX_COLUMNS}", line=start))
            if columns is None:
                columns = _Columns(cells, start)
                if columns.problems:
                    self.problems.extend(columns.problems)
                    return
                continue
            if len(self.rows) + 1 > self.max_products:
                raise PayloadTooLarge(
                    [Problem(f"the file has more than {self.max_products} products", line=start)]
                )
            self.parse_row(columns, cells, start)
        if columns is None:
            self.add("the file is empty", line=None)
        elif not self.rows and not self.problems:
            self.add("the file has a header but no product rows", line=None)

    def parse_row(self, columns: _Columns, cells: list[str], line: int) -> None:
        before = len(self.problems)
        if max(map(len, cells), default=0) > MAX_CELL_CHARS:  # one C-level pass; the loop only names the cells
            for index, cell in enumerate(cells):
                if len(cell) > MAX_CELL_CHARS:
                    column = columns.names[index] if index < columns.width else None
                    self.add(f"cell is longer than {MAX_CELL_CHARS} characters", line, column)
            return
        if len(cells) <= max(columns.serial, columns.name, columns.urls):
            self.add(f"row has {len(cells)} cells, the header has {columns.width}", line)
            return
        serial = self.parse_serial(cells[columns.serial], line, columns.names[columns.serial])
        name = cells[columns.name].strip()
        name_column = columns.names[columns.name]
        if not name:
            self.add("product name is empty", line, name_column)
        elif name_problem := too_long(name, PRODUCT_NAME_UNITS):  # NVARCHAR counts UTF-16 units
            self.add(f"product name {name_problem}", line, name_column)
        urls = self.parse_urls(columns, cells, line)
        if len(self.problems) == before and serial is not None:
            self.rows.append(ProductRow(line=line, serial=serial, name=name, urls=urls))

    def parse_serial(self, cell: str, line: int, column: str) -> int | None:
        match = _SERIAL.match(cell)
        digits = match.group(1).lstrip("0") if match else ""
        serial = int(digits) if 0 < len(digits) <= 10 else 0  # more digits cannot fit an INT anyway
        if not 0 < serial <= INT_MAX:  # the serial column is an INT
            self.add(f"serial number must be an integer from 1 to {INT_MAX}, got {cell.strip()[:40]!r}",
                     line, column)  # fmt: skip
            return None
        first_line = self.serial_lines.setdefault(serial, line)
        if first_line != line:
            self.add(f"serial number {serial} is already used on line {first_line}", line, column)
            return None
        return serial

    def parse_urls(self, columns: _Columns, cells: list[str], line: int) -> tuple[str, ...]:
        column = columns.names[columns.urls]
        pieces = cells[columns.urls].split(",")
        for index in columns.spill_indexes(len(cells)):
            if cells[index]:
                pieces.extend(cells[index].split(","))
        urls = tuple(filter(None, map(str.strip, pieces)))
        if not urls:
            self.add("no image URL given", line, column)
        elif len(urls) > self.max_urls_per_row:
            self.add(f"{len(urls)} image URLs, at most {self.max_urls_per_row} per product", line, column)
        for position, url in enumerate(urls, start=1):
            problem = url_problem(url) or too_long(url, URL_UNITS)
            if problem:
                # The URL itself is not echoed: it may carry credentials.
                self.add(f"URL {position} {problem}", line, column)
        return urls


def _describe_csv_error(message: str) -> str:
    if "unexpected end of data" in message:
        return 'a quoted cell starting on this line is never closed (missing ")'
    if "expected after" in message:
        return 'unexpected text after a closing quote (a cell must end right after its closing ")'
    return f"the CSV cannot be read: {message}"


def parse_products(data: bytes, *, max_products: int, max_urls_per_row: int) -> list[ProductRow]:
    """Parse ``data`` (an uploaded CSV) into product rows in file order, or raise.

    Raises ``ValidationError`` listing every problem (at most ``MAX_PROBLEMS``; ``truncated`` is
    set when there were more), or ``PayloadTooLarge`` when there are more than ``max_products`` rows.
    """
    parser = _Parser(max_products, max_urls_per_row)
    truncated = False
    try:
        parser.parse(data)
    except _FatalInput as fatal:
        if len(parser.problems) < MAX_PROBLEMS:
            parser.problems.append(fatal.problem)
        else:
            truncated = True
    if parser.problems:
        raise ValidationError(parser.problems, truncated=truncated)
    return parser.rows
