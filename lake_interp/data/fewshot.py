"""Seeded k-shot sampling of normal support images from a category's ``train/good`` pool.

The pool is sorted by path, ``numpy.random.default_rng(seed).permutation(n)[:k]`` picks k (so the draws for one seed are nested)
indices, and the chosen samples are returned in pool (path) order, so a (category, k, seed) triple
always gives the same support set on any machine.

Example:
    >>> from lake_interp.data import load_category, sample_support, support_names
    >>> cat = load_category("data/bsdata/ball_screw")  # doctest: +SKIP
    >>> support = sample_support(cat, k=4, seed=0)  # doctest: +SKIP
    >>> support_names(support, cat.root)  # doctest: +SKIP
    ['train/good/01_...jpg', ...]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lake_interp.data.layout import Category, Sample
from lake_interp.errors import ConfigError, DataLayoutError

__all__ = ["sample_support", "support_names"]


def _pool_location(category: Category) -> str:
    parents = sorted({str(s.path.parent) for s in category.train})
    if len(parents) == 1:
        return parents[0]
    return f"the normal pool of {category.dataset}/{category.name}"


def sample_support(category: Category, k: int, seed: int) -> list[Sample]:
    """Draw ``k`` distinct normal support images from ``category.train`` with ``seed``.

    Raises:
        ConfigError: ``k`` < 1, ``k`` larger than the pool, or an invalid ``seed``.
        DataLayoutError: the pool is empty.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    k, seed = int(k), int(seed)
    if k < 1:
        raise ConfigError(f"k must be >= 1 (number of normal support images), got k={k}")
    pool = sorted(category.train, key=lambda s: s.path.as_posix())
    if not pool:
        raise DataLayoutError(f"category {category.dataset}/{category.name} has no normal images to draw support from")
    if k > len(pool):
        raise ConfigError(f"k={k} but only {len(pool)} normal images in {_pool_location(category)}")
    chosen = np.random.default_rng(seed).permutation(len(pool))[:k]  # nested: k=1 within k=2 within k=4
    return [pool[i] for i in sorted(int(i) for i in chosen)]


def support_names(samples: Sequence[Sample], root: str | os.PathLike | Category | None = None) -> list[str]:
    """Names to record for the support images: paths relative to ``root`` (the category root, or the
    :class:`Category` itself; POSIX separators) when given and the file lies below it, else bare file names.

    Example:
        >>> support_names([Sample(Path("/d/cat/train/good/000.png"), 0, "good")], "/d/cat")
        ['train/good/000.png']
    """
    if isinstance(root, Category):
        root = root.root
    names = []
    for sample in samples:
        path = Path(sample.path)
        if root is not None:
            try:
                names.append(Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix())
                continue
            except ValueError:
                pass
        names.append(path.name)
    return names
