#!/usr/bin/env python
"""Robustness: one defective image in the k-shot support set vs a clean one (lake, lake-mad, knn-all).

Usage:
    python analyses/robustness/run.py --data-root $LAKE_DATA_DIR --shots 4 --seeds 0 1 2 3 4 5 6 7 8 9
Writes analyses/robustness/results.csv, drops.csv, figures/*.html|png and run_info.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lake_interp.studies import robustness as study
from lake_interp.studies.common import DEFAULT_EVAL_SIZE, run_study_cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shots", type=int, nargs="+", default=[4])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--eval-size", type=int, default=DEFAULT_EVAL_SIZE)


def run(args: argparse.Namespace, categories, model) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    df = pd.concat([study.run(categories, model, shots=k, seeds=args.seeds, eval_size=args.eval_size) for k in args.shots],
                   ignore_index=True)
    return df, {"drops": study.drops(df)}


if __name__ == "__main__":
    run_study_cli("robustness", __doc__.splitlines()[0], Path(__file__).resolve().parent, add_arguments, run, study.figures)
