"""Image blocks as the Messages API checks them (vision guide): a ``base64`` source of type
jpeg/png/gif/webp whose bytes are valid base64 and match the type, at most 5 MB of base64 each
and at most 100 images per request, or an ``https`` ``url`` source.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

__all__ = ["IMAGE_TYPES", "MAX_IMAGES", "MAX_IMAGE_BASE64_BYTES", "check_image"]

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
MAX_IMAGES = 100
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


def check_image(spot: str, block: Mapping[str, Any]) -> str | None:
    """The problem with one ``image`` block, as the API words it, or ``None``."""
    source = block.get("source")
    if not isinstance(source, Mapping) or source.get("type") not in ("base64", "url"):
        return f"{spot}.source.type: Input should be 'base64', 'url' or 'file'"
    if source["type"] == "url":
        url = source.get("url")
        return (
            None
            if isinstance(url, str) and url.startswith("https://")
            else f"{spot}.source.url: invalid URL"
        )
    media_type = source.get("media_type")
    if media_type not in IMAGE_TYPES:
        return (
            f"{spot}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'"
        )
    data = source.get("data")
    if not isinstance(data, str) or not data:
        return f"{spot}.source.base64.data: Field required"
    if len(data) > MAX_IMAGE_BASE64_BYTES:
        return (
            f"{spot}.source.base64: image exceeds 5 MB maximum: {len(data)} bytes > "
            f"{MAX_IMAGE_BASE64_BYTES} bytes"
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"{spot}.source.base64.data: The image data is not valid base64"
    if not _matches(media_type, raw):
        return (
            f"{spot}.source.base64.data: Image does not match the provided media type {media_type}"
        )
    return None


def _matches(media_type: str, raw: bytes) -> bool:
    if media_type == "image/webp":
        return raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
    return any(raw.startswith(magic) for magic in _MAGIC[media_type])
