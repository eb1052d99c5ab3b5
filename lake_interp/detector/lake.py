"""The LAKE detector: sparse anomaly-sensitive neurons, a compact normal memory, patch deviation maps.

``fit`` runs the k normal support images once, scores every neuron's sensitivity on their patches,
keeps the top-K neurons per layer and stores the support patches restricted to them (the memory bank).
``predict`` runs each test image once (stopping after the deepest block needed), measures each patch's
distance to its nearest normal patch over the selected neurons, and turns the distances into smoothed
anomaly maps and image scores. On CLIP backbones a text map (prompt ensembles) is fused in.

Example:
    >>> from lake_interp.data.synthetic import make_synthetic_category  # doctest: +SKIP
    >>> from lake_interp.data import load_category                     # doctest: +SKIP
    >>> cat = load_category(make_synthetic_category("/tmp/syn"))       # doctest: +SKIP
    >>> det = LakeDetector(LakeConfig()).fit([s.path for s in cat.train[:4]])  # doctest: +SKIP
    >>> pred = det.predict([s.path for s in cat.test])                 # doctest: +SKIP
    >>> pred.scores.shape, pred.maps[0].shape                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from lake_interp.detector.config import LakeConfig
from lake_interp.detector.features import Features, extract_features
from lake_interp.detector.maps import (
    gaussian_blur,
    image_scores,
    nearest_distance,
    nearest_index,
    suppress_outlier_tokens,
    upsample,
)
from lake_interp.detector.selection import normalize_tokens, select_neurons, sensitivity
from lake_interp.detector.text import prompt_ensembles, text_anomaly_scores
from lake_interp.errors import ConfigError, LakeError
from lake_interp.io import atomic_path, write_json_atomic
from lake_interp.models.hooked_vit import HookedViT
from lake_interp.models.preprocessing import ImageLike

FORMAT_VERSION = 1
IMAGE_ONLY = "off (image-only backbone)"


@dataclass
class LayerState:
    """What ``fit`` keeps for one layer: the selected neurons and the compact normal memory.

    Shapes: ``scores [width]``, ``indices [K]``, ``mean/std [K]``, ``position_mean [patches, K]``,
    ``bank [k * patches, K]``.
    """

    scores: Tensor
    indices: Tensor
    mean: Tensor
    std: Tensor
    position_mean: Tensor | None
    bank: Tensor
    dist_mean: float = 0.0
    dist_std: float = 1.0

    def tensors(self, prefix: str) -> dict[str, Tensor]:
        out = {f"{prefix}.{k}": v for k, v in vars(self).items() if isinstance(v, Tensor)}
        out[f"{prefix}.dist_stats"] = torch.tensor([self.dist_mean, self.dist_std])
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> LayerState:
        stats = tensors[f"{prefix}.dist_stats"].tolist()
        return cls(
            scores=tensors[f"{prefix}.scores"],
            indices=tensors[f"{prefix}.indices"],
            mean=tensors[f"{prefix}.mean"],
            std=tensors[f"{prefix}.std"],
            position_mean=tensors.get(f"{prefix}.position_mean"),
            bank=tensors[f"{prefix}.bank"],
            dist_mean=stats[0],
            dist_std=stats[1],
        )


@dataclass
class Prediction:
    """Output of :meth:`LakeDetector.predict`.

    Attributes:
        scores: image anomaly scores ``[n]`` (higher = more anomalous).
        maps: anomaly maps, one ``[H, W]`` float32 array per image at its original size (or at the
            requested ``output_size``).
        patch_maps: the fused patch-level maps before upsampling ``[n, rows, cols]``.
        names: image names.
        text_branch: ``"on"`` or why it is off.
    """

    scores: np.ndarray
    maps: list[np.ndarray]
    patch_maps: np.ndarray
    names: list[str]
    text_branch: str
    timings: dict[str, float] = field(default_factory=dict)

    def stacked_maps(self) -> np.ndarray:
        """Maps as one ``[n, H, W]`` array (all maps must share a size)."""
        return np.stack(self.maps)


class LakeDetector:
    """Few-shot anomaly detector over the anomaly-sensitive neurons of a frozen transformer.

    Args:
        config: detector options (:class:`LakeConfig`); defaults are the documented choice.
        model: an already loaded hooked model (else ``load_model(config.model, image_size=...)``).
    """

    def __init__(self, config: LakeConfig | None = None, model: HookedViT | None = None) -> None:
        self.config = config or LakeConfig()
        if model is None:
            from lake_interp.models.registry import load_model

            model = load_model(self.config.model)
        self.model = model
        self.text_on = self._resolve_text_branch()
        self.text_layer = None
        if self.text_on:
            self.text_layer = self.config.text_layer if self.config.text_layer is not None else model.cfg.n_layers - 1
        self.layers: dict[int, LayerState] = {}
        self.class_embeddings: Tensor | None = None  # [2, d_embed]
        self.text_stats = (0.0, 1.0)
        self.norm_threshold = float("inf")
        self.support_names: list[str] = []
        self.object_name = self.config.object_name or "object"
        self.fit_seconds = float("nan")

    # ------------------------------------------------------------------ set-up
    def _resolve_text_branch(self) -> bool:
        requested = self.config.text_branch
        if not self.model.cfg.has_text:
            if requested or not self.config.visual_branch:
                raise ConfigError(
                    f"the text branch needs a CLIP backbone with a text tower; {self.model.cfg.description} is "
                    "image-only (use a 'clip-*' or 'open_clip:*' model, or turn the text branch off)"
                )
            return False
        return True if requested is None else bool(requested)

    @property
    def text_branch_status(self) -> str:
        if not self.model.cfg.has_text:
            return IMAGE_ONLY
        return "on" if self.text_on else "off (disabled)"

    @property
    def is_fitted(self) -> bool:
        return bool(self.layers) or (not self.config.visual_branch and self.class_embeddings is not None)

    def describe(self) -> str:
        """One line naming method, model, layers and branches (for CLI and app output)."""
        c = self.config
        visual = "off" if not c.visual_branch else f"{c.site} layers {list(c.layers)}, K={c.n_selected(self.model.cfg.site_width(c.site))}"
        return f"{c.method} on {self.model.cfg.description}: visual {visual}; text branch {self.text_branch_status}"

    # ------------------------------------------------------------------ features
    def extract(self, images: Sequence[ImageLike], progress: bool = False, desc: str = "features") -> Features:
        """Patch features of ``images`` for this configuration (one forward pass each)."""
        return extract_features(self.model, self.config, images, text_layer=self.text_layer, progress=progress, desc=desc)

    def _project(self, layer: int, acts: Tensor, state: LayerState) -> Tensor:
        """Raw site activations ``[n, patches, width]`` -> matching space ``[n, patches, K]``."""
        x = normalize_tokens(acts.float(), self.config.feature_norm)[..., state.indices]
        if self.config.standardize:
            x = (x - state.mean) / state.std
        if state.position_mean is not None:
            x = x - state.position_mean
        if self.config.distance == "cosine":
            x = F.normalize(x, dim=-1)
        return x

    # ------------------------------------------------------------------ fit
    def fit(self, support: Sequence[ImageLike], object_name: str | None = None, progress: bool = False) -> LakeDetector:
        """Find the sensitive neurons and build the normal memory from ``k`` normal images."""
        start = time.perf_counter()
        if len(support) == 0:
            if self.config.visual_branch:
                raise ConfigError("fit() needs at least one normal support image")
            self.object_name = object_name or self.config.object_name or self.object_name
            self._fit_text(None)  # text-zero-shot: prompts only, no support statistics
            self.fit_seconds = time.perf_counter() - start
            return self
        feats = self.extract(support, progress=progress, desc="support")
        self.fit_features(feats, object_name=object_name)
        self.fit_seconds = time.perf_counter() - start
        return self

    @torch.no_grad()
    def fit_features(self, feats: Features, object_name: str | None = None) -> LakeDetector:
        """Fit from already extracted support features (see :meth:`extract`)."""
        cfg = self.config
        k = len(feats)
        if cfg.position_bias and k < 2:
            raise ConfigError("position_bias (structural bias b) needs at least 2 support images")
        self.support_names = list(feats.names)
        self.object_name = object_name or cfg.object_name or self.object_name
        self.layers = {}
        if cfg.visual_branch:
            for layer, acts in feats.layers.items():
                self.layers[layer] = self._fit_layer(layer, acts)
            norms = feats.token_norms.flatten()
            mad = (norms - norms.median()).abs().median()
            self.norm_threshold = float(norms.median() + 8.0 * 1.4826 * mad + 1e-6)
        if self.text_on:
            self._fit_text(feats)
        return self

    def _fit_layer(self, layer: int, acts: Tensor) -> LayerState:
        cfg = self.config
        k, patches, width = acts.shape
        normalised = normalize_tokens(acts.float(), cfg.feature_norm)  # [k, patches, width]
        flat = normalised.reshape(k * patches, width)
        scores = sensitivity(flat, cfg.criterion)
        indices = select_neurons(scores, cfg.n_selected(width), cfg.selection, cfg.selection_seed)
        selected = flat[:, indices]
        state = LayerState(
            scores=scores,
            indices=indices,
            mean=selected.mean(dim=0),
            std=selected.std(dim=0).clamp_min(1e-6) if k * patches > 1 else torch.ones(len(indices)),
            position_mean=None,
            bank=torch.empty(0),
        )
        if cfg.position_bias:
            centred = normalised[..., indices]
            if cfg.standardize:
                centred = (centred - state.mean) / state.std
            state.position_mean = centred.mean(dim=0)  # [patches, K]
        projected = self._project(layer, acts, state)  # [k, patches, K]
        state.bank = projected.reshape(k * patches, -1).contiguous()
        distances = self._leave_one_out(projected)
        state.dist_mean, state.dist_std = float(distances.mean()), float(distances.std().clamp_min(1e-6))
        return state

    def _leave_one_out(self, projected: Tensor) -> Tensor:
        """Distances of each support patch to the memory of the *other* support images ``[k * patches]``;
        with one image, to the other patches of the same image farther than one patch away."""
        k, patches, dim = projected.shape
        if k >= 2:
            out = [
                nearest_distance(projected[i], torch.cat([projected[j] for j in range(k) if j != i]), self.config.distance)
                for i in range(k)
            ]
            return torch.cat(out)
        rows, cols = self._grid_of(patches)
        coords = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij"), -1).reshape(-1, 2)
        far = (coords[:, None] - coords[None]).abs().amax(-1) > 1  # [patches, patches]
        x = projected[0]
        if self.config.distance == "cosine":
            dist = 1.0 - x @ x.T
        else:
            dist = torch.cdist(x, x)
        return dist.masked_fill(~far, float("inf")).amin(dim=1)

    def _grid_of(self, patches: int) -> tuple[int, int]:
        rows, cols = self.model.cfg.grid_size(self.config.image_size if self.model.cfg.dynamic_image_size else None)
        if rows * cols != patches:
            raise LakeError(f"cannot map {patches} patches onto a {rows}x{cols} grid")
        return rows, cols

    def _fit_text(self, feats: Features | None) -> None:
        from lake_interp.models.clip import HookedCLIP

        assert isinstance(self.model, HookedCLIP)
        normal, anomalous = prompt_ensembles(self.object_name)
        with self.model.lock:
            self.class_embeddings = torch.stack([self.model.embed_prompts(normal), self.model.embed_prompts(anomalous)])
        if feats is None:
            self.text_stats = (0.0, 1.0)
            return
        scores = text_anomaly_scores(feats.text, self.class_embeddings, self._temperature())
        self.text_stats = (float(scores.mean()), float(scores.std().clamp_min(1e-6)))

    def _temperature(self) -> float:
        if self.config.temperature is not None:
            return self.config.temperature
        return float(1.0 / self.model.logit_scale.exp())

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        images: Sequence[ImageLike],
        output_size: tuple[int, int] | None = None,
        progress: bool = False,
    ) -> Prediction:
        """Anomaly maps and image scores of ``images``.

        Args:
            output_size: ``(height, width)`` of every returned map; None = each image's original size.
        """
        self._check_fitted()
        start = time.perf_counter()
        feats = self.extract(images, progress=progress, desc="test")
        extracted = time.perf_counter()
        prediction = self.predict_features(feats, output_size=output_size)
        prediction.timings = {"features_s": extracted - start, "scoring_s": time.perf_counter() - extracted}
        return prediction

    @torch.no_grad()
    def patch_scores(self, feats: Features) -> Tensor:
        """Fused patch anomaly maps ``[n, rows, cols]`` (before upsampling and smoothing)."""
        self._check_fitted()
        cfg = self.config
        n = len(feats)
        rows, cols = feats.grid
        total = torch.zeros(n, rows, cols)
        if cfg.visual_branch:
            visual = torch.zeros(n, rows, cols)
            norms = feats.token_norms.view(n, rows, cols)
            for layer, state in self.layers.items():
                q = self._project(layer, feats.layers[layer], state)  # [n, patches, K]
                d = nearest_distance(q.reshape(n * rows * cols, -1), state.bank, cfg.distance).view(n, rows, cols)
                if cfg.suppress_artifacts:
                    d = suppress_outlier_tokens(d, norms, self.norm_threshold)
                if cfg.map_norm == "zscore":
                    d = (d - state.dist_mean) / state.dist_std
                visual += d / len(self.layers)
            total = visual if not self.text_on else (1.0 - cfg.fusion_lambda) * visual
        if self.text_on:
            text = text_anomaly_scores(feats.text, self.class_embeddings, self._temperature()).view(n, rows, cols)
            if cfg.map_norm == "zscore":
                text = (text - self.text_stats[0]) / self.text_stats[1]
            total = text if not cfg.visual_branch else total + cfg.fusion_lambda * text
        return total

    @torch.no_grad()
    def predict_features(self, feats: Features, output_size: tuple[int, int] | None = None) -> Prediction:
        """Predict from already extracted test features (see :meth:`extract`)."""
        cfg = self.config
        patch_maps = self.patch_scores(feats)  # [n, rows, cols]
        side = cfg.image_size if self.model.cfg.dynamic_image_size else self.model.cfg.image_size
        dense = gaussian_blur(upsample(patch_maps, (side, side)), cfg.sigma)  # [n, side, side]
        scores = image_scores(dense, cfg.score_rule, cfg.top_q)
        if output_size is not None:
            maps = list(upsample(dense, tuple(output_size)).numpy().astype(np.float32))
        else:
            maps = [upsample(m[None], size)[0].numpy().astype(np.float32) for m, size in zip(dense, feats.sizes)]
        status = self.text_branch_status
        return Prediction(scores.numpy(), maps, patch_maps.numpy(), list(feats.names), status)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise LakeError("the detector is not fitted: call fit(support_images) or LakeDetector.load(path)")

    # ------------------------------------------------------------------ interpretation
    @torch.no_grad()
    def explain_patch(self, feats: Features, image: int, row: int, col: int, layer: int | None = None) -> pd.DataFrame:
        """Per-neuron contributions to one patch's visual distance, largest first.

        For cosine distance on unit vectors ``1 - q.m = sum_j (q_j - m_j)^2 / 2`` and for L2
        ``d^2 = sum_j (q_j - m_j)^2``; each term is one selected neuron's contribution, where ``m`` is
        the patch's nearest normal memory entry.
        """
        self._check_fitted()
        layer = layer if layer is not None else next(iter(self.layers))
        state = self.layers[layer]
        rows, cols = feats.grid
        q = self._project(layer, feats.layers[layer][image : image + 1], state)[0, row * cols + col]  # [K]
        m = state.bank[nearest_index(q[None], state.bank, self.config.distance)[0]]
        terms = (q - m) ** 2 * (0.5 if self.config.distance == "cosine" else 1.0)
        frame = pd.DataFrame(
            {
                "layer": layer,
                "site": self.config.site,
                "neuron": state.indices.numpy(),
                "contribution": terms.numpy(),
                "test_value": q.numpy(),
                "nearest_normal_value": m.numpy(),
                "sensitivity": state.scores[state.indices].numpy(),
            }
        )
        return frame.sort_values("contribution", ascending=False, ignore_index=True)

    def selected_neurons(self) -> dict[int, list[int]]:
        """``{layer: [neuron indices]}`` of the selected sets."""
        return {layer: state.indices.tolist() for layer, state in self.layers.items()}

    def memory_bytes(self) -> int:
        """Size of the normality representation (memory banks and statistics)."""
        return sum(t.numel() * t.element_size() for s in self.layers.values() for t in s.tensors("x").values())

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write ``path/detector.safetensors`` (tensors) and ``path/detector.json`` (config, backbone,
        support names); both atomically. Returns the folder."""
        from safetensors.torch import save_file

        self._check_fitted()
        folder = Path(path)
        tensors: dict[str, Tensor] = {}
        for layer, state in self.layers.items():
            tensors.update(state.tensors(f"layer{layer}"))
        if self.class_embeddings is not None:
            tensors["text.class_embeddings"] = self.class_embeddings
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        with atomic_path(folder / "detector.safetensors") as tmp:
            save_file(tensors, str(tmp))
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "backbone": {"name": self.model.cfg.name, "description": self.model.cfg.description},
            "method": self.config.method,
            "text_branch": self.text_branch_status,
            "text_stats": list(self.text_stats),
            "norm_threshold": self.norm_threshold,
            "object_name": self.object_name,
            "support_names": self.support_names,
            "layers": sorted(self.layers),
        }
        write_json_atomic(folder / "detector.json", meta)
        return folder

    @classmethod
    def load(cls, path: str | Path, model: HookedViT | None = None) -> LakeDetector:
        """Load a detector written by :meth:`save` (no support images needed)."""
        from safetensors.torch import load_file

        folder = Path(path)
        meta_path, tensor_path = folder / "detector.json", folder / "detector.safetensors"
        if not meta_path.is_file() or not tensor_path.is_file():
            raise LakeError(f"{folder} does not hold a saved detector (detector.json + detector.safetensors)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise LakeError(f"unsupported detector format {meta.get('format_version')} in {meta_path}")
        config = LakeConfig.from_dict(meta["config"])
        if model is not None and model.cfg.name != meta["backbone"]["name"]:
            raise ConfigError(f"detector was fitted on {meta['backbone']['name']!r}, got model {model.cfg.name!r}")
        detector = cls(config, model)
        tensors = load_file(str(tensor_path))
        detector.layers = {layer: LayerState.from_tensors(tensors, f"layer{layer}") for layer in meta["layers"]}
        detector.class_embeddings = tensors.get("text.class_embeddings")
        detector.text_stats = tuple(meta["text_stats"])
        detector.norm_threshold = float(meta["norm_threshold"])
        detector.object_name = meta["object_name"]
        detector.support_names = list(meta["support_names"])
        return detector
