#!/usr/bin/env python
"""Patching: nearest-normal values into the selected (vs random, vs all) neurons at defect patches.

Usage:
    python analyses/patching/run.py --data-root $LAKE_DATA_DIR --shots 4 --seeds 0
Writes analyses/patching/results.csv, figures/*.html|png and run_info.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lake_interp.studies import patching as study
from lake_interp.studies.common import run_study_cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shots", type=int, nargs="+", default=[4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sites", nargs="+", default=["resid", "mlp"])
    parser.add_argument("--layer", type=int, default=None, help="detector layer L (default: the default detector's)")
    parser.add_argument("--patch-layers", type=int, nargs="+", default=None, help="default: every second block up to L")
    parser.add_argument("--neuron-sets", nargs="+", default=["top", "random", "all"])
    parser.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-neurons", type=int, default=None)
    parser.add_argument("--n-images", type=int, default=40, help="anomalous images (seeded subset; -1 = all)")
    parser.add_argument("--n-normal", type=int, default=20, help="normal images for the reference level (-1 = all)")


def run(args: argparse.Namespace, categories, model) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    frames = [
        study.run(categories, model, shots=k, seed=seed, sites=args.sites, layer=args.layer,
                  patch_layers=args.patch_layers, neuron_sets=args.neuron_sets, random_seeds=args.random_seeds,
                  n_neurons=args.n_neurons, n_images=None if args.n_images < 0 else args.n_images,
                  n_normal=None if args.n_normal < 0 else args.n_normal)
        for k in args.shots for seed in args.seeds
    ]
    return pd.concat(frames, ignore_index=True), {}


if __name__ == "__main__":
    run_study_cli("patching", __doc__.splitlines()[0], Path(__file__).resolve().parent, add_arguments, run, study.figures)
