"""lake-interp: anomaly-sensitive neurons in vision(-language) transformers, and the LAKE detector.

Heavy dependencies (torch, transformer_lens) are imported on first use, so ``import lake_interp``
is fast.

Example:
    >>> import lake_interp
    >>> "dinov2-s14" in lake_interp.list_models()
    True
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "list_models": "lake_interp.models.registry",
    "load_model": "lake_interp.models.registry",
    "DEFAULT_MODEL": "lake_interp.models.registry",
    "HookedViT": "lake_interp.models.hooked_vit",
    "LakeDetector": "lake_interp.detector",
    "LakeConfig": "lake_interp.detector",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lake_interp' has no attribute {name!r}")


__all__ = list(_LAZY) + ["__version__"]
