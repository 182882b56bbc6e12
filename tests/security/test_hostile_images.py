"""Hostile and awkward images end to end: one request, one product per case, through the local host.

Each image must end in the right state: Done with an output file that is what it should be
(opened and checked), or Failed with a reason a client can act on. Nothing may hang the request.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from devtools import images
from devtools.http_servers import Reply, endless, redirect, trickle
from devtools.samples import csv_for, photo_jpeg

pytestmark = pytest.mark.integration

MAX_IMAGE_BYTES = 400_000


def served(body: bytes, content_type: str) -> Reply:
    return Reply(body=body, headers={"Content-Type": content_type})


def output_image(result: dict) -> Image.Image:
    url = result["output_url"]
    assert url and url.startswith("file:"), result
    data = Path(unquote(urlsplit(url).path)).read_bytes()
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def check_animated(result: dict) -> None:
    with output_image(result) as out:
        assert getattr(out, "is_animated", False) and out.n_frames == 4, (out.format, out.info)
        assert out.size == (96, 64)


def check_cmyk(result: dict) -> None:
    with output_image(result) as out:
        assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (320, 240))


def check_16_bit(result: dict) -> None:
    with output_image(result) as out:
        assert out.format == "JPEG" and out.mode == "L" and out.size == (200, 150)
        low, high = out.getextrema()
        assert high - low > 200  # the 16-bit range was scaled, not clipped to black or white


def check_exif_rotated(result: dict) -> None:
    with output_image(result) as out:
        assert out.size == (200, 320)  # stored 320x200, orientation 6: shown upright
        assert out.getexif().get(images.EXIF_ORIENTATION, 1) == 1
    assert (result["width"], result["height"]) == (200, 320)


def check_alpha(result: dict) -> None:
    with output_image(result) as out:
        assert "A" in out.mode, out.mode
        assert out.getchannel("A").getextrema()[0] < 255


def check_plain_photo(result: dict) -> None:
    with output_image(result) as out:
        assert (out.format, out.size) == ("JPEG", (480, 360))


# path -> (reply, expected status, checker of the Done output or a fragment of the Failed reason)
def cases(base_url: str) -> dict[str, tuple[Reply, str, object]]:
    return {
        "/bomb.png": (served(images.bomb_png(), "image/png"), "Failed", "too large"),
        "/truncated.jpg": (served(images.truncated(images.jpeg(640, 480)), "image/jpeg"), "Failed",
                           "truncated or corrupt"),
        "/endless.jpg": (endless(), "Failed", f"larger than {MAX_IMAGE_BYTES} bytes"),
        "/declared-huge.jpg": (Reply(body=b"x", headers={"Content-Type": "image/jpeg",
                                                         "Content-Length": str(10**9)}),
                               "Failed", f"larger than {MAX_IMAGE_BYTES} bytes"),
        # Slower than the read timeout (1 s): every attempt times out, the last one records Failed.
        "/stalls.jpg": (trickle(images.jpeg(), interval_s=3.0, chunk=100), "Failed", "timed out"),
        # Each byte in time, but the whole far past the total deadline.
        "/drips.jpg": (trickle(images.jpeg(), interval_s=0.3, chunk=50), "Failed", "took longer than"),
        "/html.jpg": (served(b"<!doctype html><html><body>login</body></html>", "image/jpeg"), "Failed",
                      "not an image"),
        "/drawing.svg": (served(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9000" '
                                b'height="9000"><script>alert(1)</script></svg>', "image/svg+xml"),
                         "Failed", "not an image"),
        "/empty.jpg": (served(b"", "image/jpeg"), "Failed", "empty"),
        "/loop.jpg": (redirect(base_url + "/loop.jpg"), "Failed", "redirects"),
        "/to-metadata.jpg": (redirect("http://169.254.169.254/latest/meta-data/"), "Failed", "refused"),
        "/to-private.jpg": (redirect("http://10.0.0.1/a.jpg", status=307), "Failed", "refused"),
        "/to-file.jpg": (redirect("file:///etc/passwd"), "Failed", "refused"),
        "/animated.gif": (served(images.animated_gif(), "image/gif"), "Done", check_animated),
        "/cmyk.jpg": (served(images.cmyk_jpeg(), "image/jpeg"), "Done", check_cmyk),
        "/grey16.png": (served(images.grey16_png(), "image/png"), "Done", check_16_bit),
        "/rotated.jpg": (served(images.exif_rotated_jpeg(), "image/jpeg"), "Done", check_exif_rotated),
        "/alpha.png": (served(images.rgba_png(), "image/png"), "Done", check_alpha),
        "/photo.jpg": (served(photo_jpeg(3), "image/jpeg"), "Done", check_plain_photo),
    }


def test_each_hostile_image_ends_done_with_a_correct_output_or_failed_with_a_reason(
        secure_stack, image_server) -> None:
    stack = secure_stack(MAX_IMAGE_BYTES=str(MAX_IMAGE_BYTES), OUTBOUND_READ_TIMEOUT_SECONDS="1",
                         OUTBOUND_CONNECT_TIMEOUT_SECONDS="1")
    base_url = image_server.url("")
    table = cases(base_url)
    for path, (reply, _, _) in table.items():
        image_server.route(path, reply)
    paths = list(table)
    response = stack.upload(csv_for([[image_server.url(path)] for path in paths]))
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    stack.wait_for_status(request_id, timeout_s=150)

    results = stack.status(request_id, include="images").json()["results"]
    assert [urlsplit(r["input_url"]).path for r in results] == paths
    wrong = []
    for path, result in zip(paths, results, strict=True):
        _, wanted, check = table[path]
        if result["status"] != wanted:
            wrong.append((path, result["status"], result["error"]))
        elif wanted == "Failed" and check not in (result["error"] or ""):
            wrong.append((path, "reason", result["error"]))
        elif wanted == "Done":
            check(result)
    assert wrong == []
    assert stack.tripwire_hits() == []
