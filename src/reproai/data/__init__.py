"""Data: the built-in kinds and one's own datasets, robust image decoding (DICOM included, with the
intensity policy for more than 8 bits), the decoded-image cache."""

from reproai.data._cache import cached_decode
from reproai.data._custom import image_array, source_from_dataset, source_from_factory
from reproai.data._dicom import is_dicom, read_dicom
from reproai.data._images import decode_files, decode_image, to_rgb
from reproai.data._loading import duplicate_files, list_source, load_images
from reproai.data._source import ImageSet, Source

__all__ = [
    "ImageSet",
    "Source",
    "cached_decode",
    "decode_files",
    "decode_image",
    "duplicate_files",
    "image_array",
    "is_dicom",
    "list_source",
    "load_images",
    "read_dicom",
    "source_from_dataset",
    "source_from_factory",
    "to_rgb",
]
