"""Activation patching (claim 2): does putting normal values into the selected neurons remove the anomaly?

For anomalous test images, the activations of a neuron set at patch layer ``l'`` are overwritten, at
the defect patches only, with the values of the nearest normal support patch (nearest in that set's
own matching space: the detector's projection at ``l'`` restricted to the set). The forward pass then
continues to the detector's layer ``L`` (the default detector's deepest layer, same site), where the
anomaly is measured:

* patch level: the raw nearest-neighbour distance (``map_norm="none"``) averaged over defect patches;
  ``removed_frac = 1 - patched / original`` (1 = the anomaly vanished) and
  ``excess_removed_frac = (original - patched) / (original - normal)``, where ``normal`` is the mean
  distance of all patches of normal test images (1 = brought down to the normal level);
* image level: the detector's image score (default map normalisation), the same two fractions against
  the mean score of normal test images, and the image AUROC of the patched anomalous images against
  the normal ones.

Neuron sets: the top-K by sensitivity at ``l'``, K random neurons (several seeds) and all neurons.
Patching all neurons at ``l' = L`` is the sanity check: the detector then sees a support patch
exactly and the patch anomaly vanishes (``removed_frac`` = 1).

Example:
    >>> from lake_interp import load_model
    >>> from lake_interp.data import load_demo_category
    >>> df = run([load_demo_category()], load_model("random-vit-tiny"), patch_layers=(1,), neuron_sets=("all",),  # doctest: +SKIP
    ...          base=LakeConfig(image_size=32, layers=(1,), k_neurons=4))
    >>> float(df.removed_frac.iloc[0])  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from lake_interp.data import Category, sample_support
from lake_interp.data.layout import Sample
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.detector.maps import nearest_index
from lake_interp.errors import ConfigError
from lake_interp.interventions import NeuronSet, patch_hook
from lake_interp.metrics import image_auroc
from lake_interp.models.hooked_vit import HookedViT
from lake_interp.studies.common import (
    DEFECT_FRACTION,
    MultiFeatures,
    base_config,
    category_fields,
    defect_fractions,
    detector_layer,
    extract_multi,
    input_size,
    single_layer,
)


def default_patch_layers(layer: int) -> tuple[int, ...]:
    """Every second block up to the detector's layer, ending at it (e.g. 1, 3, 5, 7 for L = 7)."""
    return tuple(sorted({x for x in range(layer, -1, -2)}))


def choose_images(
    category: Category, grid: tuple[int, int], n_anomalous: int | None, n_normal: int | None, seed: int,
    defect_fraction: float = DEFECT_FRACTION,
) -> tuple[list[Sample], list[Sample]]:
    """Seeded choice of anomalous test images with at least one defect patch, and of normal test images."""
    rng = np.random.default_rng(seed)
    candidates = [s for s in category.test if s.label == 1 and s.mask_path is not None]
    sizes = []
    for s in candidates:
        with Image.open(s.path) as im:
            sizes.append((im.height, im.width))
    fractions = defect_fractions(candidates, sizes, grid) if candidates else np.zeros((0, *grid))
    usable = [s for s, f in zip(candidates, fractions) if np.nansum(f > defect_fraction) > 0]
    normal = [s for s in category.test if s.label == 0]

    def pick(pool: list[Sample], n: int | None) -> list[Sample]:
        if n is None or n >= len(pool):
            return pool
        return [pool[i] for i in sorted(rng.permutation(len(pool))[:n].tolist())]

    return pick(usable, n_anomalous), pick(normal, n_normal)


def _selection(det_cfg: LakeConfig, site: str, layer: int, neuron_set: str, n: int, set_seed: int) -> LakeConfig:
    if neuron_set == "all":
        return single_layer(det_cfg, site, layer, selection="all")
    if neuron_set not in ("top", "random", "bottom"):
        raise ConfigError(f"neuron set must be top, random, bottom or all, got {neuron_set!r}")
    return single_layer(det_cfg, site, layer, selection=neuron_set, k_neurons=n, selection_seed=max(set_seed, 0))


@torch.no_grad()
def nearest_normal_values(
    selector: LakeDetector, layer: int, test_acts: Tensor, support_acts: Tensor, token_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Raw values of the selected neurons of the nearest support patch, for each masked test patch.

    Args:
        selector: a detector fitted at ``layer`` whose selected set and matching space define "nearest".
        test_acts: ``[n, patches, width]`` raw site activations of the test images.
        support_acts: ``[k, patches, width]`` raw site activations of the support images.
        token_mask: ``[n, patches]`` bool, the patches to patch.

    Returns:
        ``(indices [K], values [masked patches, K])``.
    """
    state = selector.layers[layer]
    query = selector._project(layer, test_acts[token_mask][None], state)[0]  # [m, K] (the detector's matching space)
    nearest = nearest_index(query, state.bank, selector.config.distance)  # [m] into k * patches
    flat_support = support_acts.reshape(-1, support_acts.shape[-1])  # [k * patches, width]
    return state.indices, flat_support[nearest][:, state.indices]


def run(
    categories: Sequence[Category],
    model: HookedViT,
    shots: int = 4,
    seed: int = 0,
    sites: Sequence[str] = ("resid", "mlp"),
    layer: int | None = None,
    patch_layers: Sequence[int] | None = None,
    neuron_sets: Sequence[str] = ("top", "random", "all"),
    random_seeds: Sequence[int] = (0, 1, 2),
    n_neurons: int | None = None,
    n_images: int | None = 40,
    n_normal: int | None = 20,
    image_seed: int = 0,
    defect_fraction: float = DEFECT_FRACTION,
    base: LakeConfig | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per category x site x patch layer x neuron set x set seed.

    Args:
        layer: the detector's layer ``L`` (default: the default detector's deepest layer).
        patch_layers: layers ``l' <= L`` to patch at (default every second block ending at ``L``).
        n_neurons: K of the top/random sets (default: the detector's K).
        n_images / n_normal: seeded numbers of anomalous / normal test images (None = all).

    Columns: model, dataset, category, site, detector_layer, patch_layer, relation (same|earlier),
    neuron_set, set_seed, n_neurons, n_images, n_normal, n_defect_patches, intervention_size (mean over
    defect patches of ||patched - original|| / ||original|| of the raw site activation at ``l'``), defect_dist_orig,
    defect_dist_patched, normal_dist, removed_frac, excess_removed_frac, image_score_orig,
    image_score_patched, normal_image_score, image_excess_removed_frac, image_auroc_orig,
    image_auroc_patched, k, seed, seconds.
    """
    cfg = base_config(model, base)
    L = detector_layer(cfg) if layer is None else int(layer)
    layers = tuple(sorted({int(x) for x in (patch_layers if patch_layers is not None else default_patch_layers(L))}))
    if any(not 0 <= x <= L for x in layers):
        raise ConfigError(f"patch layers {layers} must lie in [0, detector layer {L}]")
    size = input_size(model, cfg)
    grid = model.cfg.grid_size(size)
    prefix = model.cfg.n_prefix_tokens
    rows = []
    for category in categories:
        anomalous, normal = choose_images(category, grid, n_images, n_normal, image_seed, defect_fraction)
        if not anomalous or not normal:
            raise ConfigError(f"{category.dataset}/{category.name}: patching needs anomalous images with defect "
                              f"patches and normal test images (got {len(anomalous)} and {len(normal)})")
        support = sample_support(category, shots, seed)
        for site in sites:
            det_cfg = single_layer(cfg, site, L)
            width = model.cfg.site_width(site)
            n = det_cfg.n_selected(width) if n_neurons is None else int(n_neurons)
            wanted = {site: tuple(sorted(set(layers) | {L}))}
            sfeats = extract_multi(model, [s.path for s in support], wanted, size, cfg.batch_size)
            afeats = extract_multi(model, [s.path for s in anomalous], wanted, size, cfg.batch_size,
                                   progress=progress, desc=f"{category.name} anomalous")
            nfeats = extract_multi(model, [s.path for s in normal], {site: (L,)}, size, cfg.batch_size)
            fractions = torch.from_numpy(defect_fractions(anomalous, afeats.sizes, grid)).reshape(len(anomalous), -1)
            mask = fractions > defect_fraction  # [n, patches]
            detector = LakeDetector(det_cfg, model).fit_features(sfeats.features(site, (L,)))
            raw = LakeDetector(det_cfg.replace(map_norm="none"), model).fit_features(sfeats.features(site, (L,)))
            orig = _measure(detector, raw, afeats.features(site, (L,)), mask)
            ref = _measure(detector, raw, nfeats.features(site, (L,)), None)
            jobs = [(l_p, ns, s) for l_p in layers for ns in neuron_sets for s in (random_seeds if ns == "random" else (-1,))]
            for l_p, neuron_set, set_seed in tqdm(jobs, desc=f"{category.name} {site} patching", disable=not progress):
                start = time.perf_counter()
                selector = LakeDetector(_selection(det_cfg, site, l_p, neuron_set, n, set_seed), model)
                selector.fit_features(sfeats.features(site, (l_p,)))
                test_acts = afeats.acts[(site, l_p)]
                indices, values = nearest_normal_values(selector, l_p, test_acts, sfeats.acts[(site, l_p)], mask)
                before = test_acts[mask].float()  # [masked patches, width]
                delta = (values.float() - before[:, indices]).norm(dim=-1) / before.norm(dim=-1).clamp_min(1e-12)
                patched = _patched_features(model, anomalous, site, l_p, L, indices, values, mask, prefix, size, cfg.batch_size)
                after = _measure(detector, raw, patched.features(site, (L,)), mask)
                d0, d1, dn = orig["defect_dist"], after["defect_dist"], ref["mean_dist"]
                s0, s1, sn = orig["score"].mean(), after["score"].mean(), ref["score"].mean()
                labels = np.r_[np.ones(len(anomalous)), np.zeros(len(normal))].astype(np.int64)
                rows.append({
                    **category_fields(category, model), "site": site, "detector_layer": L, "patch_layer": l_p,
                    "relation": "same" if l_p == L else "earlier", "neuron_set": neuron_set, "set_seed": set_seed,
                    "n_neurons": len(indices), "n_images": len(anomalous), "n_normal": len(normal),
                    "n_defect_patches": int(mask.sum()), "intervention_size": float(delta.mean()),
                    "defect_dist_orig": d0, "defect_dist_patched": d1, "normal_dist": dn,
                    "removed_frac": 1.0 - d1 / d0 if d0 > 0 else np.nan,
                    "excess_removed_frac": (d0 - d1) / (d0 - dn) if d0 != dn else np.nan,
                    "image_score_orig": float(s0), "image_score_patched": float(s1), "normal_image_score": float(sn),
                    "image_excess_removed_frac": float((s0 - s1) / (s0 - sn)) if s0 != sn else np.nan,
                    "image_auroc_orig": image_auroc(np.r_[orig["score"], ref["score"]], labels),
                    "image_auroc_patched": image_auroc(np.r_[after["score"], ref["score"]], labels),
                    "k": shots, "seed": seed, "seconds": round(time.perf_counter() - start, 2),
                })
    return pd.DataFrame(rows)


@torch.no_grad()
def _measure(detector: LakeDetector, raw: LakeDetector, feats, mask: Tensor | None) -> dict:
    """Raw distances (mean over masked patches, or over all patches) and image scores."""
    distances = raw.patch_scores(feats).reshape(len(feats), -1)  # [n, patches]
    scores = detector.predict_features(feats).scores  # [n]
    out = {"score": np.asarray(scores, dtype=np.float64), "mean_dist": float(distances.mean())}
    if mask is not None:
        out["defect_dist"] = float(distances[mask].mean())
    return out


def _patched_features(
    model: HookedViT, images: Sequence[Sample], site: str, patch_layer: int, layer: int, indices: Tensor,
    values: Tensor, mask: Tensor, prefix: int, size: int, batch_size: int,
) -> MultiFeatures:
    """Re-run ``images`` with ``indices`` at the masked patches of ``site``/``patch_layer`` set to ``values``."""
    neurons = NeuronSet(site, patch_layer, tuple(indices.tolist())).validate(model)
    width = model.cfg.site_width(site)
    tokens = prefix + mask.shape[1]
    # the masked entries in image order; split per batch
    counts = mask.sum(dim=1).tolist()
    offsets = np.r_[0, np.cumsum(counts)].astype(int)
    chunks = []
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        token_mask = torch.zeros(stop - start, tokens, dtype=torch.bool)
        token_mask[:, prefix:] = mask[start:stop]
        source = torch.zeros(stop - start, tokens, width)
        patch_values = values[offsets[start] : offsets[stop]]  # [masked in batch, K], row-major order
        block = source[token_mask]  # [masked in batch, width]
        block[:, indices] = patch_values
        source[token_mask] = block
        hook = patch_hook(neurons, source, token_mask)
        chunks.append(extract_multi(model, [s.path for s in images[start:stop]], {site: (layer,)}, size,
                                    batch_size, [hook]))
    out = chunks[0]
    for chunk in chunks[1:]:
        out = out.concat(chunk)
    return out


def figures(df: pd.DataFrame) -> dict[str, go.Figure]:
    """Per category (rows) and site (columns): fraction of the defect-patch distance removed, and the
    image AUROC of the patched anomalous images, against the patch layer, per neuron set."""
    from plotly.subplots import make_subplots

    figs: dict[str, go.Figure] = {}
    colours = {"top": "#d62728", "random": "#7f7f7f", "all": "#2ca02c", "bottom": "#1f77b4"}
    cats = sorted(df.category.unique())
    sites = sorted(df.site.unique(), reverse=True)
    layer = int(df.detector_layer.iloc[0]) if len(df) else 0
    titles = [f"{c} / {s}" for c in cats for s in sites]
    for metric, label in (("removed_frac", "fraction of the defect-patch distance removed"),
                          ("image_auroc_patched", "image AUROC, patched anomalous vs normal")):
        fig = make_subplots(rows=len(cats), cols=len(sites), subplot_titles=titles, shared_yaxes=True)
        for i, c in enumerate(cats):
            for j, site in enumerate(sites):
                part = df[(df.category == c) & (df.site == site)]
                for neuron_set in [n for n in ("top", "random", "bottom", "all") if n in set(part.neuron_set)]:
                    agg = part[part.neuron_set == neuron_set].groupby("patch_layer")[metric].agg(["mean", "std"]).reset_index()
                    fig.add_trace(go.Scatter(
                        x=agg.patch_layer, y=agg["mean"], mode="lines+markers", name=f"{neuron_set} neurons",
                        error_y=dict(type="data", array=agg["std"].fillna(0)),
                        line=dict(color=colours.get(neuron_set)), legendgroup=neuron_set, showlegend=i == 0 and j == 0,
                    ), row=i + 1, col=j + 1)
                if metric == "image_auroc_patched" and len(part):
                    fig.add_trace(go.Scatter(
                        x=[part.patch_layer.min(), part.patch_layer.max()], y=[part.image_auroc_orig.iloc[0]] * 2,
                        mode="lines", name="unpatched", line=dict(color="black", dash="dash"), legendgroup="orig",
                        showlegend=i == 0 and j == 0,
                    ), row=i + 1, col=j + 1)
                fig.update_xaxes(title_text="patch layer l'" if i == len(cats) - 1 else None, row=i + 1, col=j + 1)
        fig.update_layout(title=f"Nearest-normal patching at defect patches, read at layer {layer}: {label}",
                          template="plotly_white", height=320 * len(cats) + 120)
        figs[f"patching_{metric}"] = fig
    return figs
