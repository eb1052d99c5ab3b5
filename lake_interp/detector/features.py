"""One batched forward pass per image, stopped after the deepest block the detector needs.

Example:
    >>> from PIL import Image
    >>> from lake_interp import load_model
    >>> from lake_interp.detector.config import LakeConfig
    >>> model = load_model("random-vit-tiny")
    >>> cfg = LakeConfig(model="random-vit-tiny", image_size=32, layers=(0, 1), k_neurons=8)
    >>> feats = extract_features(model, cfg, [Image.new("RGB", (40, 30))])
    >>> feats.layers[1].shape, feats.grid, feats.sizes
    (torch.Size([1, 16, 32]), (4, 4), [(30, 40)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from lake_interp.errors import ConfigError
from lake_interp.models.hooked_vit import HookedViT, hook_name
from lake_interp.models.preprocessing import ImageLike, preprocess


@dataclass
class Features:
    """Patch features of a batch of images (CLS/register tokens removed).

    Attributes:
        layers: ``{layer: [images, patches, width]}`` activations at the configured site.
        text: ``[images, patches, d_embed]`` joint-space patch embeddings (CLIP text branch) or None.
        token_norms: ``[images, patches]`` residual-stream norms at the deepest visual layer.
        grid: patch grid ``(rows, cols)``.
        sizes: original ``(height, width)`` of each image.
        names: file names (or ``"image-{i}"``) of the images.
    """

    layers: dict[int, Tensor]
    text: Tensor | None
    token_norms: Tensor
    grid: tuple[int, int]
    sizes: list[tuple[int, int]]
    names: list[str]

    def __len__(self) -> int:
        return len(self.sizes)

    def subset(self, index: Sequence[int]) -> Features:
        """Features of the images at ``index``."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return Features(
            layers={layer: acts[idx] for layer, acts in self.layers.items()},
            text=None if self.text is None else self.text[idx],
            token_norms=self.token_norms[idx],
            grid=self.grid,
            sizes=[self.sizes[i] for i in idx.tolist()],
            names=[self.names[i] for i in idx.tolist()],
        )


def _as_pil(image: ImageLike) -> tuple[Image.Image, str]:
    from lake_interp.images import load_image

    if isinstance(image, Image.Image):
        return image, getattr(image, "filename", "") or ""
    if hasattr(image, "__fspath__") or isinstance(image, str):
        return load_image(image), str(image)
    return Image.fromarray(image), ""


@torch.no_grad()
def extract_features(
    model: HookedViT,
    cfg,
    images: Sequence[ImageLike],
    *,
    text_layer: int | None = None,
    progress: bool = False,
    desc: str = "features",
) -> Features:
    """Run ``model`` once per image (in batches) and keep what the detector ``cfg`` needs.

    Args:
        cfg: a :class:`~lake_interp.detector.LakeConfig` (site, layers, image_size, batch_size).
        text_layer: block whose tokens feed the text branch (None: no text features).
    """
    if len(images) == 0:
        raise ConfigError("no images given")
    for layer in cfg.layers:
        if not 0 <= layer < model.cfg.n_layers:
            raise ConfigError(f"layer {layer} out of range: {model.cfg.name} has {model.cfg.n_layers} blocks")
    image_size = cfg.image_size if model.cfg.dynamic_image_size else model.cfg.image_size
    prep = model.preprocess.with_size(image_size)
    deepest = max(cfg.layers)
    names = {layer: hook_name(cfg.site, layer) for layer in cfg.layers}
    norm_name = hook_name("resid", deepest)
    wanted = set(names.values()) | {norm_name}
    stop = deepest + 1
    if text_layer is not None:
        wanted.add(hook_name("resid", text_layer))
        stop = max(stop, text_layer + 1)
    prefix = model.cfg.n_prefix_tokens
    out: dict[str, list[Tensor]] = {name: [] for name in wanted}
    sizes: list[tuple[int, int]] = []
    labels: list[str] = []
    batches = range(0, len(images), cfg.batch_size)
    with model.lock:
        for start in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
            pil = [_as_pil(image) for image in images[start : start + cfg.batch_size]]
            sizes += [(im.height, im.width) for im, _ in pil]
            labels += [name or f"image-{start + i}" for i, (_, name) in enumerate(pil)]
            pixels = preprocess([im for im, _ in pil], prep)  # [batch, 3, H, W]
            _, cache = model.run_with_cache(pixels, names_filter=lambda n: n in wanted, stop_at_layer=stop)
            for name in wanted:
                out[name].append(cache[name][:, prefix:])  # [batch, patches, width]
            del cache
    stacked = {name: torch.cat(chunks) for name, chunks in out.items()}
    text = None
    if text_layer is not None:
        tokens = model.ln_final.norm(stacked[hook_name("resid", text_layer)])  # [n, patches, d_model]
        text = model.project_tokens(tokens)  # [n, patches, d_embed]
    return Features(
        layers={layer: stacked[name] for layer, name in names.items()},
        text=text,
        token_norms=stacked[norm_name].norm(dim=-1),
        grid=model.cfg.grid_size(image_size),
        sizes=sizes,
        names=labels,
    )
