"""Turn images (PIL, arrays or files) into the normalised pixel batch a backbone expects.

Each backbone declares a :class:`PreprocessConfig`: input size, resize rule and normalisation.
Anomaly detection must see the whole part, so the default resize rule is ``"squash"`` (resize to the
target size, no crop), as anomalib does; ``"shortest_crop"`` reproduces CLIP's resize-then-centre-crop.
Grey, palette, 16-bit and RGBA inputs are converted to RGB by :func:`lake_interp.images.to_rgb`.

Example:
    >>> from PIL import Image
    >>> cfg = PreprocessConfig(image_size=28)
    >>> preprocess([Image.new("L", (50, 30))], cfg).shape
    torch.Size([1, 3, 28, 28])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lake_interp.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}

ImageLike = Image.Image | np.ndarray | str | os.PathLike


@dataclass(frozen=True)
class PreprocessConfig:
    """Input size, resize rule and normalisation of one backbone.

    Attributes:
        image_size: target side in pixels (square), or ``(height, width)``.
        resize: ``"squash"`` (whole image, aspect not kept) or ``"shortest_crop"`` (resize the short
            side, then centre crop; CLIP's default).
    """

    image_size: int | tuple[int, int] = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "squash"
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.resize not in ("squash", "shortest_crop"):
            raise ConfigError(f"resize must be 'squash' or 'shortest_crop', got {self.resize!r}")
        if self.interpolation not in _RESAMPLE:
            raise ConfigError(f"interpolation must be one of {sorted(_RESAMPLE)}, got {self.interpolation!r}")
        if min(self.size) < 1:
            raise ConfigError(f"image_size must be positive, got {self.image_size}")

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the preprocessed image."""
        return (self.image_size, self.image_size) if isinstance(self.image_size, int) else tuple(self.image_size)

    def with_size(self, image_size: int | tuple[int, int]) -> PreprocessConfig:
        """A copy with another input size."""
        return PreprocessConfig(image_size, self.mean, self.std, self.resize, self.interpolation)


def resize_image(image: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """Resize (and crop, for ``shortest_crop``) an RGB image to ``cfg.size``."""
    height, width = cfg.size
    resample = _RESAMPLE[cfg.interpolation]
    if cfg.resize == "squash":
        return image.resize((width, height), resample)
    scale = max(height / image.height, width / image.width)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))), resample)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def to_tensor(image: Image.Image, cfg: PreprocessConfig) -> Tensor:
    """Normalise one resized RGB image: ``-> [3, H, W]`` float32."""
    array = np.asarray(image, dtype=np.float32) / 255.0  # [H, W, 3]
    mean = np.asarray(cfg.mean, dtype=np.float32)
    std = np.asarray(cfg.std, dtype=np.float32)
    return torch.from_numpy(((array - mean) / std).transpose(2, 0, 1).copy())


def preprocess(images: Sequence[ImageLike], cfg: PreprocessConfig) -> Tensor:
    """Load, convert to RGB, resize and normalise ``images``: ``-> [batch, 3, H, W]``.

    Paths are read with :func:`lake_interp.images.load_image` (clear error for unreadable files).
    """
    from lake_interp.images import load_image, to_rgb

    if len(images) == 0:
        raise ConfigError("preprocess() got an empty list of images")
    tensors = []
    for image in images:
        if isinstance(image, (str, os.PathLike)):
            image = load_image(image)
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        tensors.append(to_tensor(resize_image(to_rgb(image), cfg), cfg))
    return torch.stack(tensors)  # [batch, 3, H, W]
