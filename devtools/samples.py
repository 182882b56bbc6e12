"""Sample inputs: real photo crops as JPEG bytes, and product CSVs in the brief's format."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

SOURCES = Path(__file__).resolve().parents[1] / "samples" / "sources"


def photo_jpeg(index: int, size: tuple[int, int] = (480, 360), quality: int = 90) -> bytes:
    """A real photo crop (so JPEG sizes are realistic), different for every index."""
    sources = sorted(p for p in SOURCES.iterdir() if p.suffix in {".png", ".jpg"})
    with Image.open(sources[index % len(sources)]) as source:
        rgb = source.convert("RGB")
    x = (index * 37) % max(1, rgb.width - size[0])
    y = (index * 53) % max(1, rgb.height - size[1])
    crop = rgb.crop((x, y, x + size[0], y + size[1]))
    out = io.BytesIO()
    crop.save(out, "JPEG", quality=quality)
    return out.getvalue()


def csv_for(urls_per_product: list[list[str]]) -> str:
    lines = ["S. No.,Product Name,Input Image Urls"]
    for index, urls in enumerate(urls_per_product, start=1):
        lines.append(f'{index}.,SKU{index},"{",".join(urls)}"')
    return "\r\n".join(lines) + "\r\n"
