"""Tests of lake_interp.images: conversions to RGB and clear errors for bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lake_interp.errors import ImageReadError, LakeError
from lake_interp.images import load_image, load_mask


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_rgb_roundtrip(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = _save(Image.fromarray(arr), tmp_path / "rgb.png")
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (30, 20)
    np.testing.assert_array_equal(np.asarray(img), arr)


def test_grey_converts_to_rgb(tmp_path):
    grey = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    out = np.asarray(load_image(_save(Image.fromarray(grey, "L"), tmp_path / "g.png")))
    assert out.shape == (16, 16, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_16bit_grey_is_scaled_to_8bit(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 257 * 7]] * 12, dtype=np.uint16).repeat(3, axis=1)  # [12, 12]
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    out = np.asarray(load_image(path))
    assert out.dtype == np.uint8 and out.shape == (12, 12, 3)
    np.testing.assert_array_equal(out[0, ::3, 0], [0, 100, 255, 7])


def test_32bit_int_image_with_small_values_kept(tmp_path):
    values = np.full((10, 10), 200, dtype=np.int32)
    path = _save(Image.fromarray(values, mode="I"), tmp_path / "int.tif")
    assert np.asarray(load_image(path))[0, 0, 0] == 200


def test_rgba_composited_on_black(tmp_path):
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :5, 3] = 255  # left half opaque, right half transparent
    out = np.asarray(load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png")))
    np.testing.assert_array_equal(out[0, 0], (200, 100, 50))
    np.testing.assert_array_equal(out[0, 9], (0, 0, 0))


def test_la_and_palette_convert(tmp_path):
    la = Image.fromarray(np.stack([np.full((9, 9), 120, np.uint8), np.full((9, 9), 255, np.uint8)], -1), "LA")
    assert np.asarray(load_image(_save(la, tmp_path / "la.png")))[0, 0].tolist() == [120, 120, 120]
    pal = Image.new("P", (9, 9), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert np.asarray(load_image(_save(pal, tmp_path / "p.png")))[4, 4].tolist() == [10, 200, 30]


def test_palette_with_transparency(tmp_path):
    pal = Image.new("P", (9, 9), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    path = _save(pal, tmp_path / "pt.png", transparency=1)
    assert np.asarray(load_image(path))[0, 0].tolist() == [0, 0, 0]


def test_cmyk_jpeg_converts(tmp_path):
    path = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "c.jpg", quality=95)
    out = np.asarray(load_image(path)).astype(int)
    assert out.shape == (16, 16, 3)
    assert out[8, 8, 0] > 200 and out[8, 8, 1] < 60 and out[8, 8, 2] < 60  # red


def _assert_error_names_file(path, **kw):
    with pytest.raises(ImageReadError) as info:
        load_image(path, **kw)
    assert path.name in str(info.value)
    assert isinstance(info.value, LakeError)
    return str(info.value)


def test_missing_file(tmp_path):
    assert "not found" in _assert_error_names_file(tmp_path / "nope.png")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "empty" in _assert_error_names_file(path)


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 10)
    _assert_error_names_file(path)


def test_corrupt_and_truncated_files(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    data = buffer.getvalue()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    _assert_error_names_file(truncated)
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    cut_jpeg = tmp_path / "cut.jpg"
    cut_jpeg.write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    _assert_error_names_file(cut_jpeg)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(data[:16] + bytes(np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8)))
    _assert_error_names_file(garbage)


def test_directory_is_not_an_image(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    _assert_error_names_file(folder)


def test_too_large_and_too_small(tmp_path):
    big = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    assert "too large" in _assert_error_names_file(big, max_pixels=5000)
    load_image(big, max_pixels=10_000)  # at the limit: fine
    tiny = _save(Image.new("RGB", (4, 20)), tmp_path / "tiny.png")
    assert "too small" in _assert_error_names_file(tiny)


def test_load_mask_binarises_and_checks_size(tmp_path):
    arr = np.zeros((12, 20), dtype=np.uint8)
    arr[2:5, 3:9] = 255
    arr[10, 10] = 1  # any value > 0 is defect
    path = _save(Image.fromarray(arr), tmp_path / "m_mask.png")
    mask = load_mask(path, size=(20, 12))
    assert mask.dtype == np.bool_ and mask.shape == (12, 20)
    assert mask.sum() == 3 * 6 + 1
    with pytest.raises(ImageReadError) as info:
        load_mask(path, size=(24, 12))
    assert "m_mask.png" in str(info.value) and "size" in str(info.value)


def test_load_mask_colour_palette_and_alpha(tmp_path):
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[1, 1] = (0, 0, 9)
    assert load_mask(_save(Image.fromarray(rgb), tmp_path / "c.png")).sum() == 1
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., 3] = 255  # opaque black background: alpha must not count as defect
    rgba[5, 5, :3] = 255
    assert load_mask(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png")).sum() == 1
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    pal.putpixel((2, 3), 1)
    mask = load_mask(_save(pal, tmp_path / "p.png"))
    assert mask.sum() == 1 and mask[3, 2]


def test_load_mask_bad_files(tmp_path):
    empty = tmp_path / "000_mask.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="000_mask.png"):
        load_mask(empty)
    with pytest.raises(ImageReadError, match="missing_mask.png"):
        load_mask(tmp_path / "missing_mask.png")
