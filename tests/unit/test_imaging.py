"""Compression with Pillow: formats, modes, orientation, animation, limits and refusals."""

from __future__ import annotations

import io
from functools import cache

import pytest
from PIL import Image, ImageChops, ImageStat

from devtools import images
from shared.errors import PermanentFailure
from shared.imaging import MIN_TARGET_QUALITY, compress_image

MAX_PIXELS = 10_000_000


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@cache
def _quantization_at(quality: int) -> tuple[tuple[int, ...], ...]:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", quality=quality)
    tables = Image.open(buffer).quantization
    return tuple(tuple(tables[index]) for index in sorted(tables))


def jpeg_quality_of(image: Image.Image) -> int | None:
    """The libjpeg quality whose quantisation tables the file carries (None if none matches)."""
    tables = image.quantization
    found = tuple(tuple(tables[index]) for index in sorted(tables))
    for quality in range(1, 101):
        reference = _quantization_at(quality)
        if found[: len(reference)] == reference[: len(found)]:
            return quality
    return None


def looks_alike(first: Image.Image, second: Image.Image) -> bool:
    """Same picture at a coarse scale (block averages), so JPEG noise and chroma blur do not count."""
    coarse = [image.reduce(10) for image in (first, second)]
    return max(ImageStat.Stat(ImageChops.difference(*coarse)).mean) < 6


def compress(data: bytes, **options) -> tuple[object, Image.Image]:
    result = compress_image(data, max_pixels=options.pop("max_pixels", MAX_PIXELS), **options)
    return result, opened(result.data)


# --- JPEG in, JPEG out ----------------------------------------------------------------------


@pytest.mark.parametrize("source_quality", [90, 95])
def test_jpeg_is_re_encoded_at_quality_50_with_the_same_dimensions(source_quality) -> None:
    data = images.jpeg(640, 480, quality=source_quality)
    result, out = compress(data)
    assert (result.format, result.extension, result.content_type) == ("JPEG", "jpg", "image/jpeg")
    assert out.format == "JPEG" and out.mode == "RGB"
    assert jpeg_quality_of(opened(data)) == source_quality
    assert jpeg_quality_of(out) == result.quality == 50
    assert (result.width, result.height) == out.size == (640, 480)
    assert len(result.data) < len(data) * 0.6


def test_the_quality_setting_is_what_the_tables_show() -> None:
    result, out = compress(images.jpeg(quality=95), quality=30)
    assert jpeg_quality_of(out) == result.quality == 30


def test_grey_jpeg_stays_grey() -> None:
    result, out = compress(images.grey_jpeg())
    assert out.mode == "L"
    assert jpeg_quality_of(out) == 50


def test_cmyk_jpeg_becomes_an_rgb_jpeg_with_the_same_colours() -> None:
    data = images.cmyk_jpeg()
    result, out = compress(data)
    assert out.mode == "RGB" and result.format == "JPEG"
    assert looks_alike(out, opened(data).convert("RGB"))  # not inverted or shifted channels


def test_icc_profile_is_kept_and_exif_is_dropped() -> None:
    data, profile = images.jpeg_with_icc()
    _, out = compress(data)
    assert out.info.get("icc_profile") == profile
    _, rotated = compress(images.exif_rotated_jpeg())
    assert len(rotated.getexif()) == 0


def test_exif_orientation_is_applied_so_dimensions_swap() -> None:
    data = images.exif_rotated_jpeg(320, 200, orientation=6)
    assert opened(data).size == (320, 200)
    result, out = compress(data)
    assert out.size == (result.width, result.height) == (200, 320)
    assert out.getexif().get(images.EXIF_ORIENTATION) is None
    # Orientation 6 turns the stored picture 90° clockwise: its left column becomes the top row.
    stored = opened(data)
    expected = stored.transpose(Image.Transpose.ROTATE_270)
    assert looks_alike(out, expected)
    assert not looks_alike(out, stored.transpose(Image.Transpose.ROTATE_90))


# --- other still images ---------------------------------------------------------------------


def test_png_with_alpha_becomes_webp_and_keeps_its_transparency() -> None:
    data = images.rgba_png()
    result, out = compress(data)
    assert (result.format, result.extension, result.content_type) == ("WEBP", "webp", "image/webp")
    assert out.mode == "RGBA" and out.size == (200, 150)
    source_alpha = opened(data).getchannel("A")
    assert out.getchannel("A").getextrema()[0] < 10
    assert ImageChops.difference(out.getchannel("A"), source_alpha).getextrema()[1] <= 8
    assert len(result.data) < len(data)


def test_grey_with_alpha_keeps_its_transparency() -> None:
    result, out = compress(images.la_png())
    assert result.format == "WEBP"
    assert out.getchannel("A").getextrema()[0] < 10


def test_rgba_whose_alpha_is_all_opaque_becomes_jpeg() -> None:
    result, out = compress(images.opaque_rgba_png())
    assert result.format == "JPEG" and jpeg_quality_of(out) == 50


def test_palette_png_becomes_jpeg_unless_it_has_a_transparent_colour() -> None:
    result, out = compress(images.palette_png())
    assert result.format == "JPEG" and out.mode == "RGB"
    transparent, out = compress(images.palette_png(transparent_index=0))
    assert transparent.format == "WEBP"
    assert out.getchannel("A").getextrema()[0] == 0


def test_16_bit_grey_is_scaled_to_8_bits_not_clipped() -> None:
    data = images.grey16_png()
    assert opened(data).mode.startswith("I;16")
    result, out = compress(data)
    assert result.format == "JPEG" and out.mode == "L"
    picture = images.photo(200, 150, "L")
    assert abs(ImageStat.Stat(out).mean[0] - ImageStat.Stat(picture).mean[0]) < 3
    assert looks_alike(out, picture)


# --- animations -----------------------------------------------------------------------------


def test_animated_gif_becomes_animated_webp_with_every_frame_and_duration() -> None:
    durations = (50, 100, 150, 200, 250)
    result, out = compress(images.animated_gif(frames=5, durations=durations))
    assert result.format == "WEBP"
    assert out.n_frames == 5
    found = []
    for index in range(out.n_frames):
        out.seek(index)
        out.load()
        found.append(out.info["duration"])
    assert tuple(found) == durations
    assert out.info["loop"] == 0


def test_animated_webp_stays_animated() -> None:
    data = images.animated_webp(frames=3)
    result, out = compress(data)
    assert result.format == "WEBP" and out.n_frames == 3
    assert len(result.data) < len(data)


# --- never larger, and the size target ------------------------------------------------------


def test_an_input_that_would_grow_is_kept_as_it_is() -> None:
    data = images.jpeg(quality=15)
    reencoded = io.BytesIO()
    opened(data).save(reencoded, "JPEG", quality=50)
    assert len(reencoded.getvalue()) >= len(data), "precondition: q50 must grow this input"
    result, _ = compress(data)
    assert result.data == data
    assert (result.format, result.extension, result.quality) == ("JPEG", "jpg", 0)


@pytest.mark.parametrize("make", [images.jpeg, images.rgba_png, images.palette_png, images.animated_gif])
@pytest.mark.parametrize("quality", [20, 50, 80])
def test_output_is_never_larger_than_input(make, quality) -> None:
    data = make()
    result = compress_image(data, quality=quality, max_pixels=MAX_PIXELS)
    assert len(result.data) <= len(data)


def test_size_target_lowers_the_quality_until_the_output_fits() -> None:
    data = images.jpeg(640, 480, quality=95)
    plain = compress_image(data, max_pixels=MAX_PIXELS)
    ratio = len(plain.data) / len(data) * 0.8  # below what quality 50 reaches
    result, out = compress(data, size_target_ratio=ratio)
    assert len(result.data) <= ratio * len(data)
    assert MIN_TARGET_QUALITY <= result.quality < 50
    assert jpeg_quality_of(out) == result.quality
    one_better = compress_image(data, quality=result.quality + 1, max_pixels=MAX_PIXELS)
    assert len(one_better.data) > ratio * len(data)  # the highest quality that fits was chosen


def test_an_unreachable_size_target_gives_the_smallest_attempt() -> None:
    result, _ = compress(images.jpeg(quality=95), size_target_ratio=0.001)
    assert result.quality == MIN_TARGET_QUALITY


# --- refusals -------------------------------------------------------------------------------


def test_a_huge_image_is_refused_from_its_header() -> None:
    with pytest.raises(PermanentFailure, match="too large"):
        compress_image(images.bomb_png(20_000, 20_000), max_pixels=MAX_PIXELS)


def test_an_image_beyond_pillows_own_bomb_limit_is_refused() -> None:
    with pytest.raises(PermanentFailure, match="too large"):
        compress_image(images.bomb_png(), max_pixels=MAX_PIXELS * 1000)


def test_the_pixel_limit_is_per_call() -> None:
    data = images.jpeg(320, 240)
    with pytest.raises(PermanentFailure, match="too large"):
        compress_image(data, max_pixels=320 * 240 - 1)
    assert compress_image(data, max_pixels=320 * 240).width == 320


def test_an_animation_with_too_many_frames_in_total_is_refused() -> None:
    data = images.animated_gif(frames=5, size=(40, 25))
    with pytest.raises(PermanentFailure, match="too large"):
        compress_image(data, max_pixels=1000)  # 5 x 1000 pixels > 4 x 1000


@pytest.mark.parametrize("make", [images.jpeg, images.rgba_png, images.animated_gif])
def test_a_truncated_image_is_refused(make) -> None:
    with pytest.raises(PermanentFailure, match="truncated or corrupt"):
        compress_image(images.truncated(make()), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"  \n<!DOCTYPE html><html><body>Not found</body></html>",
        b"\xef\xbb\xbf<?xml version='1.0'?><svg/>",
        b'{"error": "no such image"}',
        b"%PDF-1.7\n...",
        b"just some text that is not an image",
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
    ],
)
def test_things_that_are_not_images_are_refused(data) -> None:
    with pytest.raises(PermanentFailure, match="not an image|truncated or corrupt"):
        compress_image(data, max_pixels=MAX_PIXELS)
