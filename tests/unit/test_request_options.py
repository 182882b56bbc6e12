"""Per-request options: parsing and validation, and what the imaging does with them."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from devtools import images
from shared.imaging import compress_image
from shared.options import CompressionOptions, OutputFormat, options_from_row, parse_options

MAX_PIXELS = 50_000_000


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_absent_or_empty_fields_mean_the_service_defaults() -> None:
    options, problems = parse_options({"quality": "", "format": None})
    assert problems == [] and options == CompressionOptions() and options.is_default


def test_valid_fields_are_parsed() -> None:
    options, problems = parse_options({"quality": " 60 ", "size_target": "0.4", "format": "WebP",
                                       "max_dimension": "1600"})
    assert problems == []
    assert options == CompressionOptions(60, 0.4, OutputFormat.WEBP, 1600)
    assert options_from_row(60, 0.4, "webp", 1600) == options
    assert options_from_row(None, None, None, None) == CompressionOptions()


@pytest.mark.parametrize(("field", "value"), [
    ("quality", "0"), ("quality", "96"), ("quality", "5.5"), ("quality", "ten"),
    ("size_target", "1"), ("size_target", "-0.1"), ("size_target", "nan"), ("size_target", "inf"),
    ("format", "gif"), ("format", "png"),
    ("max_dimension", "0"), ("max_dimension", "20001"), ("max_dimension", "1e3"),
])
def test_each_bad_value_is_one_problem_named_by_its_field(field, value) -> None:
    _, problems = parse_options({field: value})
    assert [p.column for p in problems] == [field]
    assert repr(value) in problems[0].message


def test_every_problem_is_reported_at_once_and_long_values_are_cut() -> None:
    _, problems = parse_options({"quality": "x" * 500, "size_target": "2", "format": "bmp", "max_dimension": "-1"})
    assert [p.column for p in problems] == ["quality", "size_target", "format", "max_dimension"]
    assert len(problems[0].message) < 150


def test_max_dimension_downscales_the_long_side_and_never_upscales() -> None:
    data = images.jpeg(640, 480)
    small = compress_image(data, max_pixels=MAX_PIXELS, max_dimension=320)
    assert (small.width, small.height) == opened(small.data).size == (320, 240)
    same = compress_image(data, max_pixels=MAX_PIXELS, max_dimension=5000)
    assert opened(same.data).size == (640, 480)


def test_a_downscaled_image_is_never_replaced_by_its_larger_original() -> None:
    data = images.jpeg(640, 480, quality=15)  # q50 would grow it: kept unless downscaled
    assert compress_image(data, max_pixels=MAX_PIXELS).data == data
    result = compress_image(data, max_pixels=MAX_PIXELS, max_dimension=100)
    assert opened(result.data).size == (100, 75)


def test_format_webp_turns_a_jpeg_into_webp() -> None:
    result = compress_image(images.jpeg(), max_pixels=MAX_PIXELS, output_format="webp")
    assert result.format == "WEBP" and result.extension == "webp" and opened(result.data).format == "WEBP"


def test_format_jpeg_flattens_transparency_on_white() -> None:
    result = compress_image(images.rgba_png(), max_pixels=MAX_PIXELS, output_format="jpeg", quality=90)
    out = opened(result.data)
    assert out.format == "JPEG" and out.mode == "RGB"
    source = opened(images.rgba_png()).convert("RGBA")
    transparent = next((x, y) for x in range(source.width) for y in range(source.height)
                       if source.getpixel((x, y))[3] == 0)
    assert min(out.convert("RGB").getpixel(transparent)) > 240  # white where it was transparent


def test_format_jpeg_keeps_an_animations_first_frame() -> None:
    result = compress_image(images.animated_gif(frames=3), max_pixels=MAX_PIXELS, output_format="jpeg")
    out = opened(result.data)
    assert out.format == "JPEG" and getattr(out, "n_frames", 1) == 1


def test_an_animation_is_downscaled_frame_by_frame() -> None:
    data = images.animated_gif(frames=4)
    source = opened(data)
    result = compress_image(data, max_pixels=MAX_PIXELS, max_dimension=max(source.size) // 2)
    out = Image.open(io.BytesIO(result.data))
    assert out.format == "WEBP" and out.n_frames == 4
    assert max(out.size) == max(source.size) // 2
