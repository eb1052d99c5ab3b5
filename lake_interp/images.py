"""Read images and masks safely: every failure is an :class:`ImageReadError` naming the file.

Conversions done by :func:`load_image` (result is always an 8-bit ``RGB`` image):

- ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's ``convert("RGB")``.
- 16-bit grey (``I;16*``) is scaled by a fixed factor (65535 -> 255), so all images of a set are
  scaled alike. ``I`` (32-bit int) is used as is when its maximum is <= 255, else treated as 16-bit.
  ``F`` (float) is clipped to [0, 1] and scaled to 255 when its values lie in [0, 1], else clipped to [0, 255].
- Images with transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent colour) are composited
  on **black**: a fully transparent pixel becomes (0, 0, 0).
- Multi-frame files (GIF, TIFF stacks) give their first frame. EXIF orientation is **not** applied, so an
  image and its mask drawn on the stored pixels stay aligned.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
    >>> Image.new("L", (16, 12), 200).save(path)
    >>> load_image(path).mode, load_image(path).size
    ('RGB', (16, 12))
    >>> load_mask(path, size=(16, 12)).shape
    (12, 16)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from lake_interp.errors import ImageReadError

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MIN_SIDE = 8

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MIN_SIDE", "load_image", "load_mask"]


def _open_checked(path: str | os.PathLike, max_pixels: int, min_side: int, what: str) -> Image.Image:
    """Open and fully decode ``path``; check its size. The returned image is detached from the file."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{what} file not found: {path}")
    if not path.is_file():
        raise ImageReadError(f"{what} path is not a file: {path}")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{what} file is empty (0 bytes): {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size  # from the header, before decoding any pixels
                if width * height > max_pixels:
                    raise ImageReadError(
                        f"{what} {path} is too large: {width}x{height} = {width * height:,} pixels "
                        f"(limit {max_pixels:,}); downscale it or raise max_pixels"
                    )
                if min(width, height) < min_side:
                    raise ImageReadError(
                        f"{what} {path} is too small: {width}x{height} (each side must be >= {min_side} pixels)"
                    )
                img.load()  # decode now: truncated / corrupt data fails here, inside the try
                return img.copy()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{what} {path} is too large to decode safely: {exc}") from exc
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError, EOFError) as exc:
        # UnidentifiedImageError: not an image; OSError: truncated/corrupt data; others: broken headers
        raise ImageReadError(f"cannot read {what} {path}: {type(exc).__name__}: {exc}") from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (rules in the module docstring)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img).astype(np.float64)  # [H, W]
        if mode == "F":
            scale = 255.0 if arr.size and np.nanmin(arr) >= 0 and np.nanmax(arr) <= 1 else 1.0
            arr = np.nan_to_num(arr, nan=0.0) * scale
        elif mode == "I" and arr.size and arr.max() <= 255:
            pass
        else:
            arr = np.clip(arr, 0, 65535) / 257.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(
    path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE
) -> Image.Image:
    """Load an image file as an 8-bit RGB :class:`PIL.Image.Image`.

    Raises:
        ImageReadError: the file is missing, empty, not an image, corrupt or truncated, larger than
            ``max_pixels`` or with a side smaller than ``min_side``.

    Example:
        >>> img = load_image("photo.png")  # doctest: +SKIP
        >>> img.mode  # doctest: +SKIP
        'RGB'
    """
    img = _open_checked(path, max_pixels, min_side, "image")
    try:
        return to_rgb(img)
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot convert image {path} (mode {img.mode}) to RGB: {exc}") from exc


def load_mask(
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Load a ground-truth mask as ``np.bool_ [H, W]`` (any value > 0 is defect).

    Colour masks count a pixel as defect when any colour channel is > 0 (alpha is ignored; palette
    masks are compared by colour, not index). ``size`` is the ``(width, height)`` of the matching image
    as Pillow reports it; a mask of another size raises :class:`ImageReadError`.

    Example:
        >>> mask = load_mask("ground_truth/crack/000_mask.png", size=(900, 900))  # doctest: +SKIP
        >>> mask.dtype, mask.shape  # doctest: +SKIP
        (dtype('bool'), (900, 900))
    """
    img = _open_checked(path, max_pixels, 1, "mask")
    if size is not None and tuple(img.size) != tuple(size):
        raise ImageReadError(
            f"mask {path} has size {img.size[0]}x{img.size[1]} but its image has size {size[0]}x{size[1]} "
            "(width x height); masks must match their image pixel for pixel"
        )
    if img.mode not in ("1", "L", "LA", "RGB", "RGBA", "F") and not img.mode.startswith("I"):
        img = img.convert("RGB")  # palette (by colour, not index), CMYK, YCbCr, ...
    arr = np.asarray(img)
    if arr.ndim == 3:  # [H, W, C]: drop alpha (last channel of LA / RGBA)
        channels = arr.shape[2]
        if channels in (2, 4):
            arr = arr[..., : channels - 1]
        return np.asarray((arr > 0).any(axis=2), dtype=np.bool_)
    return np.asarray(arr > 0, dtype=np.bool_)
