"""Image sources of the Detector page: the demo category, a category of a data root, or uploads.

An :class:`ImageSet` is a hashable description (file paths, labels, masks) that the cached loaders of
:mod:`lake_interp.app.state` key on. Uploaded files are checked with :func:`lake_interp.images.load_image`
and stored under the app cache by content hash, so a re-upload hits the same cache entries.

Example:
    >>> from lake_interp.data import load_demo_category
    >>> images = from_category(load_demo_category())
    >>> len(images.pool), len(images.test), images.has_labels
    (8, 20, True)
    >>> len(subsample(images, 6).test)
    6
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from lake_interp.data import Category, Sample
from lake_interp.errors import ConfigError, ImageReadError
from lake_interp.images import load_image, load_mask

UPLOAD_MAX_PIXELS = 25_000_000  # 5000 x 5000; larger uploads are refused with a message
UPLOAD_MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class ImageSet:
    """Normal support pool and test images of one category (paths as strings, hashable).

    Attributes:
        pool: normal images the k-shot support is drawn from, sorted by path.
        test: test images; ``labels`` is 0/1 per test image or None when unknown (uploads);
            ``masks`` the ground-truth mask file of a defective image, else None.
    """

    key: str
    dataset: str
    name: str
    root: str
    pool: tuple[str, ...]
    test: tuple[str, ...]
    labels: tuple[int | None, ...]
    defects: tuple[str, ...]
    masks: tuple[str | None, ...]

    def __post_init__(self) -> None:
        n = len(self.test)
        if not (len(self.labels) == len(self.defects) == len(self.masks) == n):
            raise ConfigError("test, labels, defects and masks must have one entry per test image")

    @property
    def has_labels(self) -> bool:
        """True when every test image has a known label (metrics can be computed)."""
        return bool(self.test) and all(label is not None for label in self.labels)

    def display_name(self, path: str) -> str:
        """A short name of an image: its path relative to the category root (else the file name)."""
        if self.dataset == "upload":
            return Path(path).name
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).name

    def category(self) -> Category:
        """The support pool as a :class:`~lake_interp.data.Category` (for :func:`~lake_interp.data.sample_support`)."""
        train = tuple(Sample(Path(p), 0, "good", None) for p in self.pool)
        return Category(name=self.name, dataset=self.dataset, root=Path(self.root), train=train, test=())

    def test_masks(self, sizes: list[tuple[int, int]]) -> list[np.ndarray | None]:
        """Ground truth per test image at its size ``(height, width)``: ``bool [H, W]``; all-False for
        normal images, None for a defective image without mask or an unlabelled image."""
        out: list[np.ndarray | None] = []
        for label, mask, (height, width) in zip(self.labels, self.masks, sizes):
            if label == 0:
                out.append(np.zeros((height, width), dtype=np.bool_))
            elif label == 1 and mask is not None:
                out.append(load_mask(mask, size=(width, height)))
            else:
                out.append(None)
        return out


def from_category(category: Category) -> ImageSet:
    """The :class:`ImageSet` of a loaded category (test images sorted: normal first, then by path)."""
    test = sorted(category.test, key=lambda s: (s.label, s.defect, s.path.as_posix()))
    return ImageSet(
        key=f"{category.dataset}/{category.name}@{category.root}",
        dataset=category.dataset,
        name=category.name,
        root=str(category.root),
        pool=tuple(sorted(str(s.path) for s in category.train)),
        test=tuple(str(s.path) for s in test),
        labels=tuple(int(s.label) for s in test),
        defects=tuple(s.defect for s in test),
        masks=tuple(None if s.mask_path is None else str(s.mask_path) for s in test),
    )


def subsample(images: ImageSet, max_test: int) -> ImageSet:
    """At most ``max_test`` test images, evenly spaced over the (label, defect, path)-sorted list, so
    every class keeps its share. Deterministic."""
    n = len(images.test)
    if max_test < 1:
        raise ConfigError(f"max_test must be >= 1, got {max_test}")
    if n <= max_test:
        return images
    keep = sorted({round(i) for i in np.linspace(0, n - 1, max_test)})
    pick = lambda seq: tuple(seq[i] for i in keep)
    return replace(
        images,
        key=f"{images.key}[{max_test}]",
        test=pick(images.test),
        labels=pick(images.labels),
        defects=pick(images.defects),
        masks=pick(images.masks),
    )


@dataclass(frozen=True)
class UploadResult:
    """Stored uploads: ``paths`` of the usable files, ``notes`` (conversions) and ``errors`` (refused files)."""

    paths: tuple[str, ...]
    notes: tuple[str, ...]
    errors: tuple[str, ...]


def store_uploads(files: Iterable[tuple[str, bytes]], folder: Path) -> UploadResult:
    """Check uploaded ``(file name, bytes)`` pairs and store the readable images under ``folder``.

    Each file is written as ``<sha1>/<name>`` and opened with :func:`~lake_interp.images.load_image`
    (grey, palette, 16-bit and transparent images are converted to RGB); files that are not images,
    are corrupt, empty, larger than :data:`UPLOAD_MAX_PIXELS` / :data:`UPLOAD_MAX_BYTES` are refused
    with the reason.

    Example:
        >>> import io, tempfile
        >>> buf = io.BytesIO(); Image.new("L", (32, 32)).save(buf, "PNG")
        >>> res = store_uploads([("a.png", buf.getvalue()), ("b.png", b"not an image")], Path(tempfile.mkdtemp()))
        >>> len(res.paths), res.notes[0].startswith("a.png"), res.errors[0].startswith("b.png")
        (1, True, True)
    """
    paths: list[str] = []
    notes: list[str] = []
    errors: list[str] = []
    for name, data in files:
        safe = Path(name).name or "upload"
        if len(data) > UPLOAD_MAX_BYTES:
            errors.append(f"{safe}: {len(data) / 2**20:.0f} MB is larger than the {UPLOAD_MAX_BYTES // 2**20} MB limit")
            continue
        digest = hashlib.sha1(data).hexdigest()[:16]
        path = folder / digest / safe
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        try:
            image = load_image(path, max_pixels=UPLOAD_MAX_PIXELS)
        except ImageReadError as error:
            errors.append(f"{safe}: {_plain(error, path)}")
            continue
        with Image.open(path) as original:
            mode = original.mode
        if mode != "RGB":
            notes.append(f"{safe}: converted from mode {mode} to RGB ({image.width}x{image.height})")
        paths.append(str(path))
    return UploadResult(tuple(paths), tuple(notes), tuple(errors))


def _plain(error: Exception, path: Path) -> str:
    """The error message with the cache path shortened to the file name."""
    return str(error).replace(str(path), path.name)


def upload_set(normal: tuple[str, ...], test: tuple[str, ...], root: Path) -> ImageSet:
    """An :class:`ImageSet` of uploaded files (test labels unknown)."""
    if not normal:
        raise ConfigError("upload at least one normal image: the detector learns normality from them")
    if not test:
        raise ConfigError("upload at least one test image to score")
    key = hashlib.sha1("\n".join(normal + ("|",) + test).encode()).hexdigest()[:16]
    return ImageSet(
        key=f"upload/{key}",
        dataset="upload",
        name="uploaded images",
        root=str(root),
        pool=tuple(sorted(normal)),
        test=tuple(test),
        labels=(None,) * len(test),
        defects=("?",) * len(test),
        masks=(None,) * len(test),
    )
