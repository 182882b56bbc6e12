"""Images that are small to download and huge or endless to decode (issue 11, findings 1 and 2).

Each bomb is built here, then handed to ``compress_image`` the way ``process_queue`` does. Before
the fix each of these decoded (or crashed with an exception that was retried); now each is a
permanent failure whose reason says what was refused, and nothing big is decoded.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from devtools import bombs
from shared.decode_budget import MAX_FRAMES, MAX_JPEG_SCANS
from shared.errors import PermanentFailure
from shared.imaging import compress_image

MAX_PIXELS = 1_000_000


def refused(data: bytes, max_pixels: int = MAX_PIXELS) -> str:
    with pytest.raises(PermanentFailure) as caught:
        compress_image(data, max_pixels=max_pixels)
    return str(caught.value)


_MEASURE_CHILD = """
import resource, sys
from shared.errors import PermanentFailure
from shared.imaging import compress_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    compress_image(data, max_pixels=50_000_000)
    outcome = "compressed"
except PermanentFailure as exc:
    outcome = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(outcome)
print((after - before) // 1024)
"""


def test_the_gif_builder_makes_a_decodable_bomb() -> None:
    """The bomb is real: Pillow, seeking its second frame, grows the canvas to the frame's size."""
    data = bombs.gif_pixel_bomb(1500, 1000)
    assert len(data) < 20_000
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (1, 1)
        image.seek(1)
        assert image.size == (1500, 1000)


def test_gif_whose_later_frame_is_larger_than_the_screen_is_refused_before_decoding() -> None:
    reason = refused(bombs.gif_pixel_bomb(2000, 2000))
    assert reason == "image too large: frame 2 is 2000x2000 pixels"


def test_gif_pixel_bomb_at_production_limits_keeps_the_worker_small(tmp_path: Path) -> None:
    """48 KB announcing 8000x8000 in its second frame: refused with the peak memory barely moved.

    Measured in a fresh process (peak RSS is per process). Before the fix the frame was decoded:
    about 1.8 GiB at its peak.
    """
    bomb = tmp_path / "bomb.gif"
    bomb.write_bytes(bombs.gif_pixel_bomb(8000, 8000))
    assert bomb.stat().st_size < 100_000
    child = subprocess.run([sys.executable, "-c", _MEASURE_CHILD, str(bomb)], capture_output=True,
                           text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    outcome, grown_mib = child.stdout.split("\n")[:2]
    print(f"peak RSS grew by {grown_mib} MiB decoding a {bomb.stat().st_size}-byte GIF bomb")
    assert outcome == "image too large: frame 2 is 8000x8000 pixels"
    assert int(grown_mib) < 64  # one 8000x8000 palette frame alone is 61 MiB


def test_gif_frames_within_the_limit_but_too_many_pixels_in_total_are_refused() -> None:
    frame = bombs._gif_frame(900, 900)  # 0.81 MP each: under the limit alone
    data = bombs.gif_with_frames((900, 900), [frame] * 6)  # 4.9 MP over six frames: over 4x
    assert "pixels over 6 frames" in refused(data)


def test_gif_with_too_many_frames_is_refused_without_decoding_them() -> None:
    reason = refused(bombs.gif_many_frames(MAX_FRAMES + 500))
    assert reason == f"image too complex: more than {MAX_FRAMES} frames"


def test_gif_with_junk_bytes_between_frames_is_still_surveyed_frame_by_frame() -> None:
    """Pillow skips unknown bytes between blocks; the survey must not stop where Pillow reads on."""
    first, big = bombs._gif_frame(1, 1), bombs._gif_frame(2000, 2000)
    data = bombs.gif_with_frames((1, 1), [first, b"\x00\x07junk", big])
    assert "2000x2000" in refused(data)


def test_multi_page_tiff_with_a_large_later_page_is_a_permanent_failure() -> None:
    data = bombs.tiff_pages((16, 16), (1500, 1500))
    assert refused(data) == "image too large: frame 2 is 1500x1500 pixels"


def test_multi_page_tiff_with_small_pages_of_different_sizes_is_compressed() -> None:
    """Pages of different sizes cannot become one animation: the first page is kept as a still."""
    result = compress_image(bombs.tiff_pages((64, 48), (32, 32)), max_pixels=MAX_PIXELS)
    assert result.format in {"JPEG", "TIFF"} and (result.width, result.height) == (64, 48)


def test_progressive_jpeg_with_a_scan_repeated_is_refused_before_decoding() -> None:
    data = bombs.jpeg_with_repeated_scan(256, 256, repeats=400)
    scans = data.count(b"\xff\xda")
    assert scans > 400
    assert refused(data) == f"image too complex: {scans} JPEG scans, at most {MAX_JPEG_SCANS}"


def test_baseline_jpeg_of_one_component_scans_is_refused_before_decoding() -> None:
    """A sequential JPEG can be a scan bomb too, when its first scan leaves components out."""
    data = bombs.jpeg_with_component_scans(256, 256, scans=400)
    assert refused(data) == f"image too complex: 400 JPEG scans, at most {MAX_JPEG_SCANS}"


def test_scans_after_a_baseline_jpegs_one_full_scan_are_never_decoded() -> None:
    """Why a baseline JPEG whose first scan has every component is not counted (``_single_scan``).

    libjpeg decodes such a file from its first scan alone and stops with an error at the second
    SOS (jdinput.c: ``JERR_EOI_EXPECTED``): the file fails as corrupt, whatever follows. Before
    the scan count was skipped for these files, this one failed as "too complex" instead.
    """
    data = bombs.jpeg_with_scans_after_a_full_scan(64, 64, repeats=400)
    assert data.count(b"\xff\xda") > MAX_JPEG_SCANS
    assert refused(data) == "image is truncated or corrupt"


def test_a_header_the_strict_walk_cannot_follow_has_its_scans_counted() -> None:
    """Stray bytes libjpeg skips (with a warning) make the header walk give up: every scan is counted."""
    data = bombs.jpeg_with_scans_after_a_full_scan(64, 64, repeats=400, junk=True)
    assert refused(data) == f"image too complex: 401 JPEG scans, at most {MAX_JPEG_SCANS}"


def test_an_ordinary_progressive_jpeg_is_not_too_complex() -> None:
    buffer = io.BytesIO()
    Image.effect_noise((320, 240), 40).convert("RGB").save(buffer, "JPEG", quality=95, progressive=True)
    result = compress_image(buffer.getvalue(), max_pixels=MAX_PIXELS)
    assert result.format == "JPEG"


@pytest.mark.parametrize("error", [RuntimeError("encoder error -2"), MemoryError(), KeyError("x")])
def test_any_decoder_or_encoder_exception_is_a_permanent_failure(monkeypatch, error) -> None:
    """An exception from inside Pillow is never retried: the same bytes fail the same way."""
    import shared.imaging as imaging

    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(imaging, "_compress_opened", broken)
    with pytest.raises(PermanentFailure, match="could not be decoded or encoded"):
        compress_image(bombs.tiff_pages((8, 8)), max_pixels=MAX_PIXELS)


def test_the_per_image_deadline_is_checked_between_frames(monkeypatch) -> None:
    """Decoders cannot be interrupted; between frames and encodes the deadline is looked at."""
    import shared.imaging as imaging

    monkeypatch.setattr(imaging, "DECODE_DEADLINE_S", 0.0)
    data = bombs.gif_with_frames((64, 64), [bombs._gif_frame(64, 64, colour=i % 2) for i in range(3)])
    with pytest.raises(PermanentFailure, match="image too complex: not decoded within 0s"):
        compress_image(data, max_pixels=MAX_PIXELS)
