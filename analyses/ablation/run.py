#!/usr/bin/env python
"""Ablation: zero/mean-ablate the selected neurons (and random / bottom controls) in the forward pass.

Usage:
    python analyses/ablation/run.py --data-root $LAKE_DATA_DIR --shots 4 --seeds 0
Writes analyses/ablation/results.csv, summary.csv, figures/*.html|png and run_info.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lake_interp.studies import ablation as study
from lake_interp.studies.common import DEFAULT_EVAL_SIZE, run_study_cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shots", type=int, nargs="+", default=[4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sites", nargs="+", default=["resid", "mlp"])
    parser.add_argument("--layer", type=int, default=None, help="detector layer L (default: the default detector's)")
    parser.add_argument("--ablate-layers", type=int, nargs="+", default=None, help="default: L-3 and L")
    parser.add_argument("--modes", nargs="+", default=["zero", "mean"])
    parser.add_argument("--neuron-sets", nargs="+", default=["top", "random", "bottom"])
    parser.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-neurons", type=int, default=None, help="neurons per ablated set (default: the detector's K)")
    parser.add_argument("--n-test-good", type=int, default=40, help="normal test images (seeded subset; -1 = all)")
    parser.add_argument("--n-test-defect", type=int, default=40, help="defective test images (-1 = all)")
    parser.add_argument("--eval-size", type=int, default=DEFAULT_EVAL_SIZE)


def run(args: argparse.Namespace, categories, model) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    frames = [
        study.run(categories, model, shots=k, seed=seed, sites=args.sites, layer=args.layer,
                  ablate_layers=args.ablate_layers, modes=args.modes, neuron_sets=args.neuron_sets,
                  random_seeds=args.random_seeds, n_neurons=args.n_neurons,
                  n_test_good=None if args.n_test_good < 0 else args.n_test_good,
                  n_test_defect=None if args.n_test_defect < 0 else args.n_test_defect, eval_size=args.eval_size)
        for k in args.shots for seed in args.seeds
    ]
    df = pd.concat(frames, ignore_index=True)
    return df, {"summary": study.summary(df)}


if __name__ == "__main__":
    run_study_cli("ablation", __doc__.splitlines()[0], Path(__file__).resolve().parent, add_arguments, run, study.figures)
