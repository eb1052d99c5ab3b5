"""Data readers, few-shot sampling, synthetic categories and the shipped demo category.

Example:
    >>> from lake_interp.data import load_demo_category, sample_support
    >>> cat = load_demo_category()
    >>> len(sample_support(cat, k=2, seed=0))
    2
"""

from lake_interp.data.demo import demo_category_path, demo_license_path, load_demo_category
from lake_interp.data.fewshot import sample_support, support_names
from lake_interp.data.layout import (
    DATA_DIR_ENV,
    IMAGE_EXTENSIONS,
    Category,
    CategoryRef,
    MissingMaskWarning,
    Sample,
    find_categories,
    list_images,
    load_category,
    load_folder_category,
    load_mvtec_category,
    load_sample_mask,
    load_visa_category,
    resolve_data_root,
)
from lake_interp.data.synthetic import DEFECT_TYPES, TEXTURES, make_synthetic_category

__all__ = [
    "DATA_DIR_ENV",
    "DEFECT_TYPES",
    "IMAGE_EXTENSIONS",
    "TEXTURES",
    "Category",
    "CategoryRef",
    "MissingMaskWarning",
    "Sample",
    "demo_category_path",
    "demo_license_path",
    "find_categories",
    "list_images",
    "load_category",
    "load_demo_category",
    "load_folder_category",
    "load_mvtec_category",
    "load_sample_mask",
    "load_visa_category",
    "make_synthetic_category",
    "resolve_data_root",
    "sample_support",
    "support_names",
]
