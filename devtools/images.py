"""Test images generated in memory, one helper per kind the pipeline must handle.

Pictures are "photo-like" (smooth gradients plus sensor-like noise) so JPEG sizes behave like
camera output: re-encoding a q90/q95 file at q50 makes it clearly smaller.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image, ImageCms

EXIF_ORIENTATION = 0x0112


def photo(width: int = 320, height: int = 240, mode: str = "RGB") -> Image.Image:
    """A deterministic picture (same arguments, same pixels): gradients and noise, in ``mode``."""
    horizontal = Image.linear_gradient("L").rotate(90).resize((width, height))
    vertical = Image.linear_gradient("L").resize((width, height))
    noise = Image.frombytes(
        "L", (width, height), random.Random(width * 7919 + height).randbytes(width * height)
    )
    rgb = Image.merge("RGB", (horizontal, vertical, Image.blend(noise, horizontal, 0.5)))
    return rgb if mode == "RGB" else rgb.convert(mode)


def _save(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def jpeg(width: int = 320, height: int = 240, quality: int = 90, **options: object) -> bytes:
    return _save(photo(width, height), "JPEG", quality=quality, **options)


def grey_jpeg(width: int = 320, height: int = 240, quality: int = 90) -> bytes:
    return _save(photo(width, height, "L"), "JPEG", quality=quality)


def cmyk_jpeg(width: int = 320, height: int = 240, quality: int = 95) -> bytes:
    return _save(photo(width, height, "CMYK"), "JPEG", quality=quality)


def jpeg_with_icc(width: int = 320, height: int = 240, quality: int = 90) -> tuple[bytes, bytes]:
    """A JPEG carrying an sRGB ICC profile; returns (file, profile)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _save(photo(width, height), "JPEG", quality=quality, icc_profile=profile), profile


def exif_rotated_jpeg(width: int = 320, height: int = 200, orientation: int = 6) -> bytes:
    """A landscape-stored JPEG whose EXIF says "rotate 90° clockwise" (orientation 6) to display."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    exif[0x010F] = "TestCam"  # Make: metadata that should not survive compression
    return _save(photo(width, height), "JPEG", quality=95, exif=exif.tobytes())


def rgba_png(width: int = 200, height: int = 150) -> bytes:
    """A PNG with a real alpha gradient (some pixels transparent)."""
    image = photo(width, height, "RGBA")
    image.putalpha(Image.linear_gradient("L").resize((width, height)))
    return _save(image, "PNG")


def opaque_rgba_png(width: int = 200, height: int = 150) -> bytes:
    """An RGBA PNG whose alpha is fully opaque everywhere (common for screenshots)."""
    return _save(photo(width, height, "RGBA"), "PNG")


def la_png(width: int = 200, height: int = 150) -> bytes:
    image = photo(width, height, "L").convert("LA")
    image.putalpha(Image.linear_gradient("L").resize((width, height)))
    return _save(image, "PNG")


def palette_png(width: int = 200, height: int = 150, transparent_index: int | None = None) -> bytes:
    image = photo(width, height).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    if transparent_index is None:
        return _save(image, "PNG")
    return _save(image, "PNG", transparency=transparent_index)


def grey16_png(width: int = 200, height: int = 150) -> bytes:
    """A 16-bit greyscale PNG whose values span the 0..65535 range (8-bit picture scaled by 257)."""
    wide = photo(width, height, "L").convert("I").point(lambda v: v * 257)
    return _save(wide.convert("I;16"), "PNG")


def animated_gif(frames: int = 4, size: tuple[int, int] = (96, 64), durations: tuple[int, ...] = ()) -> bytes:
    images = [photo(*size).rotate(index * 30).convert("P") for index in range(frames)]
    durations = durations or tuple(80 + 20 * index for index in range(frames))
    return _save(images[0], "GIF", save_all=True, append_images=images[1:], duration=list(durations), loop=0)


def animated_webp(frames: int = 3, size: tuple[int, int] = (96, 64)) -> bytes:
    images = [photo(*size).rotate(index * 30) for index in range(frames)]
    return _save(images[0], "WEBP", save_all=True, append_images=images[1:], duration=120, loop=0, quality=95)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of a few dozen bytes whose header claims ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    pixels = zlib.compress(b"\0" * 1024)  # far too little data: decoding would have to fail anyway
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]
