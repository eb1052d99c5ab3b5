"""Readers for anomaly-detection data layouts: MVTec AD, VisA (split CSV) and plain folders.

Readers only list files; they open no image. Categories and defect types are discovered from the
folders (or the CSV), never hard-coded. A defective test image without a mask is kept (it counts for
image metrics) and reported: :attr:`Category.maskless` lists them and one :class:`MissingMaskWarning`
is issued per category.

MVTec AD layout (also BTAD, MTD and BSData as distributed in this layout)::

    <category>/train/good/*                      normal images (the few-shot support pool)
    <category>/test/good/*                       normal test images
    <category>/test/<defect>/*                   defective test images
    <category>/ground_truth/<defect>/<stem>_mask.png   (or <stem>.png) masks

VisA layout: ``<root>/split_csv/1cls.csv`` with columns ``object,split,label,image,mask`` and paths
relative to ``<root>``.

Example:
    >>> from lake_interp.data import find_categories, load_category
    >>> refs = find_categories("/data")  # doctest: +SKIP
    >>> cat = load_category(refs[0])  # doctest: +SKIP
    >>> cat.summary()["train"]  # doctest: +SKIP
    516
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lake_interp.errors import DataLayoutError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
DATA_DIR_ENV = "LAKE_DATA_DIR"
VISA_SPLIT_CSV = Path("split_csv") / "1cls.csv"
GOOD = "good"

__all__ = [
    "DATA_DIR_ENV",
    "GOOD",
    "IMAGE_EXTENSIONS",
    "Category",
    "CategoryRef",
    "MissingMaskWarning",
    "Sample",
    "find_categories",
    "list_images",
    "load_category",
    "load_folder_category",
    "load_mvtec_category",
    "load_sample_mask",
    "load_visa_category",
    "resolve_data_root",
]


class MissingMaskWarning(UserWarning):
    """Defective test images have no ground-truth mask; they are used for image metrics only."""


@dataclass(frozen=True)
class Sample:
    """One image of a category.

    Attributes:
        path: image file.
        label: 0 normal, 1 anomalous.
        defect: defect type (``"good"`` for normal images).
        mask_path: ground-truth mask, or None (normal images, or a defective image without mask).
    """

    path: Path
    label: int
    defect: str
    mask_path: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.mask_path is not None:
            object.__setattr__(self, "mask_path", Path(self.mask_path))
        if self.label not in (0, 1):
            raise DataLayoutError(f"label of {self.path} must be 0 (normal) or 1 (anomalous), got {self.label!r}")
        if (self.label == 0) != (self.defect == GOOD):
            raise DataLayoutError(
                f"{self.path}: label {self.label} does not match defect {self.defect!r} "
                f"(normal images have defect {GOOD!r}, defective ones any other name)"
            )


@dataclass(frozen=True)
class Category:
    """A category: its normal pool (``train``) and its test images.

    Example:
        >>> cat = load_category("data/bsdata/ball_screw")  # doctest: +SKIP
        >>> cat.defects, len(cat.maskless)  # doctest: +SKIP
        (('pitting',), 0)
    """

    name: str
    dataset: str
    root: Path
    train: tuple[Sample, ...]
    test: tuple[Sample, ...]

    @property
    def defects(self) -> tuple[str, ...]:
        """Sorted defect types present in the test set (``"good"`` excluded)."""
        return tuple(sorted({s.defect for s in self.test if s.label == 1}))

    @property
    def maskless(self) -> tuple[Sample, ...]:
        """Defective test samples without a mask (excluded from pixel metrics)."""
        return tuple(s for s in self.test if s.label == 1 and s.mask_path is None)

    @property
    def has_masks(self) -> bool:
        """True when at least one defective test image has a mask."""
        return any(s.mask_path is not None for s in self.test if s.label == 1)

    def summary(self) -> dict:
        """Counts: ``train``, ``test_good``, ``test_defective``, ``masks``, ``maskless`` and ``per_defect``."""
        per_defect = {d: sum(1 for s in self.test if s.defect == d) for d in self.defects}
        return {
            "dataset": self.dataset,
            "category": self.name,
            "train": len(self.train),
            "test_good": sum(1 for s in self.test if s.label == 0),
            "test_defective": sum(1 for s in self.test if s.label == 1),
            "masks": sum(1 for s in self.test if s.label == 1 and s.mask_path is not None),
            "maskless": len(self.maskless),
            "per_defect": per_defect,
        }


@dataclass(frozen=True)
class CategoryRef:
    """Where a category lives, as found by :func:`find_categories` (``layout``: ``"mvtec"`` or ``"visa"``)."""

    dataset: str
    name: str
    path: Path
    layout: str = "mvtec"


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (hidden files skipped), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.name)


def _subdirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def resolve_data_root(arg: str | os.PathLike | None = None) -> Path:
    """The data root: ``arg`` if given, else the environment variable ``LAKE_DATA_DIR``.

    Example:
        >>> resolve_data_root("/tmp")
        PosixPath('/tmp')
    """
    if arg is not None and str(arg) != "":
        root, source = Path(arg).expanduser(), "the data-root argument"
    elif os.environ.get(DATA_DIR_ENV):
        root, source = Path(os.environ[DATA_DIR_ENV]).expanduser(), f"the environment variable {DATA_DIR_ENV}"
    else:
        raise DataLayoutError(
            f"no data folder given: pass a data root (e.g. --data-root /path/to/data) "
            f"or set the environment variable {DATA_DIR_ENV}=/path/to/data"
        )
    if not root.is_dir():
        raise DataLayoutError(f"data folder {root} (from {source}) does not exist or is not a folder")
    return root


def _mask_index(folder: Path) -> dict[str, Path]:
    """Map image stem -> mask file in ``folder``; ``<stem>_mask.*`` wins over ``<stem>.*``."""
    index: dict[str, Path] = {}
    preferred: set[str] = set()
    for path in list_images(folder):
        stem = path.stem
        if stem.endswith("_mask"):
            key = stem[: -len("_mask")]
            index[key] = path
            preferred.add(key)
        elif stem not in preferred:
            index.setdefault(stem, path)
    return index


def _warn_maskless(dataset: str, name: str, test: Iterable[Sample]) -> None:
    missing = [s for s in test if s.label == 1 and s.mask_path is None]
    if missing:
        example = ", ".join(s.path.name for s in missing[:3])
        warnings.warn(
            f"{dataset}/{name}: {len(missing)} defective test image(s) have no mask (e.g. {example}); "
            "they count for image metrics only",
            MissingMaskWarning,
            stacklevel=3,
        )


def load_mvtec_category(path: str | os.PathLike, dataset: str | None = None, name: str | None = None) -> Category:
    """Read a category in the MVTec AD layout (module docstring).

    Raises:
        DataLayoutError: missing folder, no or empty ``train/good``, missing ``test``, no test images.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataLayoutError(f"category folder {root} does not exist")
    name = name or Path(os.path.abspath(root)).name
    dataset = dataset or Path(os.path.abspath(root)).parent.name
    hint = "expected <category>/train/good, <category>/test/<defect> and <category>/ground_truth/<defect>"
    train_dir = root / "train" / GOOD
    if not train_dir.is_dir():
        raise DataLayoutError(f"no train/good folder in {root} ({hint})")
    train_images = list_images(train_dir)
    if not train_images:
        raise DataLayoutError(
            f"{train_dir} contains no images (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}); "
            "the normal support pool must not be empty"
        )
    test_dir = root / "test"
    if not test_dir.is_dir():
        raise DataLayoutError(f"no test folder in {root} ({hint})")
    test: list[Sample] = []
    for defect_dir in _subdirs(test_dir):
        images = list_images(defect_dir)
        defect = defect_dir.name
        if defect == GOOD:
            test.extend(Sample(p, 0, GOOD, None) for p in images)
            continue
        masks = _mask_index(root / "ground_truth" / defect)
        test.extend(Sample(p, 1, defect, masks.get(p.stem)) for p in images)
    if not test:
        raise DataLayoutError(f"category {root} is empty: no images in any {test_dir}/<defect> folder ({hint})")
    train = tuple(Sample(p, 0, GOOD, None) for p in train_images)
    _warn_maskless(dataset, name, test)
    return Category(name=name, dataset=dataset, root=root, train=train, test=tuple(test))


def _read_visa_rows(csv_path: Path) -> list[dict[str, str]]:
    required = {"object", "split", "label", "image", "mask"}
    try:
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = {c.strip() for c in (reader.fieldnames or [])}
            if not required <= columns:
                raise DataLayoutError(
                    f"{csv_path} lacks columns {sorted(required - columns)}; expected {sorted(required)}"
                )
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except OSError as exc:
        raise DataLayoutError(f"cannot read VisA split file {csv_path}: {exc}") from exc


def load_visa_category(
    root: str | os.PathLike, name: str, csv_path: str | os.PathLike | None = None, dataset: str | None = None
) -> Category:
    """Read category ``name`` of a VisA data root from its split CSV (default ``split_csv/1cls.csv``).

    Rows with ``split == "train"`` form the normal pool (anomalous train rows are an error); test rows
    labelled ``normal`` are ``good``, the others have defect ``"anomaly"`` (the CSV has no defect type).

    Example:
        >>> cat = load_visa_category("/data/visa", "candle")  # doctest: +SKIP
    """
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"VisA folder {root} does not exist")
    csv_file = Path(csv_path) if csv_path is not None else root / VISA_SPLIT_CSV
    if not csv_file.is_file():
        raise DataLayoutError(f"VisA split file {csv_file} not found (expected <root>/{VISA_SPLIT_CSV.as_posix()})")
    rows = _read_visa_rows(csv_file)
    objects = sorted({r["object"] for r in rows})
    rows = [r for r in rows if r["object"] == name]
    if not rows:
        raise DataLayoutError(f"category {name!r} not in {csv_file}; it lists: {', '.join(objects) or 'nothing'}")
    train: list[Sample] = []
    test: list[Sample] = []
    missing: list[Path] = []
    for row in rows:
        path = root / row["image"]
        if not path.is_file():
            missing.append(path)
            continue
        split, label = row["split"].lower(), row["label"].lower()
        if label not in ("normal", "anomaly"):
            raise DataLayoutError(f"{csv_file}: label {row['label']!r} for {row['image']} is not 'normal' or 'anomaly'")
        if split == "train":
            if label != "normal":
                raise DataLayoutError(f"{csv_file}: training row {row['image']} is labelled anomalous")
            train.append(Sample(path, 0, GOOD, None))
        elif split == "test":
            if label == "normal":
                test.append(Sample(path, 0, GOOD, None))
            else:
                mask = root / row["mask"] if row["mask"] else None
                test.append(Sample(path, 1, "anomaly", mask if mask is not None and mask.is_file() else None))
        else:
            raise DataLayoutError(f"{csv_file}: split {row['split']!r} for {row['image']} is not 'train' or 'test'")
    if missing:
        raise DataLayoutError(f"{len(missing)} image(s) listed in {csv_file} are missing, e.g. {missing[0]}")
    if not train:
        raise DataLayoutError(f"category {name!r} in {csv_file} has no training (normal) images")
    if not test:
        raise DataLayoutError(f"category {name!r} in {csv_file} has no test images")
    dataset = dataset or Path(os.path.abspath(root)).name
    _warn_maskless(dataset, name, test)
    key = lambda s: s.path.as_posix()  # noqa: E731
    return Category(name=name, dataset=dataset, root=root / name, train=tuple(sorted(train, key=key)),
                    test=tuple(sorted(test, key=lambda s: (s.defect, s.path.as_posix()))))


def _visa_root_of(path: Path) -> Path | None:
    """The VisA root when ``path`` is ``<root>/<object>`` and ``<root>`` has the split CSV."""
    return path.parent if (path.parent / VISA_SPLIT_CSV).is_file() else None


def load_category(path_or_ref: str | os.PathLike | CategoryRef, dataset: str | None = None) -> Category:
    """Load a category from a :class:`CategoryRef` or a folder (MVTec layout, else VisA ``<root>/<object>``).

    Example:
        >>> cat = load_category("/data/mvtec/bottle")  # doctest: +SKIP
    """
    if isinstance(path_or_ref, CategoryRef):
        ref = path_or_ref
        if ref.layout == "visa":
            return load_visa_category(ref.path.parent, ref.name, dataset=dataset or ref.dataset)
        return load_mvtec_category(ref.path, dataset=dataset or ref.dataset, name=ref.name)
    path = Path(path_or_ref)
    if not path.exists():
        raise DataLayoutError(f"category folder {path} does not exist")
    if not (path / "train").is_dir() and not (path / "test").is_dir():
        visa_root = _visa_root_of(path)
        if visa_root is not None:
            return load_visa_category(visa_root, path.name, dataset=dataset)
    return load_mvtec_category(path, dataset=dataset)


def _looks_like_category(path: Path) -> bool:
    return (path / "train").is_dir() or (path / "test").is_dir()


def find_categories(data_root: str | os.PathLike) -> list[CategoryRef]:
    """Discover categories up to two levels below ``data_root``, sorted by (dataset, name).

    A folder with a ``train`` or ``test`` subfolder is an MVTec-layout category whose dataset name is
    its parent folder's name (``<root>/bsdata/ball_screw`` -> dataset ``bsdata``). A folder holding
    ``split_csv/1cls.csv`` is a VisA root: each object in the CSV is a category.

    Example:
        >>> [(r.dataset, r.name) for r in find_categories("/work/shared/data")]  # doctest: +SKIP
        [('bsdata', 'ball_screw'), ('mtd', 'magnetic_tile')]
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DataLayoutError(f"data folder {root} does not exist or is not a folder")
    refs: list[CategoryRef] = []

    def visit(folder: Path, depth: int) -> None:
        if (folder / VISA_SPLIT_CSV).is_file():
            objects = sorted({r["object"] for r in _read_visa_rows(folder / VISA_SPLIT_CSV)})
            refs.extend(CategoryRef(Path(os.path.abspath(folder)).name, obj, folder / obj, "visa") for obj in objects)
            return
        if _looks_like_category(folder):
            absolute = Path(os.path.abspath(folder))
            refs.append(CategoryRef(absolute.parent.name, absolute.name, folder, "mvtec"))
            return
        if depth < 2:
            for sub in _subdirs(folder):
                visit(sub, depth + 1)

    visit(root, 0)
    if not refs:
        raise DataLayoutError(
            f"no category found in {root} or two levels below: expected <dataset>/<category>/train/good "
            f"(MVTec layout) or a VisA folder with {VISA_SPLIT_CSV.as_posix()}"
        )
    return sorted(refs, key=lambda r: (r.dataset, r.name))


def load_folder_category(
    normal_dir: str | os.PathLike,
    test_dirs: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike],
    mask_dir: str | os.PathLike | None = None,
    name: str = "custom",
    dataset: str = "folder",
) -> Category:
    """A category from plain folders (a user's own data).

    Args:
        normal_dir: normal images: the support pool.
        test_dirs: ``{name: folder}``; the name ``"good"`` marks normal test images, any other name is a
            defect type. A list of folders uses each folder's name.
        mask_dir: optional masks matched by image stem (``<stem>.png`` or ``<stem>_mask.png``), either in
            ``mask_dir/<defect>/`` or directly in ``mask_dir``.

    Example:
        >>> tests = {"good": "test_ok/", "dent": "dents/"}
        >>> cat = load_folder_category("ok/", tests, mask_dir="masks/")  # doctest: +SKIP
    """
    normal_dir = Path(normal_dir)
    if not normal_dir.is_dir():
        raise DataLayoutError(f"normal image folder {normal_dir} does not exist")
    if not isinstance(test_dirs, Mapping):
        test_dirs = {Path(d).name: d for d in test_dirs}
    if not test_dirs:
        raise DataLayoutError("no test folder given: pass test_dirs={'good': ..., '<defect>': ...}")
    train_images = list_images(normal_dir)
    if not train_images:
        raise DataLayoutError(f"{normal_dir} contains no images; the normal support pool must not be empty")
    mask_root = Path(mask_dir) if mask_dir is not None else None
    if mask_root is not None and not mask_root.is_dir():
        raise DataLayoutError(f"mask folder {mask_root} does not exist")
    flat_masks = _mask_index(mask_root) if mask_root is not None else {}
    test: list[Sample] = []
    flat_used: dict[str, str] = {}
    for defect, folder in sorted(test_dirs.items()):
        folder = Path(folder)
        if not folder.is_dir():
            raise DataLayoutError(f"test folder {folder} (for {defect!r}) does not exist")
        images = list_images(folder)
        if defect == GOOD:
            test.extend(Sample(p, 0, GOOD, None) for p in images)
            continue
        nested = _mask_index(mask_root / defect) if mask_root is not None else {}
        for p in images:
            mask = nested.get(p.stem)
            if mask is None and p.stem in flat_masks:
                if flat_used.setdefault(p.stem, defect) != defect:
                    raise DataLayoutError(
                        f"image stem {p.stem!r} occurs in test folders {flat_used[p.stem]!r} and {defect!r}: "
                        f"a flat mask folder {mask_root} is ambiguous; put masks in {mask_root}/<defect>/"
                    )
                mask = flat_masks[p.stem]
            test.append(Sample(p, 1, defect, mask))
    if not test:
        raise DataLayoutError(f"the test folders {', '.join(str(d) for d in test_dirs.values())} contain no images")
    train_set = {p.resolve() for p in train_images}
    leaked = [s.path for s in test if s.path.resolve() in train_set]
    if leaked:
        raise DataLayoutError(f"{len(leaked)} test image(s) are also in the normal folder, e.g. {leaked[0]}")
    folders = [normal_dir, *(Path(d) for d in test_dirs.values())]
    root = Path(os.path.commonpath([str(f.resolve()) for f in folders]))
    _warn_maskless(dataset, name, test)
    return Category(name=name, dataset=dataset, root=root,
                    train=tuple(Sample(p, 0, GOOD, None) for p in train_images), test=tuple(test))


def load_sample_mask(sample: Sample, size: tuple[int, int]) -> np.ndarray | None:
    """Ground truth of ``sample`` for an image of ``size`` = (width, height): ``np.bool_ [H, W]``.

    Normal samples give an all-zero mask; a defective sample without a mask gives None (exclude it
    from pixel metrics); a mask of another size raises :class:`~lake_interp.errors.ImageReadError`.
    """
    from lake_interp.images import load_mask

    if sample.label == 0:
        return np.zeros((size[1], size[0]), dtype=np.bool_)
    if sample.mask_path is None:
        return None
    return load_mask(sample.mask_path, size=size)
