"""Causal and control studies of the LAKE claims, each a library module with ``run(...) -> DataFrame``
(tidy) and ``figures(df) -> {name: plotly Figure}``; ``analyses/<study>/run.py`` wraps each for the CLI.

Studies:
    * :mod:`~lake_interp.studies.selection_controls`: top-K vs random-K vs bottom-K vs all channels, K sweep,
      both sites, across layers (claims 1 and 5).
    * :mod:`~lake_interp.studies.ablation`: zero/mean ablation of the selected neurons in the forward pass (claim 2).
    * :mod:`~lake_interp.studies.patching`: nearest-normal activation patching at defect patches (claim 2).
    * :mod:`~lake_interp.studies.overlap`: Jaccard overlap of selected sets across categories and support draws (claim 3).
    * :mod:`~lake_interp.studies.robustness`: one defective image in the support set (claim 4).

Example:
    >>> from lake_interp.studies import STUDIES
    >>> STUDIES[0]
    'selection_controls'
"""

STUDIES = ("selection_controls", "ablation", "patching", "overlap", "robustness")

__all__ = ["STUDIES"]
