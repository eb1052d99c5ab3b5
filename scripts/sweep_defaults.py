"""Sweep detector options on real data to choose defaults (writes docs/sweep.csv).

Test features of every layer are extracted once per category (one forward pass per image); each
configuration then only fits and scores. Usage:
    python scripts/sweep_defaults.py --data-root $LAKE_DATA_DIR --output docs/sweep.csv
"""

from __future__ import annotations

import argparse
import itertools

import pandas as pd
import torch
from tqdm.auto import tqdm

from lake_interp.data import find_categories, load_category, sample_support
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.detector.features import Features
from lake_interp.evaluation import load_test_set
from lake_interp.io import atomic_path
from lake_interp.metrics import evaluate
from lake_interp.models.registry import load_model


def restrict(feats: Features, layers: tuple[int, ...]) -> Features:
    return Features({l: feats.layers[l] for l in layers}, feats.text, feats.token_norms, feats.grid, feats.sizes, feats.names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--output", default="docs/sweep.csv")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--categories", nargs="+", default=None)
    parser.add_argument("--sites", nargs="+", default=["resid", "mlp"])
    parser.add_argument("--layer-sets", nargs="+", default=["3", "5", "7", "9", "11", "5+8", "7+9", "4+7+10"],
                        help="layer combinations, e.g. 7 5+8")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model("dinov2-s14")
    grid = []
    for text in args.layer_sets:
        grid.append(dict(site="resid", layers=tuple(int(x) for x in text.split("+"))))
    for layer_set in [(5,), (7,), (9,)]:
        grid.append(dict(site="mlp", layers=layer_set))
    variants = [dict()] + [dict(feature_norm="none"), dict(feature_norm="l2"), dict(standardize=True),
                            dict(position_bias=True), dict(suppress_artifacts=True), dict(distance="l2"),
                            dict(criterion="mad"), dict(score_rule="topq")]
    rows = []
    for ref in find_categories(args.data_root):
        if args.categories and ref.name not in args.categories:
            continue
        category = load_category(ref)
        for site in args.sites:
            layers = tuple(sorted({l for g in grid if g["site"] == site for l in g["layers"]}))
            base = LakeDetector(LakeConfig(site=site, layers=layers), model)
            test = load_test_set(category, base, 256)
            configs = [g for g in grid if g["site"] == site]
            jobs = []
            for g in configs:
                for method in ("lake", "knn-all", "random-k"):
                    jobs.append((g, dict(), method))
                if g["layers"] in [(7,), (5, 8), (9,)] or site == "mlp":  # option variants on a few layer sets
                    jobs += [(g, v, "lake") for v in variants[1:]]
            for k, seed in itertools.product(args.shots, args.seeds):
                support = sample_support(category, k, seed)
                sfeats = base.extract([s.path for s in support])
                for g, variant, method in tqdm(jobs, desc=f"{category.name} {site} k={k} s={seed}"):
                    if variant.get("position_bias") and k < 2:
                        continue
                    cfg = LakeConfig.for_method(method, site=site, layers=g["layers"], selection_seed=seed, **variant)
                    det = LakeDetector(cfg, model).fit_features(restrict(sfeats, g["layers"]))
                    pred = det.predict_features(restrict(test.features, g["layers"]), output_size=(256, 256))
                    m = evaluate(pred.scores, test.labels, pred.maps, test.masks, eval_size=256)
                    rows.append(dict(dataset=category.dataset, category=category.name, site=site,
                                     layers="+".join(map(str, g["layers"])), method=method,
                                     variant=",".join(f"{a}={b}" for a, b in variant.items()) or "default",
                                     k=k, seed=seed, **m))
                with atomic_path(args.output) as tmp:  # partial results survive an interruption
                    pd.DataFrame(rows).to_csv(tmp, index=False)
            del test


if __name__ == "__main__":
    main()
