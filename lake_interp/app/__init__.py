"""The Streamlit explorer of lake_interp (``streamlit run app.py``).

Pages live in :mod:`lake_interp.app.pages` (one module per page, run by ``st.navigation``); cached
loaders shared by all sessions are in :mod:`lake_interp.app.state`; pure computations (no Streamlit)
in :mod:`lake_interp.app.analysis` and :mod:`lake_interp.app.sources`; shared widgets in
:mod:`lake_interp.app.ui`.

Environment variables:
    LAKE_APP_MODEL: model selected at start (default: the offline ``dinov2-s14``); tests use a small
        random model (``random-dinov2-small``), which the UI labels as random.
    LAKE_CACHE_DIR: cache root (default ``~/.cache/lake_interp``); the app writes below ``<root>/app``.
    LAKE_DATA_DIR: default data root offered on the Detector page.

Example:
    >>> from lake_interp.app import PAGES
    >>> sorted(PAGES)
    ['about', 'atlas', 'detector', 'neuron', 'studies']
"""

from __future__ import annotations

from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
PAGES_DIR = APP_DIR / "pages"
# page key -> file, relative to the repository root where app.py lives (st.Page / st.switch_page paths)
PAGES = {
    "detector": "lake_interp/app/pages/detector.py",
    "atlas": "lake_interp/app/pages/atlas.py",
    "neuron": "lake_interp/app/pages/neuron.py",
    "studies": "lake_interp/app/pages/studies.py",
    "about": "lake_interp/app/pages/about.py",
}

__all__ = ["APP_DIR", "PAGES", "PAGES_DIR"]
