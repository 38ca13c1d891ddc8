"""Data: the built-in kinds and one's own datasets, robust image decoding, the decoded-image cache."""

from reproai.data._custom import image_array, source_from_dataset, source_from_factory
from reproai.data._images import decode_files, decode_image, to_rgb
from reproai.data._loading import duplicate_files, list_source, load_images
from reproai.data._source import ImageSet, Source

__all__ = [
    "ImageSet",
    "Source",
    "decode_files",
    "decode_image",
    "duplicate_files",
    "image_array",
    "list_source",
    "load_images",
    "source_from_dataset",
    "source_from_factory",
    "to_rgb",
]
