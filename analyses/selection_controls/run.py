#!/usr/bin/env python
"""Selection controls: top-K vs random-K vs bottom-K vs all channels, K sweep, both sites, across layers.

Usage:
    python analyses/selection_controls/run.py --data-root $LAKE_DATA_DIR --shots 4 --seeds 0
Writes analyses/selection_controls/results.csv, figures/*.html|png and run_info.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lake_interp.studies import selection_controls as study
from lake_interp.studies.common import DEFAULT_EVAL_SIZE, run_study_cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shots", type=int, nargs="+", default=[4], help="support sizes k (default 4)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="support draws (default 0)")
    parser.add_argument("--sites", nargs="+", default=["resid", "mlp"])
    parser.add_argument("--layers", type=int, nargs="+", default=list(study.LAYERS))
    parser.add_argument("--k-values", type=int, nargs="+", default=list(study.K_VALUES))
    parser.add_argument("--random-seeds", type=int, nargs="+", default=list(study.RANDOM_SEEDS))
    parser.add_argument("--sweep-layers", type=int, nargs="+", default=None,
                        help="layers with the full K sweep (default: the default detector's layer)")
    parser.add_argument("--eval-size", type=int, default=DEFAULT_EVAL_SIZE)


def run(args: argparse.Namespace, categories, model) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    df = study.run(categories, model, shots=args.shots, seeds=args.seeds, sites=args.sites, layers=args.layers,
                   k_values=args.k_values, random_seeds=args.random_seeds, sweep_layers=args.sweep_layers,
                   eval_size=args.eval_size)
    return df, {"headline": study.headline(df)}


if __name__ == "__main__":
    run_study_cli("selection_controls", __doc__.splitlines()[0], Path(__file__).resolve().parent, add_arguments, run,
                  study.figures)
