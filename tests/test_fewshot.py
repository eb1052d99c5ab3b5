"""Tests of the seeded k-shot support sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lake_interp.data import Category, Sample, sample_support, support_names
from lake_interp.errors import ConfigError, DataLayoutError


def _category(n_train: int, root: Path = Path("/data/ds/cat")) -> Category:
    # deliberately unsorted pool: the sampler must sort it itself
    train = tuple(Sample(root / "train" / "good" / f"{i:03d}.png", 0, "good") for i in reversed(range(n_train)))
    test = (Sample(root / "test" / "good" / "000.png", 0, "good"),)
    return Category(name="cat", dataset="ds", root=root, train=train, test=test)


def test_deterministic_distinct_and_sorted():
    cat = _category(20)
    a = sample_support(cat, k=4, seed=3)
    b = sample_support(cat, k=4, seed=3)
    assert a == b
    assert len({s.path for s in a}) == 4
    assert [s.path for s in a] == sorted(s.path for s in a)
    assert set(a) <= set(cat.train)


def test_matches_numpy_permutation_on_sorted_pool():
    cat = _category(10)
    pool = sorted(cat.train, key=lambda s: s.path.as_posix())
    expected = sorted(np.random.default_rng(7).permutation(10)[:3].tolist())
    assert sample_support(cat, 3, 7) == [pool[i] for i in expected]


def test_seeds_give_different_supports():
    cat = _category(30)
    supports = {tuple(s.path.name for s in sample_support(cat, 2, seed)) for seed in range(5)}
    assert len(supports) > 1


def test_k_equal_pool_takes_all():
    cat = _category(5)
    assert sample_support(cat, 5, 0) == sorted(cat.train, key=lambda s: s.path)


def test_k_errors():
    cat = _category(4)
    with pytest.raises(ConfigError, match=r"k=5 but only 4 normal images in /data/ds/cat/train/good"):
        sample_support(cat, 5, 0)
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="k must be >= 1"):
            sample_support(cat, bad, 0)
    for bad in (1.5, "2", True):
        with pytest.raises(ConfigError, match="integer"):
            sample_support(cat, bad, 0)
    with pytest.raises(ConfigError, match="seed"):
        sample_support(cat, 1, -1)


def test_empty_pool():
    cat = Category(name="c", dataset="d", root=Path("/x"), train=(), test=())
    with pytest.raises(DataLayoutError, match="no normal images"):
        sample_support(cat, 1, 0)


def test_support_names():
    cat = _category(6)
    support = sample_support(cat, 2, 0)
    names = support_names(support, cat.root)
    assert names == [f"train/good/{s.path.name}" for s in support]
    assert support_names(support, cat) == names
    assert support_names(support) == [s.path.name for s in support]
    assert support_names(support, "/elsewhere") == [s.path.name for s in support]


def test_draws_of_one_seed_are_nested(tmp_path):
    from lake_interp.data import load_category, make_synthetic_category

    category = load_category(make_synthetic_category(tmp_path, n_train=8, n_test_good=1, n_test_defect=1, size=32))
    one, two, four = (set(sample_support(category, k, seed=3)) for k in (1, 2, 4))
    assert one <= two <= four
