"""Hostile images built in the test, byte by byte where Pillow would not write them."""

from __future__ import annotations

import io

from PIL import Image


def _gif_blocks(data: bytes) -> tuple[bytes, bytes]:
    """Split a GIF Pillow wrote into (header with screen and palette, the blocks up to the trailer)."""
    flags = data[10]
    start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    if not data.endswith(b";"):
        raise ValueError("not a complete GIF (no trailer)")
    return data[:start], data[start:-1]


def _gif_frame(width: int, height: int, colour: int = 1) -> bytes:
    """The blocks of one GIF frame (graphic control + image descriptor + LZW data), as Pillow writes them."""
    buffer = io.BytesIO()
    Image.new("P", (width, height), colour).save(buffer, "GIF")
    _, blocks = _gif_blocks(buffer.getvalue())
    return blocks


def gif_with_frames(screen: tuple[int, int], frames: list[bytes]) -> bytes:
    """A GIF89a with a 2-colour global palette, the given logical screen, and the given frame blocks."""
    header = b"GIF89a" + screen[0].to_bytes(2, "little") + screen[1].to_bytes(2, "little")
    header += bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"  # global palette of 2 colours
    return header + b"".join(frames) + b";"


def gif_pixel_bomb(width: int, height: int) -> bytes:
    """A 1x1 logical screen whose second frame is width x height (a few KB for millions of pixels)."""
    return gif_with_frames((1, 1), [_gif_frame(1, 1), _gif_frame(width, height)])


def gif_many_frames(count: int) -> bytes:
    """``count`` 1x1 frames: tiny to download, one decode and one encode step each."""
    return gif_with_frames((1, 1), [_gif_frame(1, 1, colour=index % 2) for index in range(count)])


def tiff_pages(*sizes: tuple[int, int]) -> bytes:
    """A multi-page TIFF, one page per size (deflate-compressed flat colour, so small)."""
    pages = [Image.new("RGB", size, (index * 40 % 256, 90, 160)) for index, size in enumerate(sizes)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_adobe_deflate")
    return buffer.getvalue()


def jpeg_with_repeated_scan(width: int, height: int, repeats: int) -> bytes:
    """A progressive JPEG whose last scan is repeated ``repeats`` times (libjpeg decodes each again)."""
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(buffer, "JPEG", quality=90, progressive=True)
    data = buffer.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    scan = data[last_scan:-2]  # the SOS segment and its entropy-coded data, up to EOI
    return data[:-2] + scan * repeats + b"\xff\xd9"
