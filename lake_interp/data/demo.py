"""The demo category shipped with the package: a small subset of BSData ``ball_screw``.

8 normal support images (``train/good``), 8 normal and 12 ``pitting`` test images with masks,
downscaled to 564 px wide. Licence: CC BY-SA 4.0, see ``lake_interp/data/demo/LICENSE.md``
(Schlagenhauf, Landwehr, Fleischer, Data in Brief 2021, arXiv:2103.13003). Built by
``scripts/make_demo_data.py``.

Example:
    >>> from lake_interp.data.demo import load_demo_category
    >>> load_demo_category().summary()["per_defect"]
    {'pitting': 12}
"""

from __future__ import annotations

from pathlib import Path

from lake_interp.data.layout import Category, load_mvtec_category
from lake_interp.errors import DataLayoutError

DEMO_DIR = Path(__file__).resolve().parent / "demo"

__all__ = ["DEMO_DIR", "demo_category_path", "demo_license_path", "load_demo_category"]


def demo_category_path() -> Path:
    """Folder of the shipped demo category (MVTec layout)."""
    path = DEMO_DIR / "bsdata" / "ball_screw"
    if not (path / "train" / "good").is_dir():
        raise DataLayoutError(
            f"demo data not found at {path}: the package was installed without its data files; "
            "reinstall lake_interp or rebuild it with scripts/make_demo_data.py"
        )
    return path


def demo_license_path() -> Path:
    """The licence and attribution file of the demo data."""
    return DEMO_DIR / "LICENSE.md"


def load_demo_category() -> Category:
    """Load the demo category (dataset ``bsdata``, name ``ball_screw``)."""
    return load_mvtec_category(demo_category_path(), dataset="bsdata", name="ball_screw")
