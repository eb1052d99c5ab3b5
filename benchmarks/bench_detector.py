"""Speed and memory of the LAKE detector on DINOv2-S/14 at 224 px, CPU (issue 4).

All figures come from one run with interleaved repetitions, so ratios are robust to machine noise:
  * fit time for k = 1, 2, 4 (support images from the shipped demo category, from files);
  * per-image latency at batch 1: bare forward pass of the full backbone vs ``lake`` (model only, from a
    preprocessed tensor) vs ``knn-all`` on the same features; and end to end (image file -> score + map);
  * memory of the normality representation for K = 100 vs all channels.

    python benchmarks/bench_detector.py [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from _timing import interleaved_medians
from lake_interp import load_model
from lake_interp.data import load_demo_category, sample_support
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.models import preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("dinov2-s14")
    category = load_demo_category()
    config = LakeConfig()
    print(f"{model.cfg.description}; LAKE defaults: site={config.site} layers={list(config.layers)} K={config.k_neurons}; "
          f"{args.threads} threads, {args.repeats} interleaved repeats")

    fits = {}
    for k in (1, 2, 4):
        paths = [s.path for s in sample_support(category, k, seed=0)]
        fits[f"fit k={k}"] = lambda paths=paths: LakeDetector(config, model).fit(paths)
    for name, seconds in interleaved_medians(fits, repeats=max(3, args.repeats // 3), warmup=1).items():
        print(f"{name:40s} {1000 * seconds:8.1f} ms")

    support = [s.path for s in sample_support(category, 4, seed=0)]
    lake = LakeDetector(config, model).fit(support)
    knn = LakeDetector(LakeConfig.for_method("knn-all"), model).fit(support)
    test_path = category.test[-1].path
    pixels = preprocess([test_path], model.preprocess.with_size(config.image_size))
    feats = lake.extract([test_path])

    def lake_from_tensor() -> None:
        with model.lock, torch.inference_mode():
            lake.predict_features(features_from_pixels(pixels, lake), output_size=(224, 224))

    def features_from_pixels(pixels: torch.Tensor, det: LakeDetector):
        from lake_interp.detector.features import Features
        from lake_interp.models import hook_name

        names = {l: hook_name(det.config.site, l) for l in det.config.layers}
        wanted = set(names.values()) | {hook_name("resid", max(det.config.layers))}
        _, cache = model.run_with_cache(pixels, names_filter=lambda n: n in wanted, stop_at_layer=max(det.config.layers) + 1)
        layers = {l: cache[n][:, 1:] for l, n in names.items()}
        norms = cache[hook_name("resid", max(det.config.layers))][:, 1:].norm(dim=-1)
        return Features(layers, None, norms, feats.grid, [(224, 224)], ["x"])

    with torch.inference_mode():
        times = interleaved_medians(
            {
                "bare forward (12 blocks)": lambda: model(pixels),
                "lake, model only": lake_from_tensor,
                "knn-all scoring on the same features": lambda: knn.predict_features(feats, output_size=(224, 224)),
                "lake scoring on the same features": lambda: lake.predict_features(feats, output_size=(224, 224)),
                "lake end to end (file -> score + map)": lambda: lake.predict([test_path]),
            },
            repeats=args.repeats,
        )
    base = times["bare forward (12 blocks)"]
    print("per-image latency, batch 1:")
    for name, seconds in times.items():
        print(f"  {name:42s} {1000 * seconds:8.1f} ms   ratio to bare forward {seconds / base:5.3f}")
    print("memory of the normality representation (k = 4):")
    print(f"  lake K={config.k_neurons}: {lake.memory_bytes() / 1e6:.2f} MB   all channels: {knn.memory_bytes() / 1e6:.2f} MB")

    batch = [s.path for s in category.test[:16]]
    start = time.perf_counter()
    lake.predict(batch)
    print(f"batched end to end, 16 demo images: {1000 * (time.perf_counter() - start) / len(batch):.1f} ms per image")


if __name__ == "__main__":
    main()
