"""Time the pixel metrics on 300 anomaly maps of 256x256 (about 20 M pixels); prints seconds.

Not a test: run it by hand, e.g. ``python benchmarks/bench_metrics.py --n 300 --size 256``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lake_interp.metrics import evaluate, pixel_metrics  # noqa: E402


def make_case(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth-ish maps with blob defects in every second image."""
    rng = np.random.default_rng(seed)
    maps = rng.random((n, size, size), dtype=np.float32)  # [N, H, W]
    masks = np.zeros((n, size, size), dtype=bool)
    yy, xx = np.mgrid[:size, :size]
    for i in range(0, n, 2):
        for _ in range(int(rng.integers(1, 4))):
            cy, cx, r = rng.integers(0, size), rng.integers(0, size), rng.integers(3, size // 8)
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        maps[i][masks[i]] += rng.random() * 0.8
    return maps, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    maps, masks = make_case(args.n, args.size)
    start = time.perf_counter()
    result = pixel_metrics(maps, masks)
    elapsed = time.perf_counter() - start
    print(f"pixel_metrics on {args.n} maps of {args.size}x{args.size} ({maps.size / 1e6:.1f} M pixels): "
          f"{elapsed:.2f} s")
    print({k: round(v, 4) for k, v in result.items()})
    labels = masks.reshape(args.n, -1).any(1).astype(int)
    scores = maps.reshape(args.n, -1).max(1)
    start = time.perf_counter()
    evaluate(scores, labels, list(maps), list(masks), eval_size=args.size)
    print(f"evaluate (all 7 metrics, no resizing needed): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
