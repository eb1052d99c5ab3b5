#!/usr/bin/env python
"""Overlap: Jaccard overlap of selected sets across categories / data sets and support draws; universal neurons.

Usage:
    python analyses/overlap/run.py --data-root $LAKE_DATA_DIR --shots 1 4 --seeds 0 1 2 3 4 5 6 7 8 9
Writes analyses/overlap/results.csv (pairs), universal.csv, figures/*.html|png and run_info.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lake_interp.studies import overlap as study
from lake_interp.studies.common import run_study_cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--sites", nargs="+", default=["resid", "mlp"])
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="default: every block")


def run(args: argparse.Namespace, categories, model) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    selections = study.collect_selections(categories, model, shots=args.shots, seeds=args.seeds, sites=args.sites,
                                          layers=args.layers)
    return study.jaccard_pairs(selections), {"universal": study.universal_neurons(selections)}


if __name__ == "__main__":
    run_study_cli("overlap", __doc__.splitlines()[0], Path(__file__).resolve().parent, add_arguments, run, study.figures)
