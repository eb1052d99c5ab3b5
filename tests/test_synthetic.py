"""Tests of the synthetic MVTec-layout category generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lake_interp.data import load_category, make_synthetic_category
from lake_interp.data.synthetic import _crop
from lake_interp.errors import ConfigError
from lake_interp.images import load_image, load_mask


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_byte_identical_reruns_and_seed_changes(tmp_path):
    kw = dict(n_train=3, n_test_good=2, n_test_defect=4, size=48)
    a = make_synthetic_category(tmp_path / "a", seed=5, **kw)
    b = make_synthetic_category(tmp_path / "b", seed=5, **kw)
    c = make_synthetic_category(tmp_path / "c", seed=6, **kw)
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert files_a == files_b
    assert files_a.keys() == files_c.keys() and files_a != files_c
    train = [v for k, v in files_a.items() if k.startswith("train/")]
    assert len(set(train)) == len(train)  # normal images differ from each other


@pytest.mark.parametrize("texture", ["brick", "grass", "gravel"])
def test_layout_masks_exact_and_visible(tmp_path, texture):
    size = 64
    root = make_synthetic_category(tmp_path, name=texture, texture=texture, n_train=2, n_test_good=1,
                                   n_test_defect=4, size=size, seed=1)
    cat = load_category(root)
    assert cat.defects == ("cut_paste", "hole", "scratch", "stain")
    assert not cat.maskless
    for i, sample in enumerate(sorted((s for s in cat.test if s.label), key=lambda s: s.path.parent.name)):
        image = np.asarray(load_image(sample.path), dtype=np.float32)  # [H, W, 3]
        mask = load_mask(sample.mask_path, size=(size, size))
        raw = np.asarray(Image.open(sample.mask_path))
        assert set(np.unique(raw)) <= {0, 255}
        assert 0.003 < mask.mean() < 0.2, sample.path
        # regenerate the clean image: pixels outside the mask are untouched, inside clearly changed
        index = {"scratch": 0, "hole": 1, "stain": 2, "cut_paste": 3}[sample.defect]
        clean = _crop(texture, np.random.default_rng([1, 2, index]), size)
        clean_u8 = np.clip(np.rint(clean), 0, 255)
        np.testing.assert_array_equal(image[~mask], clean_u8[~mask])
        assert np.abs(image[mask] - clean_u8[mask]).mean() > 40, sample.defect


def test_existing_folder_and_bad_options(tmp_path):
    make_synthetic_category(tmp_path, n_train=1, n_test_good=1, n_test_defect=0, size=32)
    with pytest.raises(ConfigError, match="already exists"):
        make_synthetic_category(tmp_path, n_train=1, n_test_good=1, n_test_defect=0, size=32)
    path = make_synthetic_category(tmp_path, n_train=2, n_test_good=1, n_test_defect=1, size=32, overwrite=True)
    assert len(load_category(path).train) == 2
    with pytest.raises(ConfigError, match="texture"):
        make_synthetic_category(tmp_path, name="x", texture="marble")
    with pytest.raises(ConfigError, match="size"):
        make_synthetic_category(tmp_path, name="x", size=8)
    with pytest.raises(ConfigError, match="n_train"):
        make_synthetic_category(tmp_path, name="x", n_train=0)
    with pytest.raises(ConfigError, match="name"):
        make_synthetic_category(tmp_path, name="../escape")
