"""The work one image may cost to decode, checked before Pillow decodes anything, and while it does.

Pillow reports the size of the first frame (for a GIF, the logical screen) when an image is opened;
a later frame or page can be far larger, and a GIF canvas grows to hold every frame. So before any
pixel is decoded every frame is surveyed from the file's own structure (``survey``):

- GIF: its blocks are walked (no LZW decoding) and the canvas grown as Pillow grows it, so each
  frame's decoded size is known;
- TIFF: each page's directory is read by seeking (Pillow reads tags there, no pixels);
- other animations (APNG, WebP): every frame is the canvas size.

The survey refuses an image with more than ``MAX_FRAMES`` frames, a frame over the pixel limit, or
more than ``max_pixels * ANIMATION_PIXEL_FACTOR`` pixels over all frames. A JPEG with more than
``MAX_JPEG_SCANS`` scans is refused before decoding (libjpeg decodes every scan of a progressive
file again over the whole image; real encoders write at most a dozen or two). The scans are
counted over the whole file unless its header shows libjpeg will decode exactly one scan (see
``_single_scan``): most photos are such baseline files, and the count costs ~0.65 ms of CPU per
500 KB. A ``Deadline``
is checked between the steps that can be interrupted (frame seeks, encodes): Pillow's decoders
cannot be stopped from Python, so the caps above bound each step and the deadline bounds the sum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PIL import Image

from shared.errors import PermanentFailure

MAX_FRAMES = 1000
# An animation may decode this many times the still-image pixel limit over all its frames.
ANIMATION_PIXEL_FACTOR = 4
MAX_JPEG_SCANS = 40
DECODE_DEADLINE_S = 60.0

_JPEG_START_OF_SCAN = b"\xff\xda"  # in entropy-coded data 0xFF is always stuffed, so this is a marker
_SOI, _SOS = 0xD8, 0xDA
_SEQUENTIAL_HUFFMAN_FRAMES = frozenset({0xC0, 0xC1})  # SOF0 baseline, SOF1 extended sequential
# Header segments libjpeg reads by their length field (jdmarker.c read_markers): DHT, DQT, DRI,
# APP0-APP15, COM. Anything else before the first scan sends the file to the full count.
_SKIPPED_BY_LENGTH = frozenset({0xC4, 0xDB, 0xDD, 0xFE, *range(0xE0, 0xF0)})


class TooComplex(PermanentFailure):
    """Raised when an image would take more frames, scans or time than one image may use."""


@dataclass(frozen=True)
class Survey:
    frames: int
    largest: tuple[int, int]  # the largest decoded frame (width, height)
    total_pixels: int


class Deadline:
    """A wall-clock budget for one image, checked between interruptible steps."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._ends:
            raise TooComplex(f"image too complex: not decoded within {self.seconds:g}s")


def check_jpeg_scans(data: bytes) -> None:
    """Refuse a JPEG whose scans would make libjpeg decode the image too many times."""
    if _single_scan(data):
        return
    scans = data.count(_JPEG_START_OF_SCAN)
    if scans > MAX_JPEG_SCANS:
        raise TooComplex(f"image too complex: {scans} JPEG scans, at most {MAX_JPEG_SCANS}")


def _single_scan(data: bytes) -> bool:
    """Whether libjpeg decodes one scan at most: a sequential frame whose first scan has every component.

    libjpeg-turbo's ``jdinput.c`` (``initial_setup``) sets ``has_multiple_scans`` only when the
    frame is progressive or the first scan holds fewer components than the frame; without it the
    image is decoded from that one scan and a later SOS marker is a fatal error
    (``JERR_EOI_EXPECTED`` in ``consume_markers``), so extra scans cost nothing. The header is
    walked strictly, segment by segment from SOI; wherever libjpeg could read it differently
    (bytes between segments, fill bytes, an unusual marker, a second frame, a length that does not
    fit) the answer is False and the caller counts every scan.
    """
    if data[:2] != b"\xff\xd8":
        return False
    position, frame, components = 2, 0, 0
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position + 4 : position + 2 + length]
        if length < 2 or len(segment) != length - 2:
            return False
        if marker == _SOS:
            scan_components = segment[0] if segment else -1
            return frame in _SEQUENTIAL_HUFFMAN_FRAMES and length == 6 + 2 * scan_components == 6 + 2 * components
        if marker in _SEQUENTIAL_HUFFMAN_FRAMES:
            if frame or length < 8 or length != 8 + 3 * segment[5]:
                return False
            frame, components = marker, segment[5]
        elif marker not in _SKIPPED_BY_LENGTH:
            return False  # another frame type (progressive, lossless, arithmetic...), or SOI, EOI, RSTn, fill
        position += 2 + length
    return False


def survey(source: Image.Image, data: bytes, max_pixels: int) -> Survey:
    """Every frame's decoded size, read from the file's structure; raises if any limit is passed."""
    if source.format == "GIF":
        sizes = _gif_canvas_sizes(data)
    elif source.format == "TIFF":
        sizes = _tiff_page_sizes(source)
    else:
        frames = int(getattr(source, "n_frames", 1) or 1)
        if frames > MAX_FRAMES:
            raise TooComplex(f"image too complex: {frames} frames, at most {MAX_FRAMES}")
        sizes = [source.size] * frames
    if not sizes:
        raise PermanentFailure("image is truncated or corrupt: no frame found")
    total = 0
    for index, (width, height) in enumerate(sizes, start=1):
        where = f"frame {index} is " if len(sizes) > 1 else ""
        if width * height > max_pixels:
            raise PermanentFailure(f"image too large: {where}{width}x{height} pixels")
        total += width * height
    if len(sizes) > 1 and total > max_pixels * ANIMATION_PIXEL_FACTOR:
        raise PermanentFailure(f"image too large: {total} pixels over {len(sizes)} frames")
    largest = max(sizes, key=lambda size: size[0] * size[1])
    return Survey(len(sizes), largest, total)


def check_frame(source: Image.Image, surveyed: Survey, deadline: Deadline) -> None:
    """After a seek: the frame is no larger than surveyed, and there is still time."""
    width, height = source.size
    if width * height > surveyed.largest[0] * surveyed.largest[1]:
        raise PermanentFailure(f"image too large: a frame of {width}x{height} pixels was not announced")
    deadline.check()


def _tiff_page_sizes(source: Image.Image) -> list[tuple[int, int]]:
    sizes = []
    page = 0
    while True:
        sizes.append(source.size)
        if len(sizes) > MAX_FRAMES:
            raise TooComplex(f"image too complex: more than {MAX_FRAMES} pages")
        page += 1
        try:
            source.seek(page)
        except EOFError:
            break
    source.seek(0)
    return sizes


def _gif_canvas_sizes(data: bytes) -> list[tuple[int, int]]:
    """The canvas size Pillow decodes each frame at: the screen grown to hold every frame so far."""
    if len(data) < 13:
        raise PermanentFailure("image is truncated or corrupt: GIF header cut short")
    width, height = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    position = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    sizes: list[tuple[int, int]] = []
    while position < len(data):
        block = data[position]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            position = _skip_sub_blocks(data, position + 2)
        elif block == 0x2C:  # image descriptor
            descriptor = data[position + 1 : position + 10]
            if len(descriptor) < 9:
                break
            left, top, frame_width, frame_height = (
                int.from_bytes(descriptor[i : i + 2], "little") for i in range(0, 8, 2)
            )
            width, height = max(width, left + frame_width), max(height, top + frame_height)
            sizes.append((width, height))
            if len(sizes) > MAX_FRAMES:
                raise TooComplex(f"image too complex: more than {MAX_FRAMES} frames")
            flags = descriptor[8]
            position += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            position = _skip_sub_blocks(data, position + 1)  # after the LZW minimum code size
        else:
            position += 1  # Pillow skips an unknown byte and reads on: so must the survey
    return sizes


def _skip_sub_blocks(data: bytes, position: int) -> int:
    while position < len(data):
        length = data[position]
        position += 1 + length
        if length == 0:
            break
    return position
