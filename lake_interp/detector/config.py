"""``LakeConfig``: every switch of the LAKE detector, with its default and why.

The LAKE paper leaves many choices unstated (see ``docs/method.md``); each is an explicit option here.
Defaults were chosen from measurements on real data (``docs/results.md``), never per category.

Example:
    >>> cfg = LakeConfig(layers=(7,), k_neurons=50)
    >>> cfg.method
    'lake'
    >>> LakeConfig.for_method("knn-all").selection
    'all'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lake_interp.errors import ConfigError

SITES = ("resid", "mlp")
CRITERIA = ("variance", "mad", "range")
SELECTIONS = ("top", "bottom", "random", "all")
FEATURE_NORMS = ("none", "layernorm", "l2")
DISTANCES = ("cosine", "l2")
SCORE_RULES = ("max", "topq")
MAP_NORMS = ("zscore", "none")
METHODS = ("lake", "knn-all", "random-k", "bottom-k", "text-zero-shot")


@dataclass(frozen=True)
class LakeConfig:
    """Configuration of :class:`~lake_interp.detector.LakeDetector`.

    Visual branch:
        model: registry name of the backbone.
        image_size: input side in pixels (images are squashed to a square, whole part visible).
        site: ``resid`` (residual channels of ``blocks.{l}.hook_resid_post``) or ``mlp`` (hidden units
            of ``blocks.{l}.mlp.hook_post``).
        layers: block indices whose features are used; per-layer distance maps are averaged.
        k_neurons / neuron_ratio: size of the selected set per layer (K, or a fraction of the width).
        criterion: sensitivity of a neuron on the normal support patches: ``variance`` (LAKE),
            ``mad`` (median absolute deviation), ``range`` (99th - 1st percentile).
        selection: ``top`` (LAKE), ``bottom``, ``random`` (seeded by ``selection_seed``) or ``all``.
        feature_norm: per-token normalisation over all channels before statistics: ``layernorm``
            (centre and scale each token; removes the huge-magnitude outlier channels), ``l2`` or ``none``.
        distance: ``cosine`` or ``l2`` between a test patch and the memory bank (nearest neighbour).

    Structural bias (the paper's undefined component; each candidate meaning switchable):
        standardize: (a) z-score each selected neuron with its support mean/std.
        position_bias: (b) subtract each position's mean over the support images (aligned objects;
            needs k >= 2).
        suppress_artifacts: (c) replace the distance of high-norm artefact tokens by the median of
            their 3x3 neighbours.

    Cross-modal branch (CLIP only):
        text_branch: None = on for CLIP backbones, off for image-only ones; True on an image-only
            backbone is an error.
        text_layer: block whose tokens go through the final LayerNorm and projection (None = last).
        fusion_lambda: weight of the text map, a = (1 - lambda) z(d_vis) + lambda z(s_txt).
        temperature: softmax temperature; None = the model's own ``1 / logit_scale``.
        object_name: name used in the prompts (default: the category name given to ``fit``).

    Maps and scores:
        map_norm: ``zscore`` (each map normalised by the support's leave-one-out statistics) or ``none``.
        sigma: Gaussian smoothing in pixels at ``image_size`` (the field's convention is 4).
        score_rule: ``max`` of the smoothed map or ``topq`` mean of its top ``top_q`` fraction.
    """

    model: str = "dinov2-s14"
    image_size: int = 224
    site: str = "resid"
    layers: tuple[int, ...] = (7,)
    k_neurons: int | None = 100
    neuron_ratio: float | None = None
    criterion: str = "variance"
    selection: str = "top"
    selection_seed: int = 0
    feature_norm: str = "layernorm"
    distance: str = "cosine"
    standardize: bool = False
    position_bias: bool = False
    suppress_artifacts: bool = False
    visual_branch: bool = True
    text_branch: bool | None = None
    text_layer: int | None = None
    fusion_lambda: float = 0.3
    temperature: float | None = None
    object_name: str | None = None
    map_norm: str = "zscore"
    sigma: float = 4.0
    score_rule: str = "max"
    top_q: float = 0.01
    batch_size: int = 16
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(layer) for layer in self.layers))
        choices = dict(
            site=SITES, criterion=CRITERIA, selection=SELECTIONS, feature_norm=FEATURE_NORMS,
            distance=DISTANCES, score_rule=SCORE_RULES, map_norm=MAP_NORMS,
        )
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"layers must be a non-empty tuple of distinct block indices, got {self.layers}")
        if self.selection != "all" and (self.k_neurons is None) == (self.neuron_ratio is None):
            raise ConfigError("give exactly one of k_neurons and neuron_ratio (or selection='all')")
        if self.k_neurons is not None and self.k_neurons < 1:
            raise ConfigError(f"k_neurons must be >= 1, got {self.k_neurons}")
        if self.neuron_ratio is not None and not 0 < self.neuron_ratio <= 1:
            raise ConfigError(f"neuron_ratio must be in (0, 1], got {self.neuron_ratio}")
        if not 0 <= self.fusion_lambda <= 1:
            raise ConfigError(f"fusion_lambda must be in [0, 1], got {self.fusion_lambda}")
        if self.sigma < 0 or not 0 < self.top_q <= 1 or self.image_size < 14 or self.batch_size < 1:
            raise ConfigError("sigma >= 0, 0 < top_q <= 1, image_size >= 14 and batch_size >= 1 are required")
        if not self.visual_branch and self.text_branch is False:
            raise ConfigError("at least one of the visual and the text branch must be on")

    @property
    def method(self) -> str:
        """The method name this configuration implements (for result tables)."""
        if not self.visual_branch:
            return "text-zero-shot"
        return {"top": "lake", "all": "knn-all", "random": "random-k", "bottom": "bottom-k"}[self.selection]

    def n_selected(self, width: int) -> int:
        """Number of neurons kept out of ``width``."""
        if self.selection == "all":
            return width
        n = self.k_neurons if self.k_neurons is not None else max(1, round(self.neuron_ratio * width))
        return min(n, width)

    def replace(self, **changes: Any) -> LakeConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def for_method(cls, method: str, **overrides: Any) -> LakeConfig:
        """Configuration of a named method: ``lake``, ``knn-all``, ``random-k``, ``bottom-k``, ``text-zero-shot``."""
        presets = {
            "lake": dict(selection="top"),
            "knn-all": dict(selection="all"),
            "random-k": dict(selection="random"),
            "bottom-k": dict(selection="bottom"),
            "text-zero-shot": dict(visual_branch=False, text_branch=True),
        }
        if method not in presets:
            raise ConfigError(f"unknown method {method!r}; choose one of {METHODS}")
        return cls(**{**presets[method], **overrides})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LakeConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown LakeConfig fields {sorted(unknown)}")
        return cls(**{**data, "layers": tuple(data.get("layers", (7,)))})
