"""The ``lake`` command line.

    lake models
    lake demo   [--output DIR]
    lake eval   --data-root DIR [--categories C ...] --model NAME --method lake|knn-all|random-k|bottom-k|text-zero-shot
                [--shots 1 2 4] [--seeds 0 1 2] [--image-size 224] --output OUT
    lake detect --support DIR --images DIR [--model NAME] --output OUT
    lake atlas build [--data-root DIR] [--categories ...] [--model NAME] [--shots K] --output ATLAS

Every user error (bad folder, unreadable image, model not available offline) is printed as one clear
message with exit code 2; results are written atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lake_interp.errors import LakeError

SUMMARY_METRICS = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_aupro", "pixel_f1max")


def _add_detector_args(parser: argparse.ArgumentParser) -> None:
    from lake_interp.detector import LakeConfig

    default = LakeConfig()
    parser.add_argument("--model", default=default.model, help="registry name (see `lake models`)")
    parser.add_argument("--checkpoint", default=None, help="local weights file for hub models")
    parser.add_argument("--image-size", type=int, default=default.image_size)
    parser.add_argument("--site", choices=("resid", "mlp"), default=default.site)
    parser.add_argument("--layers", type=int, nargs="+", default=list(default.layers))
    parser.add_argument("--k-neurons", type=int, default=default.k_neurons, help="K selected neurons per layer")
    parser.add_argument("--sigma", type=float, default=default.sigma)


def _config(args: argparse.Namespace, method: str = "lake"):
    from lake_interp.detector import LakeConfig

    return LakeConfig.for_method(
        method,
        model=args.model,
        image_size=args.image_size,
        site=args.site,
        layers=tuple(args.layers),
        k_neurons=args.k_neurons,
        sigma=args.sigma,
    )


def _load_model(args: argparse.Namespace):
    from lake_interp.models.registry import load_model

    kwargs = {} if args.model.startswith(("clip", "open_clip:")) else {"image_size": args.image_size}
    return load_model(args.model, checkpoint=args.checkpoint, **kwargs)


def _print_table(df, columns: Sequence[str]) -> None:
    from lake_interp.results import to_markdown

    print(to_markdown(df[list(columns)]))


# ---------------------------------------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace) -> int:
    from lake_interp.models.registry import model_specs

    for spec in model_specs():
        print(f"{spec.name:22s} {spec.weights:8s} {spec.summary}")
    print("timm:<name>            hub      any timm ViT with absolute position embeddings")
    print("open_clip:<arch>       hub/file any open_clip ViT CLIP (--checkpoint for local weights)")
    return 0


# ---------------------------------------------------------------------------------------------- eval
def _run_eval(categories, methods, shots, seeds, model, output: Path, eval_size: int, overlays: int):
    from lake_interp.evaluation import evaluate_category
    from lake_interp.results import results_frame, summary_table, write_results

    rows: list[dict] = []
    for category in categories:
        save = _overlay_saver(output / "overlays" / category.name, category, overlays) if overlays else None
        rows += evaluate_category(category, methods, shots, seeds, model, eval_size=eval_size, on_prediction=save)
        write_results(results_frame(rows), output)  # partial results survive an interruption
    df = results_frame(rows)
    csv_path, parquet_path = write_results(df, output)
    summary = summary_table(df, by=("dataset", "category", "method", "k"))
    print(f"\n{model.cfg.description}; text branch: {df['text_branch'].iloc[0]}")
    _print_table(summary, ["category", "method", "k", *SUMMARY_METRICS])
    print(f"\nwrote {csv_path} and {parquet_path}")
    return df


def _overlay_saver(folder: Path, category, limit: int):
    """Save overlays of the first ``limit`` test images for seed 0 of each (method, k)."""
    from lake_interp.images import load_image
    from lake_interp.visualize import draw_outline, overlay

    def save(method, k, seed, prediction, test) -> None:
        if seed != 0:
            return
        folder.mkdir(parents=True, exist_ok=True)
        step = max(1, len(category.test) // limit)
        for i in range(0, len(category.test), step)[:limit]:
            sample = category.test[i]
            image = load_image(sample.path)
            picture = overlay(image, prediction.maps[i], alpha=0.5)
            if test.masks[i] is not None and sample.label:
                picture = draw_outline(picture, test.masks[i])
            picture.save(folder / f"{method}_k{k}_{sample.defect}_{sample.path.stem}.png")

    return save


def cmd_eval(args: argparse.Namespace) -> int:
    from lake_interp.data import find_categories, load_category, resolve_data_root

    root = resolve_data_root(args.data_root)
    refs = find_categories(root)
    if args.categories:
        unknown = sorted(set(args.categories) - {r.name for r in refs})
        if unknown:
            raise LakeError(f"categories {unknown} not found under {root}; found {[r.name for r in refs]}")
        refs = [r for r in refs if r.name in args.categories]
    if not refs:
        raise LakeError(f"no categories (folders with train/good and test/) found under {root}")
    model = _load_model(args)
    methods = {m: _config(args, m) for m in args.method}
    _run_eval([load_category(r) for r in refs], methods, args.shots, args.seeds, model, Path(args.output), args.eval_size, args.overlays)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Main job on the embedded default: the offline DINOv2-S/14 and the shipped BSData demo category."""
    from lake_interp.data import demo_license_path, load_demo_category

    category = load_demo_category()
    print(f"demo category: {category.dataset}/{category.name} ({category.summary()}); licence: {demo_license_path()}")
    model = _load_model(args)
    print(f"model: {model.cfg.description}")
    methods = {"lake": _config(args, "lake"), "knn-all": _config(args, "knn-all")}
    start = time.perf_counter()
    _run_eval([category], methods, args.shots, args.seeds, model, Path(args.output), 256, overlays=4)
    print(f"done in {time.perf_counter() - start:.1f} s; overlays in {Path(args.output) / 'overlays'}")
    return 0


# ---------------------------------------------------------------------------------------------- detect
def cmd_detect(args: argparse.Namespace) -> int:
    import pandas as pd

    from lake_interp.data import list_images
    from lake_interp.detector import LakeDetector
    from lake_interp.images import load_image
    from lake_interp.io import atomic_path
    from lake_interp.visualize import overlay

    support, images = list_images(args.support), list_images(args.images)
    if not support:
        raise LakeError(f"no images found in --support {args.support}")
    if not images:
        raise LakeError(f"no images found in --images {args.images}")
    model = _load_model(args)
    detector = LakeDetector(_config(args, "lake"), model).fit(support, object_name=args.object_name, progress=True)
    print(detector.describe())
    prediction = detector.predict(images, progress=True)
    output = Path(args.output)
    (output / "overlays").mkdir(parents=True, exist_ok=True)
    for path, amap in zip(images, prediction.maps):
        overlay(load_image(path), amap, alpha=0.5).save(output / "overlays" / f"{path.stem}.png")
    table = pd.DataFrame({"image": [str(p) for p in images], "score": prediction.scores})
    table["model"], table["text_branch"] = model.cfg.description, prediction.text_branch
    with atomic_path(output / "scores.csv") as tmp:
        table.to_csv(tmp, index=False)
    detector.save(output / "detector")
    print(table.sort_values("score", ascending=False).head(10).to_string(index=False))
    print(f"\nwrote {output / 'scores.csv'}, overlays and the fitted detector ({output / 'detector'})")
    return 0


# ---------------------------------------------------------------------------------------------- atlas
def cmd_atlas_build(args: argparse.Namespace) -> int:
    from lake_interp.atlas import build_atlas

    start = time.perf_counter()
    path = build_atlas(
        data_root=Path(args.data_root) if args.data_root else None,
        categories=args.categories,
        model_name=args.model,
        shots=args.shots,
        seed=args.seed,
        output=Path(args.output),
    )
    print(f"atlas written to {path} in {time.perf_counter() - start:.0f} s")
    return 0


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from lake_interp.detector.config import METHODS

    parser = argparse.ArgumentParser(prog="lake", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("models", help="list the registered models").set_defaults(func=cmd_models)

    demo = sub.add_parser("demo", help="run LAKE on the shipped demo data with the offline DINOv2-S/14")
    _add_detector_args(demo)
    demo.add_argument("--shots", type=int, nargs="+", default=[1, 4])
    demo.add_argument("--seeds", type=int, nargs="+", default=[0])
    demo.add_argument("--output", default="outputs/demo")
    demo.set_defaults(func=cmd_demo)

    ev = sub.add_parser("eval", help="few-shot evaluation on a data root (MVTec layout)")
    ev.add_argument("--data-root", default=None, help="folder of categories (default: $LAKE_DATA_DIR)")
    ev.add_argument("--categories", nargs="+", default=None)
    ev.add_argument("--method", nargs="+", choices=METHODS, default=["lake"])
    ev.add_argument("--shots", type=int, nargs="+", default=[1, 2, 4])
    ev.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ev.add_argument("--eval-size", type=int, default=256)
    ev.add_argument("--overlays", type=int, default=0, help="save overlays of this many test images per category")
    ev.add_argument("--output", required=True)
    _add_detector_args(ev)
    ev.set_defaults(func=cmd_eval)

    det = sub.add_parser("detect", help="run the detector on your own folders")
    det.add_argument("--support", required=True, help="folder of normal images")
    det.add_argument("--images", required=True, help="folder of images to score")
    det.add_argument("--object-name", default=None, help="object name for CLIP prompts")
    det.add_argument("--output", required=True)
    _add_detector_args(det)
    det.set_defaults(func=cmd_detect)

    atlas = sub.add_parser("atlas", help="neuron atlas")
    atlas_sub = atlas.add_subparsers(dest="atlas_command", required=True)
    build = atlas_sub.add_parser("build", help="build the neuron atlas")
    build.add_argument("--data-root", default=None, help="default: the shipped demo category")
    build.add_argument("--categories", nargs="+", default=None)
    build.add_argument("--model", default="dinov2-s14")
    build.add_argument("--shots", type=int, default=4)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--output", required=True)
    build.set_defaults(func=cmd_atlas_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LakeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; results written so far are complete files", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
