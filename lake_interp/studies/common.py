"""Shared plumbing of the causal studies: categories, multi-site feature extraction, scoring, outputs.

Every study follows the evaluation harness pattern (:mod:`lake_interp.evaluation`): test images go
through the backbone once per category (all sites and layers the study needs captured in the same
forward pass), support draws once per draw, and each configuration only fits and scores.

Example:
    >>> from lake_interp import load_model
    >>> from lake_interp.data import load_demo_category
    >>> model = load_model("random-vit-tiny")
    >>> cat = load_demo_category()
    >>> feats = extract_multi(model, [s.path for s in cat.train[:2]], {"resid": (0, 1)}, image_size=32)
    >>> feats.acts[("resid", 1)].shape
    torch.Size([2, 16, 32])
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from lake_interp.data import (
    DATA_DIR_ENV,
    Category,
    find_categories,
    load_category,
    load_demo_category,
    load_sample_mask,
    resolve_data_root,
)
from lake_interp.data.layout import Sample
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.detector.features import Features
from lake_interp.errors import ConfigError, DataLayoutError
from lake_interp.io import atomic_path, atomic_write, write_json_atomic
from lake_interp.evaluation import load_eval_masks
from lake_interp.metrics import evaluate
from lake_interp.models.hooked_vit import HookedViT, hook_name
from lake_interp.models.preprocessing import preprocess

DEFAULT_EVAL_SIZE = 256
DEFECT_FRACTION = 0.25  # a patch is a "defect patch" when more than this fraction of its pixels is defect
HookPair = tuple[str, Callable]

__all__ = [
    "DEFAULT_EVAL_SIZE",
    "DEFECT_FRACTION",
    "MultiFeatures",
    "TestData",
    "base_config",
    "defect_fractions",
    "detector_layer",
    "evaluate_detector",
    "extract_multi",
    "input_size",
    "load_test_data",
    "resolve_categories",
    "study_parser",
    "subsample_test",
    "write_study_outputs",
]


# ---------------------------------------------------------------------------------------------- config
def base_config(model: HookedViT, base: LakeConfig | None = None) -> LakeConfig:
    """The detector configuration a study starts from: ``base`` or the library default, on ``model``."""
    cfg = base or LakeConfig()
    return cfg.replace(model=model.cfg.name)


def detector_layer(cfg: LakeConfig) -> int:
    """The single layer a study's detector reads: the deepest of the configured layers (the default
    detector may use several; studies use one so that "earlier layer" is well defined)."""
    return max(cfg.layers)


def single_layer(cfg: LakeConfig, site: str, layer: int, **changes) -> LakeConfig:
    """``cfg`` on one ``site``/``layer``; ``k_neurons`` in changes replaces a ratio form."""
    if "k_neurons" in changes:
        changes.setdefault("neuron_ratio", None)
    return cfg.replace(site=site, layers=(layer,), **changes)


def input_size(model: HookedViT, cfg: LakeConfig) -> int:
    """Input side in pixels, as :func:`~lake_interp.detector.features.extract_features` uses it."""
    return cfg.image_size if model.cfg.dynamic_image_size else model.cfg.image_size


# ------------------------------------------------------------------------------------------ categories
def resolve_categories(
    data_root: str | os.PathLike | None = None,
    categories: Sequence[str] | None = None,
    category_paths: Sequence[str | os.PathLike] | None = None,
) -> list[Category]:
    """Categories to study: ``category_paths`` if given, else those under ``data_root`` (filtered by
    ``categories``, matching ``name`` or ``dataset/name``), else the shipped demo category.

    Raises:
        DataLayoutError: a requested category is not under ``data_root``.
    """
    if category_paths:
        return [load_category(Path(p)) for p in category_paths]
    if data_root is None:
        demo = load_demo_category()
        if categories and not {demo.name, f"{demo.dataset}/{demo.name}"} & set(categories):
            raise DataLayoutError(f"no data root given and the demo category is {demo.dataset}/{demo.name}, not {categories}")
        return [demo]
    refs = find_categories(resolve_data_root(data_root))
    if categories:
        wanted = set(categories)
        chosen = [r for r in refs if r.name in wanted or f"{r.dataset}/{r.name}" in wanted]
        found = {r.name for r in chosen} | {f"{r.dataset}/{r.name}" for r in chosen}
        missing = sorted(wanted - found)
        if missing:
            known = ", ".join(f"{r.dataset}/{r.name}" for r in refs)
            raise DataLayoutError(f"categories {missing} not found under {data_root}; available: {known}")
        refs = chosen
    return [load_category(r) for r in refs]


def subsample_test(category: Category, n_good: int | None, n_defect: int | None, seed: int = 0) -> Category:
    """``category`` with a seeded stratified subset of its test set (None = keep all of that kind).

    Defective images with a mask are preferred, so pixel metrics stay defined.
    """
    rng = np.random.default_rng(seed)
    good = [s for s in category.test if s.label == 0]
    masked = [s for s in category.test if s.label == 1 and s.mask_path is not None]
    unmasked = [s for s in category.test if s.label == 1 and s.mask_path is None]

    def pick(pool: list[Sample], n: int | None) -> list[Sample]:
        if n is None or n >= len(pool):
            return pool
        return [pool[i] for i in sorted(rng.permutation(len(pool))[:n].tolist())]

    defect = pick(masked, n_defect)
    if n_defect is None or len(defect) < n_defect:
        defect = defect + pick(unmasked, None if n_defect is None else n_defect - len(defect))
    test = tuple(sorted(pick(good, n_good) + defect, key=lambda s: s.path.as_posix()))
    return dataclasses.replace(category, test=test)


# ------------------------------------------------------------------------------------------ features
@dataclass
class MultiFeatures:
    """Patch activations of several sites and layers from one forward pass per image.

    Attributes:
        acts: ``{(site, layer): [images, patches, width]}`` raw site activations (prefix tokens removed).
        norms: ``{layer: [images, patches]}`` residual-stream norms (the detector's artefact statistic).
        grid: patch grid ``(rows, cols)``; sizes: original ``(height, width)``; names: file names.
    """

    acts: dict[tuple[str, int], Tensor]
    norms: dict[int, Tensor]
    grid: tuple[int, int]
    sizes: list[tuple[int, int]]
    names: list[str]

    def __len__(self) -> int:
        return len(self.sizes)

    def features(self, site: str, layers: Sequence[int]) -> Features:
        """The detector's :class:`Features` for ``site`` and ``layers`` (norms at the deepest layer)."""
        missing = [layer for layer in layers if (site, layer) not in self.acts]
        if missing:
            raise ConfigError(f"site {site!r} layers {missing} were not extracted")
        return Features(
            layers={layer: self.acts[(site, layer)] for layer in layers},
            text=None,
            token_norms=self.norms[max(layers)],
            grid=self.grid,
            sizes=list(self.sizes),
            names=list(self.names),
        )

    def subset(self, index: Sequence[int]) -> MultiFeatures:
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return MultiFeatures(
            acts={key: value[idx] for key, value in self.acts.items()},
            norms={key: value[idx] for key, value in self.norms.items()},
            grid=self.grid,
            sizes=[self.sizes[i] for i in idx.tolist()],
            names=[self.names[i] for i in idx.tolist()],
        )

    def concat(self, other: MultiFeatures) -> MultiFeatures:
        return MultiFeatures(
            acts={key: torch.cat([value, other.acts[key]]) for key, value in self.acts.items()},
            norms={key: torch.cat([value, other.norms[key]]) for key, value in self.norms.items()},
            grid=self.grid,
            sizes=self.sizes + other.sizes,
            names=self.names + other.names,
        )


@torch.no_grad()
def extract_multi(
    model: HookedViT,
    images: Sequence[str | os.PathLike | Image.Image],
    wanted: Mapping[str, Sequence[int]],
    image_size: int,
    batch_size: int = 16,
    fwd_hooks: Sequence[HookPair] = (),
    extra_resid: Sequence[int] = (),
    progress: bool = False,
    desc: str = "features",
) -> MultiFeatures:
    """Run ``model`` once per image (batched), optionally with intervention hooks, capturing every
    ``site -> layers`` of ``wanted`` and the residual norms of those layers (plus ``extra_resid``).

    The pass stops after the deepest block needed.
    """
    if len(images) == 0:
        raise ConfigError("no images given")
    keys = [(site, int(layer)) for site, layers in wanted.items() for layer in layers]
    resid_layers = sorted({layer for _, layer in keys} | {int(layer) for layer in extra_resid})
    for layer in resid_layers:
        if not 0 <= layer < model.cfg.n_layers:
            raise ConfigError(f"layer {layer} out of range: {model.cfg.name} has {model.cfg.n_layers} blocks")
    names = {key: hook_name(*key) for key in keys}
    resid_names = {layer: hook_name("resid", layer) for layer in resid_layers}
    capture = set(names.values()) | set(resid_names.values())
    prep = model.preprocess.with_size(image_size)
    prefix = model.cfg.n_prefix_tokens
    acts: dict[tuple[str, int], list[Tensor]] = {key: [] for key in keys}
    norms: dict[int, list[Tensor]] = {layer: [] for layer in resid_layers}
    sizes: list[tuple[int, int]] = []
    labels: list[str] = []
    with model.lock, model.hooks(fwd_hooks=list(fwd_hooks)):
        for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, unit="batch"):
            chunk = images[start : start + batch_size]
            pil = [image if isinstance(image, Image.Image) else _load(image) for image in chunk]
            sizes += [(im.height, im.width) for im in pil]
            labels += [Path(str(image)).name if not isinstance(image, Image.Image) else f"image-{start + i}"
                       for i, image in enumerate(chunk)]
            pixels = preprocess(pil, prep)  # [batch, 3, H, W]
            _, cache = model.run_with_cache(pixels, names_filter=lambda n: n in capture, stop_at_layer=max(resid_layers) + 1)
            for key, name in names.items():
                acts[key].append(cache[name][:, prefix:].clone())  # [batch, patches, width]
            for layer, name in resid_names.items():
                norms[layer].append(cache[name][:, prefix:].norm(dim=-1))  # [batch, patches]
            del cache
    return MultiFeatures(
        acts={key: torch.cat(value) for key, value in acts.items()},
        norms={key: torch.cat(value) for key, value in norms.items()},
        grid=model.cfg.grid_size(image_size),
        sizes=sizes,
        names=labels,
    )


def _load(path: str | os.PathLike) -> Image.Image:
    from lake_interp.images import load_image

    return load_image(path)


def defect_fractions(samples: Sequence[Sample], sizes: Sequence[tuple[int, int]], grid: tuple[int, int]) -> np.ndarray:
    """Fraction of defect pixels in each patch: ``float32 [images, rows, cols]``.

    The model squashes each image to a square, so patch ``(r, c)`` covers the ``(r, c)`` cell of a
    ``rows x cols`` grid laid over the original image; the fraction is the box-filtered mask.
    Normal images give 0 everywhere; defective images without a mask (or with an empty one) give NaN
    (unknown, excluded from patch statistics).
    """
    rows, cols = grid
    out = np.zeros((len(samples), rows, cols), dtype=np.float32)
    for i, (sample, (height, width)) in enumerate(zip(samples, sizes)):
        if sample.label == 0:
            continue
        mask = load_sample_mask(sample, (width, height))
        if mask is None or not mask.any():
            out[i] = np.nan
            continue
        img = Image.fromarray(mask.astype(np.float32), mode="F")
        out[i] = np.asarray(img.resize((cols, rows), Image.BOX), dtype=np.float32)
    return out


@dataclass
class TestData:
    """Test images of one category with features, labels, masks at ``eval_size`` and patch defect fractions."""

    category: Category
    features: MultiFeatures
    labels: np.ndarray  # [n]
    masks: list[np.ndarray | None]  # [eval, eval] bool; None = defective without mask
    fractions: np.ndarray  # [n, rows, cols]
    seconds: float

    def subset(self, index: Sequence[int]) -> TestData:
        index = list(index)
        test = tuple(self.category.test[i] for i in index)
        return TestData(
            dataclasses.replace(self.category, test=test),
            self.features.subset(index),
            self.labels[index],
            [self.masks[i] for i in index],
            self.fractions[index],
            self.seconds,
        )


def load_test_data(
    category: Category,
    model: HookedViT,
    wanted: Mapping[str, Sequence[int]],
    image_size: int,
    eval_size: int = DEFAULT_EVAL_SIZE,
    batch_size: int = 16,
    fwd_hooks: Sequence[HookPair] = (),
    extra_resid: Sequence[int] = (),
    progress: bool = False,
) -> TestData:
    """Extract the test features of ``category`` once (all of ``wanted`` in one pass) and load masks."""
    start = time.perf_counter()
    feats = extract_multi(model, [s.path for s in category.test], wanted, image_size, batch_size, fwd_hooks,
                          extra_resid, progress, f"{category.name} test")
    seconds = time.perf_counter() - start
    masks = load_eval_masks(category.test, feats.sizes, eval_size)
    labels = np.array([s.label for s in category.test], dtype=np.int64)
    return TestData(category, feats, labels, masks, defect_fractions(category.test, feats.sizes, feats.grid), seconds)


def evaluate_detector(detector: LakeDetector, feats: Features, test: TestData, eval_size: int = DEFAULT_EVAL_SIZE) -> dict[str, float]:
    """All metrics of a fitted detector on test features (image AUROC, AUPRO, ...)."""
    prediction = detector.predict_features(feats, output_size=(eval_size, eval_size))
    return evaluate(prediction.scores, test.labels, prediction.maps, test.masks, eval_size=eval_size)


def category_fields(category: Category, model: HookedViT) -> dict[str, str]:
    return {"model": model.cfg.description, "dataset": category.dataset, "category": category.name}


# ---------------------------------------------------------------------------------------------- CLI
def study_parser(study: str, description: str) -> argparse.ArgumentParser:
    """Common options of ``analyses/<study>/run.py``."""
    parser = argparse.ArgumentParser(prog=f"analyses/{study}/run.py", description=description)
    parser.add_argument("--data-root", default=None,
                        help=f"data root (MVTec layout); default: ${DATA_DIR_ENV}, else the shipped demo category")
    parser.add_argument("--categories", nargs="+", default=None, help="category names (or dataset/name) to use; default all")
    parser.add_argument("--model", default="dinov2-s14", help="backbone registry name (default dinov2-s14, offline)")
    parser.add_argument("--output", default=None, help=f"output folder (default: analyses/{study}); results.csv and figures/ go there")
    parser.add_argument("--no-png", action="store_true", help="write HTML figures only")
    parser.add_argument("--figures-only", action="store_true",
                        help="redraw the figures from an existing results.csv in the output folder (no model run)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser


def cli_categories(args: argparse.Namespace) -> list[Category]:
    """Categories from parsed CLI options: ``--data-root``, else ``$LAKE_DATA_DIR``, else the demo."""
    root = args.data_root or os.environ.get(DATA_DIR_ENV) or None
    return resolve_categories(root, args.categories)


def write_study_outputs(
    df: pd.DataFrame,
    figures: Mapping[str, object],
    folder: str | os.PathLike,
    info: Mapping[str, object],
    png: bool = True,
    stem: str = "results",
    write_results: bool = True,
) -> dict[str, object]:
    """Write ``folder/<stem>.csv`` (atomically), ``folder/figures/<name>.html`` and ``.png`` (kaleido;
    skipped with a note if export fails) and ``folder/run_info.json``. Returns the run info written."""
    folder = Path(folder)
    if write_results:
        with atomic_path(folder / f"{stem}.csv") as tmp:
            df.to_csv(tmp, index=False)
    notes: list[str] = []
    written: list[str] = []
    stale = folder / "figures"
    if stale.is_dir():  # figures of an earlier version of the study that this one no longer draws
        for old in stale.iterdir():
            if old.suffix in (".html", ".png") and old.stem not in figures:
                old.unlink()
    for name, fig in figures.items():
        html = folder / "figures" / f"{name}.html"
        with atomic_write(html) as handle:
            handle.write(fig.to_html(include_plotlyjs="cdn", full_html=True))
        written.append(str(html.relative_to(folder)))
        if png:
            try:
                data = fig.to_image(format="png", width=1000, height=int(fig.layout.height or 560), scale=1)
            except Exception as exc:  # kaleido/Chrome missing or broken: say so, keep the HTML
                notes.append(f"PNG export of {name} failed ({type(exc).__name__}: {exc}); HTML only")
                continue
            with atomic_write(folder / "figures" / f"{name}.png", mode="wb") as handle:
                handle.write(data)
            written.append(f"figures/{name}.png")
    record = {**dict(info), "figures": written, "notes": notes, "rows": len(df)}
    write_json_atomic(folder / "run_info.json", record)
    for note in notes:
        print(note)
    return record


def read_run_info(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "run_info.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_study_cli(
    study: str,
    description: str,
    default_output: str | os.PathLike,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace, list[Category], HookedViT], tuple[pd.DataFrame, dict[str, pd.DataFrame]]],
    figures: Callable[[pd.DataFrame], Mapping[str, object]],
    argv: Sequence[str] | None = None,
) -> Path:
    """Shared body of ``analyses/<study>/run.py``: parse options, load model and categories, run, write
    ``results.csv`` (+ extra tables), figures and ``run_info.json`` (with the run time). Returns the folder."""
    from datetime import datetime, timezone

    from lake_interp.models.registry import load_model

    parser = study_parser(study, description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    folder = Path(args.output) if args.output else Path(default_output)
    if args.figures_only:
        return redraw_figures(folder, figures, png=not args.no_png)
    if args.threads:
        torch.set_num_threads(args.threads)
    categories = cli_categories(args)
    model = load_model(args.model)
    start = time.perf_counter()
    df, extra = run(args, categories, model)
    seconds = time.perf_counter() - start
    for name, table in extra.items():
        with atomic_path(folder / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    info = {
        "study": study,
        "argv": list(argv) if argv is not None else sys.argv[1:],
        "options": {k: v for k, v in vars(args).items()},
        "model": model.cfg.description,
        "detector_config": LakeConfig().to_dict(),
        "categories": [f"{c.dataset}/{c.name}" for c in categories],
        "run_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra_tables": [f"{name}.csv" for name in extra],
    }
    write_study_outputs(df, figures(df), folder, info, png=not args.no_png)
    print(f"{study}: {len(df)} rows in {seconds:.0f} s -> {folder / 'results.csv'}")
    return folder



def redraw_figures(folder: str | os.PathLike, figures: Callable[[pd.DataFrame], Mapping[str, object]], png: bool = True) -> Path:
    """Rewrite ``folder/figures`` from ``folder/results.csv`` (keeps results and run info, updates its figure list)."""
    folder = Path(folder)
    results = folder / "results.csv"
    if not results.is_file():
        raise DataLayoutError(f"{results} not found: run the study first")
    df = pd.read_csv(results)
    info = read_run_info(folder)
    kept = {k: v for k, v in info.items() if k not in ("figures", "notes", "rows")}
    record = write_study_outputs(df, figures(df), folder, kept, png, write_results=False)
    print(f"redrew {len(record['figures'])} figure files in {folder / 'figures'}")
    return folder
