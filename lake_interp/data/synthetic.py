"""A synthetic MVTec-layout category from scikit-image's CC0 textures, with exact defect masks.

Normal images are random crops (scale jitter, flips) of ``skimage.data.brick()``, ``grass()`` or
``gravel()``, tinted to RGB. Defective test images get one of four clearly visible defects:

- ``scratch``: a 2-4 px wide straight line, much darker or brighter than the surface;
- ``hole``: a dark filled ellipse with a slightly lighter rim-free centre;
- ``stain``: a saturated blue blob (union of ellipses) blended over the surface;
- ``cut_paste``: a rectangle copied from another crop at another scale, rotated by 90 degrees and
  brightness-shifted (as in CutPaste).

A mask marks exactly the changed pixels (PNG, 0/255, ``<stem>_mask.png``). Output is byte-identical for
the same arguments: every image has its own generator seeded by ``(seed, split, index)``.

Example:
    >>> import tempfile
    >>> from lake_interp.data import load_category
    >>> path = make_synthetic_category(tempfile.mkdtemp(), n_train=2, n_test_good=1, n_test_defect=4, size=64)
    >>> load_category(path).summary()["per_defect"]
    {'cut_paste': 1, 'hole': 1, 'scratch': 1, 'stain': 1}
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lake_interp.errors import ConfigError

TEXTURES = ("brick", "grass", "gravel")
DEFECT_TYPES = ("scratch", "hole", "stain", "cut_paste")
_TINTS = {"brick": (1.10, 0.82, 0.68), "grass": (0.80, 1.05, 0.70), "gravel": (0.95, 0.93, 0.90)}
_SPLITS = {"train": 0, "test_good": 1, "test_defect": 2}

__all__ = ["DEFECT_TYPES", "TEXTURES", "make_synthetic_category"]


@lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    import skimage.data

    return np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)  # [512, 512] grey


def _crop(texture: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop (side 35-50 % of the texture, flips) resized to ``size``: float32 RGB [size, size, 3]."""
    tex = _texture(texture)
    side = int(rng.integers(int(0.35 * tex.shape[0]), int(0.5 * tex.shape[0]) + 1))
    y = int(rng.integers(0, tex.shape[0] - side + 1))
    x = int(rng.integers(0, tex.shape[1] - side + 1))
    patch = tex[y : y + side, x : x + side]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if rng.random() < 0.5:
        patch = patch[::-1, :]
    grey = np.asarray(Image.fromarray(np.ascontiguousarray(patch)).resize((size, size), Image.BILINEAR), np.float32)
    return grey[:, :, None] * np.asarray(_TINTS[texture], np.float32)[None, None, :]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _draw_mask(size: int, draw_fn) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw_fn(ImageDraw.Draw(canvas))
    return np.asarray(canvas) > 0  # [size, size] bool


def _scratch(img: np.ndarray, rng: np.random.Generator, texture: str) -> np.ndarray:
    size = img.shape[0]
    length = rng.uniform(0.35, 0.6) * size
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.3, 0.7, size=2) * size
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    width = max(2, int(round(size * rng.uniform(0.02, 0.035))))
    mask = _draw_mask(size, lambda d: d.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=255, width=width))
    value = 15.0 if img[mask].mean() > 110 else 245.0
    img[mask] = value + rng.normal(0, 4, size=(int(mask.sum()), 1)).astype(np.float32)
    return mask


def _hole(img: np.ndarray, rng: np.random.Generator, texture: str) -> np.ndarray:
    size = img.shape[0]
    rx, ry = rng.uniform(0.06, 0.12, size=2) * size
    cx, cy = rng.uniform(0.25, 0.75, size=2) * size
    mask = _draw_mask(size, lambda d: d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255))
    yy, xx = np.nonzero(mask)
    radius = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)  # 0 centre .. ~1 edge
    img[yy, xx] = (8.0 + 22.0 * (1.0 - np.clip(radius, 0, 1)))[:, None]
    return mask


def _stain(img: np.ndarray, rng: np.random.Generator, texture: str) -> np.ndarray:
    size = img.shape[0]
    cx, cy = rng.uniform(0.3, 0.7, size=2) * size
    blobs = []
    for _ in range(int(rng.integers(3, 6))):
        ox, oy = rng.normal(0, 0.05, size=2) * size
        rx, ry = rng.uniform(0.05, 0.1, size=2) * size
        blobs.append([cx + ox - rx, cy + oy - ry, cx + ox + rx, cy + oy + ry])
    mask = _draw_mask(size, lambda d: [d.ellipse(b, fill=255) for b in blobs])
    colour = np.asarray([40.0, 70.0, 200.0], np.float32)
    img[mask] = 0.25 * img[mask] + 0.75 * colour
    return mask


def _cut_paste(img: np.ndarray, rng: np.random.Generator, texture: str) -> np.ndarray:
    size = img.shape[0]
    source = _crop(texture, rng, 2 * size)  # another crop at twice the scale
    ph, pw = (rng.uniform(0.18, 0.3, size=2) * size).astype(int)
    sy = int(rng.integers(0, source.shape[0] - ph + 1))
    sx = int(rng.integers(0, source.shape[1] - pw + 1))
    patch = np.rot90(source[sy : sy + ph, sx : sx + pw], k=1)  # [pw, ph, 3]
    shift = 70.0 if rng.random() < 0.5 else -70.0
    patch = patch * 1.0 + shift
    h, w = patch.shape[:2]
    y = int(rng.integers(0, size - h + 1))
    x = int(rng.integers(0, size - w + 1))
    img[y : y + h, x : x + w] = patch
    mask = np.zeros((size, size), dtype=np.bool_)
    mask[y : y + h, x : x + w] = True
    return mask


_DEFECTS = {"scratch": _scratch, "hole": _hole, "stain": _stain, "cut_paste": _cut_paste}


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", optimize=False)


def make_synthetic_category(
    out_root: str | os.PathLike,
    name: str = "brick",
    texture: str = "brick",
    n_train: int = 8,
    n_test_good: int = 4,
    n_test_defect: int = 6,
    size: int = 128,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write ``<out_root>/<name>`` in the MVTec AD layout and return that path.

    Defect types cycle through ``scratch, hole, stain, cut_paste`` over the ``n_test_defect`` images.
    An existing non-empty ``<out_root>/<name>`` is an error unless ``overwrite=True`` (then it is replaced).

    Example:
        >>> path = make_synthetic_category("/tmp/synth", texture="gravel", seed=1)  # doctest: +SKIP
    """
    if texture not in TEXTURES:
        raise ConfigError(f"texture must be one of {', '.join(TEXTURES)}, got {texture!r}")
    if not isinstance(size, int) or not 32 <= size <= 1024:
        raise ConfigError(f"size must be an integer in [32, 1024], got {size!r}")
    counts = (("n_train", n_train, 1), ("n_test_good", n_test_good, 0), ("n_test_defect", n_test_defect, 0))
    for label, value, low in counts:
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}")
    if n_test_good + n_test_defect < 1:
        raise ConfigError("at least one test image is needed (n_test_good + n_test_defect >= 1)")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if not name or Path(name).name != name or name.startswith("."):
        raise ConfigError(f"name must be a plain folder name, got {name!r}")
    category = Path(out_root) / name
    if category.exists() and any(category.iterdir()):
        if not overwrite:
            raise ConfigError(f"{category} already exists and is not empty; pass overwrite=True to replace it")
        shutil.rmtree(category)

    def rng_for(split: str, index: int) -> np.random.Generator:
        return np.random.default_rng([seed, _SPLITS[split], index])

    for i in range(n_train):
        _save_png(_to_uint8(_crop(texture, rng_for("train", i), size)), category / "train" / "good" / f"{i:03d}.png")
    for i in range(n_test_good):
        _save_png(_to_uint8(_crop(texture, rng_for("test_good", i), size)), category / "test" / "good" / f"{i:03d}.png")
    counters = dict.fromkeys(DEFECT_TYPES, 0)
    for i in range(n_test_defect):
        defect = DEFECT_TYPES[i % len(DEFECT_TYPES)]
        rng = rng_for("test_defect", i)
        img = _crop(texture, rng, size)
        mask = _DEFECTS[defect](img, rng, texture)
        stem = f"{counters[defect]:03d}"
        counters[defect] += 1
        _save_png(_to_uint8(img), category / "test" / defect / f"{stem}.png")
        _save_png(mask.astype(np.uint8) * 255, category / "ground_truth" / defect / f"{stem}_mask.png")
    return category
