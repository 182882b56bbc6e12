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


def _baseline_jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def jpeg_with_component_scans(width: int, height: int, scans: int) -> bytes:
    """A baseline (sequential) colour JPEG of ``scans`` empty one-component scans.

    A first scan with fewer components than the frame makes libjpeg buffer the whole image and
    accept further scans; each empty one is decoded over every block of its component (libjpeg
    fills the missing data with zeros), so the cost grows with the scan count like a progressive bomb.
    """
    data = _baseline_jpeg(width, height)
    header = data[: data.index(b"\xff\xda")]
    one_component_scan = b"\xff\xda\x00\x08\x01%c\x00\x00\x3f\x00"  # Ns=1, tables 0, Ss=0, Se=63
    return header + b"".join(one_component_scan % (1 + index % 3) for index in range(scans)) + b"\xff\xd9"


def jpeg_with_scans_after_a_full_scan(width: int, height: int, repeats: int, *, junk: bool = False) -> bytes:
    """A baseline JPEG whose one interleaved scan is followed by ``repeats`` copies of it.

    ``junk`` puts stray bytes after the first header segment: Pillow and libjpeg skip them (libjpeg
    with a warning, jdmarker.c ``next_marker``), a strict header walk does not.
    """
    data = _baseline_jpeg(width, height)
    scan = data[data.index(b"\xff\xda") : -2]
    if junk:
        after_first_segment = 4 + int.from_bytes(data[4:6], "big")
        data = data[:after_first_segment] + b"\x00junk" + data[after_first_segment:]
    return data[:-2] + scan * repeats + b"\xff\xd9"
