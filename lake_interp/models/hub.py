"""Fail fast, never hang, when hub weights are needed but cannot be had.

open_clip and timm download pretrained weights from the Hugging Face hub. Offline, a download can hang
on DNS or time out slowly; this module checks the local cache first and the hub's reachability with a
short timeout, and raises :class:`~lake_interp.errors.ModelLoadError` with a message naming the model,
the cache path and how to pass a local checkpoint instead.

Example:
    >>> isinstance(hub_reachable(timeout=0.01), bool)
    True
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from lake_interp.errors import ModelLoadError

HUB_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder that open_clip and timm use."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if a TCP connection to the hub endpoint opens within ``timeout`` seconds.

    Runs in a daemon thread so that a hanging DNS lookup cannot block the caller. ``HF_HUB_OFFLINE=1``
    means unreachable.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def cached_hub_file(repo_id: str, filenames: tuple[str, ...] = HUB_FILENAMES) -> Path | None:
    """Path of the first of ``filenames`` of ``repo_id`` already in the local hub cache, else None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str) and os.path.exists(found):
            return Path(found)
    return None


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Make huggingface_hub read only from its cache inside the block (no network calls)."""
    from huggingface_hub import constants

    previous_env = os.environ.get("HF_HUB_OFFLINE")
    previous_const = constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous_const
        if previous_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous_env


def require_hub_weights(model_name: str, source: str, repo_id: str) -> contextlib.AbstractContextManager:
    """Return a context in which the library may fetch ``repo_id``'s weights, or raise at once.

    Cached weights load with the network disabled; uncached weights load normally when the hub is
    reachable; otherwise :class:`ModelLoadError` explains what to do.
    """
    if cached_hub_file(repo_id) is not None:
        return offline_hub()
    if hub_reachable():
        return contextlib.nullcontext()
    raise ModelLoadError(
        f"Cannot load {model_name!r} ({source}): its weights (hub repository {repo_id!r}) are not in the local "
        f"cache {hf_cache_dir()} and the hub cannot be reached. Download them once on a connected machine "
        f"(they are cached there), or pass a local checkpoint file: "
        f"load_model({model_name!r}, checkpoint='/path/to/weights') or `--checkpoint PATH` on the command line. "
        "No other model is substituted."
    )
