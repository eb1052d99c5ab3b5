"""Cross-modal branch: WinCLIP-style prompt ensembles and patch-level text anomaly scores (CLIP only).

The state words and templates follow WinCLIP (Jeong et al., CVPR 2023), as LAKE's sources suggest.

Example:
    >>> normal, anomalous = prompt_ensembles("screw")
    >>> normal[0], anomalous[0]
    ('a cropped photo of the screw.', 'a cropped photo of the damaged screw.')
"""

from __future__ import annotations

import torch
from torch import Tensor

NORMAL_STATES = ("{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect", "{} without damage")
ANOMALOUS_STATES = ("damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage")
TEMPLATES = (
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of the {}.",
    "a photo of a {}.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for anomaly detection.",
    "a photo of the {} for anomaly detection.",
)


def prompt_ensembles(object_name: str) -> tuple[list[str], list[str]]:
    """Normal and anomalous prompts for ``object_name`` (state x template)."""
    name = object_name.replace("_", " ").strip() or "object"
    normal = [t.format(s.format(name)) for s in NORMAL_STATES for t in TEMPLATES]
    anomalous = [t.format(s.format(name)) for s in ANOMALOUS_STATES for t in TEMPLATES]
    return normal, anomalous


def text_anomaly_scores(patch_embeddings: Tensor, class_embeddings: Tensor, temperature: float) -> Tensor:
    """Probability of the anomalous class for each patch.

    Args:
        patch_embeddings: joint-space patch embeddings ``[..., d_embed]`` (any norm).
        class_embeddings: ``[2, d_embed]``: normal, anomalous (unit norm).
        temperature: softmax temperature (CLIP's is ``1 / logit_scale.exp()``, 0.01).

    Returns:
        ``[...]`` values in (0, 1).
    """
    patches = torch.nn.functional.normalize(patch_embeddings, dim=-1)
    logits = patches @ class_embeddings.T / temperature  # [..., 2]
    return logits.softmax(dim=-1)[..., 1]
