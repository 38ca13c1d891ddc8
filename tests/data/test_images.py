import io
import re

import numpy as np
import pytest
from PIL import Image

from reproai.data._images import decode_files, decode_image
from reproai.errors import DataError
from tests.conftest import PETS_IMAGES, needs_shared


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rgb(size=(30, 20)) -> Image.Image:
    a = np.zeros((size[1], size[0], 3), np.uint8)
    a[..., 0] = 200
    return Image.fromarray(a)


@pytest.mark.parametrize(
    "name, data",
    [
        ("jpeg", encode(rgb(), "JPEG")),
        ("grayscale jpeg", encode(rgb().convert("L"), "JPEG")),
        ("cmyk jpeg", encode(rgb().convert("CMYK"), "JPEG")),
        ("palette gif", encode(rgb().convert("P"), "GIF")),
        ("palette png with transparency", encode(rgb().convert("P"), "PNG", transparency=0)),
        ("rgba png", encode(rgb().convert("RGBA"), "PNG")),
        ("la png", encode(rgb().convert("LA"), "PNG")),
        ("16-bit png", encode(Image.fromarray((np.arange(600).reshape(20, 30) * 100).astype(np.uint16)), "PNG")),
        ("webp", encode(rgb(), "WEBP")),
    ],
)
def test_every_kind_of_image_decodes_to_rgb(name, data):
    out = decode_image(data, 16, name=name)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_colours_survive_cmyk_and_transparency_goes_white():
    red = decode_image(encode(rgb().convert("CMYK"), "JPEG"), 8)
    assert red[..., 0].mean() > 150 and red[..., 2].mean() < 80
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert decode_image(encode(clear, "PNG"), 8).min() == 255


def test_a_corrupt_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match=r"Cannot decode image .*broken\.jpg.*data\.on_error='skip'"):
        decode_files([bad], 8, progress=False)


def test_skip_policy_leaves_bad_files_out_with_a_warning(tmp_path):
    good = tmp_path / "good.png"
    rgb().save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"Skipping .*bad\.jpg"):
        images, digests, keep = decode_files([good, bad, good], 8, on_error="skip", progress=False)
    assert images.shape == (2, 8, 8, 3) and keep.tolist() == [True, False, True]
    assert digests[0] == digests[1]


@needs_shared()
def test_real_odd_files_in_the_pets_sample_decode():
    gif, png = PETS_IMAGES / "Abyssinian_34.jpg", PETS_IMAGES / "Abyssinian_5.jpg"
    assert gif.read_bytes()[:3] == b"GIF" and png.read_bytes()[:4] == b"\x89PNG"  # named .jpg, but are not
    images, _, keep = decode_files([gif, png], 64, progress=False)
    assert keep.all() and images.shape == (2, 64, 64, 3)
    assert images.std() > 10  # real picture content, not a blank


@needs_shared()
def test_mat_files_among_the_pets_images_are_not_images():
    mat = sorted(PETS_IMAGES.glob("*.mat"))[0]
    with pytest.raises(DataError, match=r"Cannot decode image .*" + re.escape(mat.name)):
        decode_files([mat], 8, progress=False)


def test_a_decompression_bomb_is_a_data_error_naming_the_file_and_can_be_skipped(tmp_path):
    """A 19000 x 19000 PNG is over Pillow's decompression-bomb limit (about 179 megapixels): Pillow raises
    DecompressionBombError, which must come out as reproai's DataError, and obey on_error='skip'."""
    bomb = tmp_path / "huge.png"
    Image.new("1", (19000, 19000)).save(bomb)  # 1 bit per pixel: 45 MB in memory, a few kB on disk
    ok = tmp_path / "ok.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(ok)
    with pytest.raises(DataError, match=rf"Cannot decode image {re.escape(str(bomb))}: DecompressionBombError"):
        decode_files([ok, bomb], 8, progress=False)
    with pytest.warns(
        UserWarning, match=r"Skipping 1 of 2 .*: Cannot decode image .*huge\.png: DecompressionBombError"
    ):
        images, _, keep = decode_files([ok, bomb], 8, on_error="skip", progress=False)
    assert keep.tolist() == [True, False] and images.shape == (1, 8, 8, 3)
