"""Compress one downloaded image with Pillow ("compressed by 50%" = encoder quality 50).

What comes out, by what went in (dimensions are always kept; EXIF orientation is applied):
- an animation (GIF, APNG, WebP with more than one frame) → an animated WebP at ``quality``, with
  every frame, its duration and the loop count;
- a still image with transparency (alpha channel, or a transparent palette or grey entry) → a lossy
  WebP with alpha at ``quality``;
- anything else → a JPEG at ``quality`` (CMYK is converted to RGB, 16-bit to 8-bit, grey stays grey).

Only the ICC profile is kept (colours stay right); EXIF, XMP and comments are dropped. If the
encoded result is not smaller than the input, the input bytes are returned unchanged (with their
own format) and ``quality`` is 0, meaning "not re-encoded". With ``size_target_ratio`` > 0 the
quality is lowered by binary search (never below ``MIN_TARGET_QUALITY``) until the output is at
most that fraction of the input, where possible. ``optimize`` and ``progressive`` stay off:
measured on this machine they cost 40-200% more time for 1-5% smaller files.

Limits on the work of one image (``shared.decode_budget``): before any pixel is decoded, every frame
or page is surveyed and checked against the pixel limit, the frame count and the total pixels, and a
JPEG's scans are counted; each frame seek re-checks the size and a per-image deadline. This is per
call, so it does not touch Pillow's process-wide ``MAX_IMAGE_PIXELS`` (which other threads share).
Pillow's own bomb error, and its bomb warning where warnings are made errors, are reported as
"image too large" too; any other exception from a decoder or encoder is a permanent failure (the
same bytes would fail the same way on every retry). A multi-page TIFF (or a multi-picture JPEG)
is not an animation: its first page is compressed as a still.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from shared.decode_budget import DECODE_DEADLINE_S, Deadline, Survey, check_frame, check_jpeg_scans, survey
from shared.errors import PermanentFailure

logger = logging.getLogger(__name__)

# Formats we decode (multi-picture JPEGs open through JPEG as "MPO"); everything else (SVG, HTML,
# PDF, exotic plugins) is refused unparsed.
INPUT_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
MIN_TARGET_QUALITY = 10
# Formats whose frames are an animation; other multi-frame inputs (TIFF pages, MPO) keep frame 0.
ANIMATION_FORMATS = frozenset({"GIF", "PNG", "WEBP"})
_EXIF_ORIENTATION = 0x0112
_KEPT_AS = {  # input format → (format, extension, content type) when the input bytes are kept
    "JPEG": ("JPEG", "jpg", "image/jpeg"),
    "MPO": ("JPEG", "jpg", "image/jpeg"),
    "PNG": ("PNG", "png", "image/png"),
    "GIF": ("GIF", "gif", "image/gif"),
    "WEBP": ("WEBP", "webp", "image/webp"),
    "BMP": ("BMP", "bmp", "image/bmp"),
    "TIFF": ("TIFF", "tif", "image/tiff"),
}
_ENCODED_AS = {"JPEG": ("jpg", "image/jpeg"), "WEBP": ("webp", "image/webp")}
_TEXT_STARTS = (b"<", b"\xef\xbb\xbf<", b"{", b"%PDF")


@dataclass(frozen=True)
class CompressedImage:
    data: bytes
    format: str  # "JPEG", "WEBP", or the input's format when its bytes were kept
    extension: str  # without the dot
    content_type: str
    width: int
    height: int
    quality: int  # the encoder quality used; 0 when the input bytes were kept unchanged


def compress_image(
    data: bytes, *, quality: int = 50, max_pixels: int, size_target_ratio: float = 0.0,
    output_format: str = "keep", max_dimension: int | None = None,
) -> CompressedImage:
    """Compress ``data``; raises PermanentFailure if it is not a supported image or is too large.

    ``output_format`` "jpeg" or "webp" forces that format (a JPEG flattens transparency on white
    and keeps an animation's first frame); "keep" chooses as the module docstring says.
    ``max_dimension`` downscales so the longer side fits, never up. The input bytes are kept
    (when smaller) only if they already are what was asked for: same format, not downscaled.
    """
    if not data:
        raise PermanentFailure("not an image: the body is empty")
    if data.lstrip()[:5].startswith(_TEXT_STARTS):
        raise PermanentFailure("not an image: looks like SVG, HTML, XML, JSON or PDF")
    deadline = Deadline(DECODE_DEADLINE_S)
    try:
        with Image.open(io.BytesIO(data), formats=INPUT_FORMATS) as source:
            if source.format in ("JPEG", "MPO"):
                check_jpeg_scans(data)
            surveyed = survey(source, data, max_pixels)
            return _compress_opened(source, data, quality, surveyed, deadline, size_target_ratio,
                                    output_format.lower(), max_dimension)
    except PermanentFailure:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PermanentFailure("image too large: too many pixels") from None
    except UnidentifiedImageError:
        raise PermanentFailure("not an image, or not a supported format") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        logger.info("image could not be decoded: %s: %s", type(exc).__name__, exc)
        raise PermanentFailure("image is truncated or corrupt") from None
    except Exception as exc:  # RuntimeError, MemoryError, ... from inside Pillow
        logger.warning("image could not be decoded or encoded: %s", type(exc).__name__, exc_info=True)
        raise PermanentFailure(f"image could not be decoded or encoded ({type(exc).__name__})") from None


def _compress_opened(
    source: Image.Image, data: bytes, quality: int, surveyed: Survey, deadline: Deadline,
    size_target_ratio: float, wanted: str = "keep", max_dimension: int | None = None,
) -> CompressedImage:
    input_format = source.format or ""
    width, height = source.size
    icc_profile = source.info.get("icc_profile")

    encode: Callable[[int], bytes]
    resized = False
    if surveyed.frames > 1 and input_format in ANIMATION_FORMATS and wanted != "jpeg":
        output_format = "WEBP"
        scale = _scale_for(source.size, max_dimension)
        encode = _animated_webp_encoder(source, icc_profile, surveyed, deadline, scale)
        resized = scale < 1
        width, height = _scaled(source.size, scale)  # a GIF canvas grows to hold every frame
    else:
        source.load()  # decode once here: a truncated file fails now, not in each encode
        deadline.check()
        image = _upright(source)
        scale = _scale_for(image.size, max_dimension)
        if scale < 1:
            image, resized = image.resize(_scaled(image.size, scale), Image.Resampling.LANCZOS), True
        width, height = image.size
        transparent = _has_transparency(image)
        if wanted == "webp" or (transparent and wanted != "jpeg"):
            output_format = "WEBP"
            image = image.convert("RGBA" if transparent else "RGB")
        else:
            output_format = "JPEG"
            if transparent:
                image = _flattened(image)
            image, icc_profile = _to_jpeg_mode(image, icc_profile)
        encode = _still_encoder(image, output_format, icc_profile)

    quality_used, encoded = _encode_to_target(encode, quality, len(data), size_target_ratio, deadline)
    keepable = not resized and (wanted == "keep" or _KEPT_AS.get(input_format, ("",))[0] == output_format)
    if keepable and len(encoded) >= len(data) and input_format in _KEPT_AS:
        kept_format, extension, content_type = _KEPT_AS[input_format]
        return CompressedImage(data, kept_format, extension, content_type, width, height, quality=0)
    extension, content_type = _ENCODED_AS[output_format]
    return CompressedImage(encoded, output_format, extension, content_type, width, height, quality_used)


def _encode_to_target(
    encode: Callable[[int], bytes], quality: int, input_bytes: int, ratio: float, deadline: Deadline
) -> tuple[int, bytes]:
    """Encode at ``quality``; with a ratio, the highest quality whose output fits (or the lowest)."""
    encoded = encode(quality)
    deadline.check()
    if ratio <= 0 or len(encoded) <= ratio * input_bytes or quality <= MIN_TARGET_QUALITY:
        return quality, encoded
    target = ratio * input_bytes
    low, high = MIN_TARGET_QUALITY, quality - 1
    best: tuple[int, bytes] | None = None
    smallest = (quality, encoded)
    while low <= high:
        middle = (low + high) // 2
        attempt = encode(middle)
        deadline.check()
        if len(attempt) < len(smallest[1]):
            smallest = (middle, attempt)
        if len(attempt) <= target:
            best = (middle, attempt)
            low = middle + 1
        else:
            high = middle - 1
    return best or smallest


def _still_encoder(
    image: Image.Image, output_format: str, icc_profile: bytes | None
) -> Callable[[int], bytes]:
    def encode(quality: int) -> bytes:
        buffer = io.BytesIO()
        options: dict[str, object] = {"quality": quality}
        if icc_profile:
            options["icc_profile"] = icc_profile
        if output_format == "JPEG":
            options.update(optimize=False, progressive=False)
        else:
            options.update(method=4)  # libwebp's default speed/size trade-off
        image.save(buffer, output_format, **options)
        return buffer.getvalue()

    return encode


def _scale_for(size: tuple[int, int], max_dimension: int | None) -> float:
    """The factor that fits the longer side into ``max_dimension``; 1 when it fits already."""
    longest = max(size)
    return 1.0 if not max_dimension or longest <= max_dimension else max_dimension / longest


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    if scale >= 1:
        return size
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _flattened(image: Image.Image) -> Image.Image:
    """A transparent image on a white background (JPEG has no alpha)."""
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, "white")
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _animated_webp_encoder(
    source: Image.Image, icc_profile: bytes | None, surveyed: Survey, deadline: Deadline, scale: float = 1.0
) -> Callable[[int], bytes]:
    durations = []
    resized_frames: list[Image.Image] = []  # only when downscaling (max_dimension)
    for index in range(surveyed.frames):
        source.seek(index)
        check_frame(source, surveyed, deadline)
        durations.append(int(source.info.get("duration", 100) or 0))
        if scale < 1:
            resized_frames.append(source.convert("RGBA").resize(_scaled(source.size, scale), Image.Resampling.LANCZOS))
    source.seek(0)
    # A GIF without a loop count plays once; WebP's 0 means forever.
    loop = int(source.info.get("loop", 1 if source.format == "GIF" else 0))

    def encode(quality: int) -> bytes:
        buffer = io.BytesIO()
        if resized_frames:
            resized_frames[0].save(buffer, "WEBP", save_all=True, append_images=resized_frames[1:], quality=quality,
                                   duration=durations, loop=loop, method=4, icc_profile=icc_profile or b"")
            return buffer.getvalue()
        source.save(
            buffer,
            "WEBP",
            save_all=True,
            quality=quality,
            duration=durations,
            loop=loop,
            method=4,
            icc_profile=icc_profile or b"",
        )
        return buffer.getvalue()

    return encode


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (a copy only when there is something to turn)."""
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


def _has_transparency(image: Image.Image) -> bool:
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return image.getextrema()[-1][0] < 255  # type: ignore[index]  # an opaque alpha is no alpha
    return "transparency" in image.info


def _to_jpeg_mode(image: Image.Image, icc_profile: bytes | None) -> tuple[Image.Image, bytes | None]:
    """The image in a mode JPEG stores (L, RGB), with the profile that still describes it."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image, icc_profile
    if mode == "CMYK":
        return _cmyk_to_rgb(image, icc_profile)
    if mode.startswith("I;16") or mode == "I":
        # Pillow clips 16-bit values to 255 when converting to L; scale them instead.
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L"), icc_profile
    if mode in ("1", "F"):
        return image.convert("L"), icc_profile
    if mode in ("LA", "La"):
        return image.convert("L"), icc_profile
    return image.convert("RGB"), icc_profile


def _cmyk_to_rgb(image: Image.Image, icc_profile: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Convert through the embedded CMYK profile when there is one; the RGB result is sRGB."""
    if icc_profile:
        try:
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc_profile)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
            if converted is not None:
                return converted, None
        except (ImageCms.PyCMSError, OSError):
            logger.info("CMYK profile unusable; converting without it")
    return image.convert("RGB"), None
