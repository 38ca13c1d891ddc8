"""Datasets and robust image decoding."""

from reproai.data.datasets import (
    DATASETS,
    ImageSet,
    Source,
    duplicate_files,
    list_source,
    load_images,
    register_dataset,
)
from reproai.data.images import decode_files, decode_image, to_rgb

__all__ = [
    "DATASETS",
    "ImageSet",
    "Source",
    "duplicate_files",
    "list_source",
    "load_images",
    "register_dataset",
    "decode_files",
    "decode_image",
    "to_rgb",
]
