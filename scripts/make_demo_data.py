"""Build the demo category shipped in ``lake_interp/data/demo/`` from BSData ``ball_screw``.

The choice is deterministic: files are sorted by name and picked evenly spaced.

- 8 ``train/good`` images from the source ``train/good`` (the support pool);
- 8 ``test/good`` images from the source ``test/good``;
- 12 ``test/pitting`` images with masks, chosen among those whose mask covers at least
  ``--min-mask-fraction`` of the image (default: 0.2 %, about the median), so the defects stay visible
  after downscaling.

Images are resized to ``--width`` (default 564) keeping the aspect ratio (Lanczos) and saved as JPEG
(quality 85); masks are resized with nearest neighbour and saved as 0/255 PNG. The licence file and
a README (CC BY-SA 4.0, attribution, list of changes) are written next to the data.

Example:
    python scripts/make_demo_data.py --source "$LAKE_DATA_DIR/bsdata/ball_screw"
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lake_interp.data.layout import list_images  # noqa: E402
from lake_interp.errors import DataLayoutError  # noqa: E402
from lake_interp.images import load_image, load_mask  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "lake_interp" / "data" / "demo"

ATTRIBUTION = (
    'Schlagenhauf, T., Landwehr, M., Fleischer, J., "Industrial machine tool element surface defect dataset", '
    "Data in Brief (2021), arXiv:2103.13003."
)

LICENSE_TEXT = f"""# Licence of the demo data (`bsdata/ball_screw`)

The images and masks in this folder are a modified subset of **BSData** (ball-screw drive surface defects):

> {ATTRIBUTION}

BSData is published under the **Creative Commons Attribution-ShareAlike 4.0 International** licence
(CC BY-SA 4.0): <https://creativecommons.org/licenses/by-sa/4.0/> (full legal code:
<https://creativecommons.org/licenses/by-sa/4.0/legalcode>). This derived subset is distributed under
the same licence.

In short, CC BY-SA 4.0 lets you share (copy and redistribute) and adapt (remix, transform, build upon)
the material for any purpose, even commercially, provided that you

- **give appropriate credit** (the attribution above), provide a link to the licence and indicate if
  changes were made;
- **share alike**: distribute your contributions under the same licence as the original;
- add no legal terms or technological measures that restrict others from doing anything the licence permits.

No warranties are given. This summary is not a substitute for the licence text at the link above.

## Changes made

- **Subset**: only type-2 images of size 1130x460; {{n_train}} normal images for `train/good`, {{n_good}}
  for `test/good` and {{n_defect}} `pitting` images with their masks, chosen deterministically (sorted by
  name, evenly spaced; defective images only among those whose mask covers at least {{min_frac}} % of
  the image) by `scripts/make_demo_data.py`.
- **Downscaled** to {{width}}x{{height}} pixels (Lanczos) and re-encoded as JPEG (quality {{quality}});
  masks (rasterised from the original polygon labels, 0 / 255) resized with nearest neighbour.
- Images without a label file in the original release are treated as normal; note that good and
  defective images of the same spot form wear sequences, and some normal images are soiled.
"""

README_TEXT = """# Demo data

`bsdata/ball_screw/` is a tiny category in the MVTec AD layout for the examples, the app and tests:

```
bsdata/ball_screw/train/good/*.jpg                    {n_train} normal images (few-shot support pool)
bsdata/ball_screw/test/good/*.jpg                     {n_good} normal test images
bsdata/ball_screw/test/pitting/*.jpg                  {n_defect} defective test images
bsdata/ball_screw/ground_truth/pitting/*_mask.png     their masks (0 / 255)
```

Load it with `lake_interp.data.load_demo_category()`. It is a modified subset of BSData
(CC BY-SA 4.0): see `LICENSE.md` for the attribution and the changes. Rebuild it with
`python scripts/make_demo_data.py --source <data>/bsdata/ball_screw`.
"""


def evenly_spaced(items: list, n: int) -> list:
    """``n`` items at evenly spaced positions of ``items`` (first and last included when n > 1)."""
    if n > len(items):
        raise DataLayoutError(f"need {n} files but only {len(items)} are available")
    if n == 1:
        return [items[len(items) // 2]]
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def build(source: Path, out: Path, n_train: int = 8, n_good: int = 8, n_defect: int = 12,
          width: int = 564, quality: int = 85, min_mask_fraction: float = 0.002, defect: str = "pitting") -> Path:
    """Write the demo category below ``out`` and return the category folder."""
    train = list_images(source / "train" / "good")
    good = list_images(source / "test" / "good")
    defective = list_images(source / "test" / defect)
    mask_dir = source / "ground_truth" / defect
    if not train or not good or not defective:
        raise DataLayoutError(f"{source} lacks train/good, test/good or test/{defect} images")
    candidates = []
    for path in defective:
        mask_path = mask_dir / f"{path.stem}_mask.png"
        if not mask_path.is_file():
            continue
        with Image.open(path) as im:
            size = im.size
        if load_mask(mask_path, size=size).mean() >= min_mask_fraction:
            candidates.append((path, mask_path))
    chosen_defects = evenly_spaced(candidates, n_defect)

    category = out / "bsdata" / "ball_screw"
    if category.exists():
        shutil.rmtree(category)
    sizes = set()

    def save_image(src: Path, dst_dir: Path) -> tuple[int, int]:
        img = load_image(src)
        height = int(round(img.height * width / img.width))
        dst_dir.mkdir(parents=True, exist_ok=True)
        img.resize((width, height), Image.LANCZOS).save(
            dst_dir / f"{src.stem}.jpg", format="JPEG", quality=quality, optimize=True)
        sizes.add((width, height))
        return width, height

    for src in evenly_spaced(train, n_train):
        save_image(src, category / "train" / "good")
    for src in evenly_spaced(good, n_good):
        save_image(src, category / "test" / "good")
    for src, mask_path in chosen_defects:
        new_size = save_image(src, category / "test" / defect)
        mask = Image.open(mask_path).convert("L").point(lambda v: 255 if v > 0 else 0)
        small = mask.resize(new_size, Image.NEAREST)
        if not np.asarray(small).any():
            raise DataLayoutError(f"mask {mask_path} becomes empty at {new_size}; raise --min-mask-fraction")
        (category / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
        small.save(category / "ground_truth" / defect / f"{src.stem}_mask.png", format="PNG", optimize=True)

    (w, h), = sizes
    fields = dict(n_train=n_train, n_good=n_good, n_defect=n_defect, width=w, height=h, quality=quality,
                  min_frac=f"{100 * min_mask_fraction:g}")
    (out / "LICENSE.md").write_text(LICENSE_TEXT.format(**fields), encoding="utf-8")
    (out / "README.md").write_text(README_TEXT.format(**fields), encoding="utf-8")
    return category


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="BSData ball_screw folder in MVTec layout")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--width", type=int, default=564)
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--min-mask-fraction", type=float, default=0.002)
    args = parser.parse_args(argv)
    category = build(args.source, args.out, width=args.width, quality=args.quality,
                     min_mask_fraction=args.min_mask_fraction)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {category} ({total / 1e6:.2f} MB in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
