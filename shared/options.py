"""Per-request compression options: the optional form fields of an upload.

    quality        1-95; the JPEG/WebP encoder quality (default: the service's JPEG_QUALITY)
    size_target    0 <= r < 1; search the quality for at most r x the input bytes (0 = off;
                   default: the service's SIZE_TARGET_RATIO)
    format         keep | jpeg | webp (default keep: JPEG, or WebP for transparency/animation)
    max_dimension  1-20000; downscale so the longer side is at most this many pixels, never up

Every problem is reported with the field it belongs to, together with the CSV's problems. Options
are stored with the request and read back by ``process_queue`` for each image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.errors import Problem

MIN_QUALITY, MAX_QUALITY = 1, 95
MAX_DIMENSION_LIMIT = 20_000
FIELD_NAMES = ("quality", "size_target", "format", "max_dimension")
_MAX_ECHO = 40  # characters of a rejected value repeated in its problem message


class OutputFormat(StrEnum):
    """What the compressed image is encoded as."""

    KEEP = "keep"  # JPEG for opaque stills, WebP for transparency and animation (the default)
    JPEG = "jpeg"  # always JPEG (transparency flattened on white, an animation's first frame)
    WEBP = "webp"  # always WebP


@dataclass(frozen=True)
class CompressionOptions:
    """A request's options; None means "the service's setting"."""

    quality: int | None = None
    size_target: float | None = None
    format: OutputFormat = OutputFormat.KEEP
    max_dimension: int | None = None

    @property
    def is_default(self) -> bool:
        return self == CompressionOptions()

    def as_dict(self) -> dict[str, object]:
        return {"quality": self.quality, "size_target": self.size_target, "format": self.format.value,
                "max_dimension": self.max_dimension}


def _echo(value: str) -> str:
    return repr(value if len(value) <= _MAX_ECHO else value[:_MAX_ECHO] + "...")


def _integer(name: str, raw: str, low: int, high: int, problems: list[Problem]) -> int | None:
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        problems.append(Problem(f"{name} must be an integer from {low} to {high} (got {_echo(raw)})", column=name))
        return None
    return value


def parse_options(fields: Mapping[str, str | None]) -> tuple[CompressionOptions, list[Problem]]:
    """Options from form fields (absent or empty = default), with every problem found."""
    problems: list[Problem] = []
    raw = {name: (fields.get(name) or "").strip() for name in FIELD_NAMES}
    quality = _integer("quality", raw["quality"], MIN_QUALITY, MAX_QUALITY, problems) if raw["quality"] else None
    size_target = None
    if raw["size_target"]:
        try:
            size_target = float(raw["size_target"])
        except ValueError:
            size_target = None
        if size_target is None or not math.isfinite(size_target) or not 0 <= size_target < 1:
            problems.append(Problem(f"size_target must be a number from 0 to below 1, e.g. 0.5 "
                                    f"(got {_echo(raw['size_target'])})", column="size_target"))
            size_target = None
    output_format = OutputFormat.KEEP
    if raw["format"]:
        try:
            output_format = OutputFormat(raw["format"].lower())
        except ValueError:
            problems.append(Problem(f"format must be one of keep, jpeg, webp (got {_echo(raw['format'])})",
                                    column="format"))
    max_dimension = None
    if raw["max_dimension"]:
        max_dimension = _integer("max_dimension", raw["max_dimension"], 1, MAX_DIMENSION_LIMIT, problems)
    return CompressionOptions(quality, size_target, output_format, max_dimension), problems


def options_from_row(quality: Any, size_target: Any, output_format: Any, max_dimension: Any) -> CompressionOptions:
    """Options as the store reads them back (NULLs where nothing was given)."""
    return CompressionOptions(
        quality=None if quality is None else int(quality),
        size_target=None if size_target is None else float(size_target),
        format=OutputFormat(str(output_format)) if output_format else OutputFormat.KEEP,
        max_dimension=None if max_dimension is None else int(max_dimension),
    )
