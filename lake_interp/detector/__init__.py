"""The LAKE detector and its baselines (``knn-all``, ``random-k``, ``bottom-k``, ``text-zero-shot``).

Example:
    >>> from lake_interp.detector import LakeConfig
    >>> LakeConfig.for_method("random-k", selection_seed=3).method
    'random-k'
"""

from lake_interp.detector.config import METHODS, LakeConfig
from lake_interp.detector.features import Features, extract_features
from lake_interp.detector.lake import LakeDetector, Prediction

__all__ = ["METHODS", "Features", "LakeConfig", "LakeDetector", "Prediction", "extract_features"]
