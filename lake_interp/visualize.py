"""Anomaly-map overlays as images (no matplotlib needed).

Example:
    >>> import numpy as np
    >>> from PIL import Image
    >>> out = overlay(Image.new("RGB", (20, 10)), np.random.rand(10, 20), alpha=0.5)
    >>> out.size, out.mode
    ((20, 10), 'RGB')
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# plotly's Inferno, the perceptually uniform map used throughout the app
_INFERNO = ["#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d", "#fcffa4"]


def _lut(hex_colours: list[str], n: int = 256) -> np.ndarray:
    stops = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in hex_colours], dtype=np.float64)
    x = np.linspace(0, 1, len(stops))
    grid = np.linspace(0, 1, n)
    return np.stack([np.interp(grid, x, stops[:, c]) for c in range(3)], axis=1).astype(np.uint8)  # [n, 3]


INFERNO_LUT = _lut(_INFERNO)


def colorize(amap: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map a 2-D array to RGB with the inferno colormap: ``[H, W] -> [H, W, 3]`` uint8."""
    amap = np.asarray(amap, dtype=np.float64)
    lo = float(np.nanmin(amap)) if vmin is None else vmin
    hi = float(np.nanmax(amap)) if vmax is None else vmax
    scaled = np.clip((amap - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return INFERNO_LUT[np.nan_to_num(scaled * 255).astype(np.uint8)]


def overlay(
    image: Image.Image, amap: np.ndarray, alpha: float = 0.5, vmin: float | None = None, vmax: float | None = None
) -> Image.Image:
    """Blend the coloured ``amap`` (resized to the image if needed) over ``image``."""
    colours = Image.fromarray(colorize(amap, vmin, vmax))
    if colours.size != image.size:
        colours = colours.resize(image.size, Image.Resampling.BILINEAR)
    return Image.blend(image.convert("RGB"), colours, float(alpha))


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask ``[H, W] -> [H, W]`` bool (4-neighbourhood)."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def draw_outline(image: Image.Image, mask: np.ndarray, colour: tuple[int, int, int] = (0, 255, 128)) -> Image.Image:
    """Draw the outline of ``mask`` (same size as ``image``, or resized nearest) onto a copy of ``image``."""
    if mask.shape != (image.height, image.width):
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(image.size, Image.Resampling.NEAREST)) > 0
    array = np.array(image.convert("RGB"))
    array[mask_outline(mask)] = colour
    return Image.fromarray(array)
