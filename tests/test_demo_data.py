"""Tests of the demo category shipped in the package (BSData ball_screw subset)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lake_interp.data import demo_category_path, demo_license_path, load_demo_category, sample_support
from lake_interp.data.demo import DEMO_DIR
from lake_interp.images import load_image, load_mask

REPO = Path(__file__).resolve().parents[1]


def test_demo_category_counts_and_layout():
    cat = load_demo_category()
    assert (cat.dataset, cat.name) == ("bsdata", "ball_screw")
    s = cat.summary()
    assert (s["train"], s["test_good"], s["test_defective"]) == (8, 8, 12)
    assert s["per_defect"] == {"pitting": 12} and s["maskless"] == 0
    assert demo_category_path() == cat.root
    train_names = {p.path.name for p in cat.train}
    assert not train_names & {p.path.name for p in cat.test}  # support pool and test set are disjoint
    assert len(sample_support(cat, 4, 0)) == 4


def test_demo_images_and_masks_are_consistent():
    cat = load_demo_category()
    for sample in cat.test:
        image = load_image(sample.path)
        assert image.size == (564, 230) and sample.path.suffix == ".jpg"
        if sample.label:
            mask = load_mask(sample.mask_path, size=image.size)
            assert 10 < mask.sum() < 0.05 * mask.size  # non-trivial, small pitting regions


def test_demo_size_licence_and_no_magnetic_tile():
    files = [p for p in DEMO_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 3_000_000
    assert not [p for p in files if "exp" in p.name.lower() or "mt_" in p.name.lower() or "tile" in str(p).lower()]
    text = demo_license_path().read_text(encoding="utf-8")
    for needle in ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/", "Schlagenhauf",
                   "Landwehr", "Fleischer", "Data in Brief (2021)", "arXiv:2103.13003", "Subset", "Downscaled"):
        assert needle in text, needle
    assert (DEMO_DIR / "README.md").is_file()


def test_build_script_reproduces_shipped_data(ball_screw_root, tmp_path):
    spec = importlib.util.spec_from_file_location("make_demo_data", REPO / "scripts" / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(ball_screw_root, tmp_path)
    built = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(DEMO_DIR).as_posix() for p in DEMO_DIR.rglob("*") if p.is_file())
    assert built == shipped  # same deterministic choice of files
    for rel in shipped:
        a, b = tmp_path / rel, DEMO_DIR / rel
        if rel.endswith(".md"):
            assert a.read_text() == b.read_text()
        elif rel.endswith("_mask.png"):
            np.testing.assert_array_equal(load_mask(a), load_mask(b))
        else:  # JPEG bytes may differ between encoder versions; the pixels must not
            diff = np.abs(np.asarray(load_image(a), float) - np.asarray(load_image(b), float))
            assert diff.mean() < 1.0, rel


def test_evenly_spaced_helper():
    spec = importlib.util.spec_from_file_location("make_demo_data", REPO / "scripts" / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.evenly_spaced(list(range(10)), 4) == [0, 3, 6, 9]
    assert np.array_equal(module.evenly_spaced(list(range(5)), 5), list(range(5)))
    with pytest.raises(Exception, match="only 3"):
        module.evenly_spaced([1, 2, 3], 4)
