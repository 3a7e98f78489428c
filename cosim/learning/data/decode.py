"""Decoding what a dataset file holds, within bounds: an image header that declares 30,000 x
30,000 pixels, or a zlib stream that inflates to gigabytes, is refused before it is decoded.

Waymo's largest camera image is 1920 x 1280 (2.5 MP) and its TOP range image 64 x 2650 x 4
floats (2.7 MB); the caps below leave an order of magnitude above both.
"""

from __future__ import annotations

import io
import warnings
import zlib

import numpy as np
from PIL import Image

MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: 16 times Waymo's largest camera image
MAX_INFLATED_BYTES = 64 * 2**20  # a decompressed range image or label matrix


class DecodeError(ValueError):
    """The bytes are not what they claim, or claim more than the caps allow."""


def decode_image(data: bytes) -> Image.Image:
    """The image, decoded; its declared size is checked before its pixels are."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DecodeError(f"declares {width} x {height} pixels (at most "
                                  f"{MAX_IMAGE_PIXELS:,}): not a camera image")
            image.load()
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(f"a decompression bomb: {exc}") from None
    except Exception as exc:  # PIL raises many kinds on corrupt bytes
        text = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise DecodeError(f"not a decodable image: {text}") from None
    return image


def inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """zlib-decompressed ``data``, refused once it passes ``limit`` bytes (a zlib bomb)."""
    stream = zlib.decompressobj()
    try:
        out = stream.decompress(data, limit)
    except zlib.error as exc:
        raise DecodeError(f"not zlib data: {exc}") from None
    if stream.unconsumed_tail:
        raise DecodeError(f"inflates to more than {limit:,} bytes (a zlib bomb?)")
    if not stream.eof:
        raise DecodeError("truncated zlib data")
    return out


def label_outside(values: np.ndarray, classes: int) -> str | None:
    """Why a label image's class values are not Waymo's (each in 0..classes-1), or None: a
    class past the task's list would index past its heads and metrics mid-run."""
    if values.size == 0:
        return None
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        return f"class {bad} is none of the {classes} classes (0-{classes - 1})"
    return None
