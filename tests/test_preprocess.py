"""The resize and orientation contract the web client must reproduce, checked independently."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import jpeg_bytes
from PIL import Image, ImageOps

from training.preprocess import (
    apply_exif_orientation,
    decode_image,
    fit_to_model_input,
    load_for_model,
)


def reference_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize written out with numpy, edges clamped."""
    h, w = image.shape[:2]

    def axis(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        centres = (np.arange(size) + 0.5) * n_in / size - 0.5
        centres = np.clip(centres, 0, n_in - 1)
        low = np.floor(centres).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, centres - low

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    top = image[y0][:, x0] * (1 - fx)[None, :, None] + image[y0][:, x1] * fx[None, :, None]
    bottom = image[y1][:, x0] * (1 - fx)[None, :, None] + image[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def test_square_image_is_bilinear_resized_to_224():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (150, 150, 3)).astype(np.float32)
    out = fit_to_model_input(tf.constant(image)).numpy()
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference_bilinear(image, 224), atol=1e-2)


def test_wide_image_is_centre_cropped_not_squashed():
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 100:200] = 255  # a white centre square between black side bands
    out = fit_to_model_input(tf.constant(image)).numpy()
    assert out.min() == 255.0, "only the centre square may survive the crop"


def test_large_image_is_box_downsampled_before_bilinear():
    # A one-pixel checkerboard: averaging gives flat grey; plain bilinear would alias.
    board = (np.indices((900, 900)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(board[..., None], 3, axis=2)
    out = fit_to_model_input(tf.constant(image)).numpy()
    assert out.shape == (224, 224, 3)
    assert np.abs(out - 127.5).max() < 32  # k = 4 here: blocks average to ~127.5


def test_box_downsample_matches_block_means():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (448, 448, 3)).astype(np.float32)
    out = fit_to_model_input(tf.constant(image)).numpy()
    blocks = image.reshape(224, 2, 224, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, blocks, atol=1e-3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (4, 6, 3)).astype(np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    got = apply_exif_orientation(tf.constant(pixels), tf.constant(orientation)).numpy()
    np.testing.assert_array_equal(got, expected)


def test_phone_photo_with_rotation_tag_is_turned_upright(tmp_path):
    # Stored landscape with "rotate 90 clockwise" (6): upright it is portrait, red on top.
    stored = np.zeros((200, 300, 3), np.uint8)
    stored[:, :150] = (255, 0, 0)  # left half red -> top after turning clockwise
    stored[:, 150:] = (0, 0, 255)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    path.write_bytes(jpeg_bytes(image, exif=exif.tobytes(), quality=95))
    out = load_for_model(tf.constant(str(path)), tf.constant(6)).numpy()
    # Upright: 200 wide x 300 tall, centre-cropped to 200x200 spanning red top / blue bottom.
    assert out[10, 112, 0] > 200 and out[10, 112, 2] < 60
    assert out[214, 112, 2] > 200 and out[214, 112, 0] < 60


def test_the_web_apps_preprocessing_gives_the_same_model_input(tmp_path):
    """webclient/src/preprocess.js, run in Node, against this module: every orientation, sizes
    that crop, that box-downsample (k = 1, 2, 13, 27) and that are odd, within float rounding."""
    import json
    import subprocess

    from conversion.verify import PROJECT_ROOT, node_executable

    rng = np.random.default_rng(7)
    cases = [(150, 150, 1), (301, 449, 1), (480, 640, 6), (3024, 4032, 1), (4032, 3024, 8),
             (6048, 8064, 3)] + [(97, 533, o) for o in range(2, 9)]  # fmt: skip
    job, pixels = [], []
    for i, (height, width, orientation) in enumerate(cases):
        # Smooth shapes with noise on top, like a photo: a block mean of noise alone is flat.
        coarse = rng.integers(0, 256, (height // 40 + 2, width // 40 + 2, 3)).astype(np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
        image = np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
        (tmp_path / f"{i}.rgb").write_bytes(image.tobytes())
        job.append({"rgb": str(tmp_path / f"{i}.rgb"), "width": width, "height": height,
                    "orientation": orientation})  # fmt: skip
        pixels.append(image)
    (tmp_path / "job.json").write_text(json.dumps(job))
    done = subprocess.run([node_executable(), "tests/preprocess_twin.mjs", str(tmp_path / "job.json")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for image, case in zip(pixels, job, strict=True):
        turned = apply_exif_orientation(tf.constant(image), case["orientation"])
        python = fit_to_model_input(turned).numpy()
        javascript = np.fromfile(case["rgb"] + ".f32", np.float32).reshape(224, 224, 3)
        np.testing.assert_allclose(javascript, python, atol=2e-3, err_msg=str(case))


def test_transparency_is_flattened_onto_white_in_every_format(tmp_path):
    """A cut-out photo's transparent part is white, not the colour stored under it (which
    TensorFlow's PNG decoder kept) nor black (what a browser canvas gave): the web app and the
    server put it on white too."""
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red stored everywhere, also under the transparent pixels
    rgba[:2, :, 3] = 255  # top half opaque
    rgba[2, :, 3] = 128  # half transparent
    png, gif = tmp_path / "cut-out.png", tmp_path / "cut-out.gif"
    Image.fromarray(rgba, "RGBA").save(png)
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    palette.putpixel((0, 3), 0)
    palette.save(gif, transparency=0)

    decoded = decode_image(tf.constant(png.read_bytes())).numpy()
    assert decoded[0, 0].tolist() == [200, 0, 0]
    assert np.abs(decoded[2, 0].astype(int) - [228, 127, 127]).max() <= 1
    assert decoded[3, 0].tolist() == [255, 255, 255]
    decoded = decode_image(tf.constant(gif.read_bytes())).numpy()
    assert decoded[0, 0].tolist() == [200, 0, 0] and decoded[3, 0].tolist() == [255, 255, 255]
