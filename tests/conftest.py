"""Shared pytest fixtures.

Data-dependent tests take ``shared_data_root`` (the folder named by ``LAKE_DATA_DIR``), and are skipped
with a reason when it is not set or does not exist: a fresh checkout has no real data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_root() -> Path | None:
    value = os.environ.get("LAKE_DATA_DIR")
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """Root of the real data sets (``LAKE_DATA_DIR``); skips the test when absent."""
    root = _data_root()
    if root is None:
        pytest.skip("real data not available: set LAKE_DATA_DIR to a folder such as ../shared/data")
    return root


@pytest.fixture(scope="session")
def ball_screw_root(shared_data_root: Path) -> Path:
    path = shared_data_root / "bsdata" / "ball_screw"
    if not path.is_dir():
        pytest.skip(f"{path} not found under LAKE_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def magnetic_tile_root(shared_data_root: Path) -> Path:
    path = shared_data_root / "mtd" / "magnetic_tile"
    if not path.is_dir():
        pytest.skip(f"{path} not found under LAKE_DATA_DIR")
    return path
