"""Labeled image sources shared by training, calibration and verification.

Every source yields raw pixels: float32 in [0, 255], NHWC, resized to the model's input size. Sources:
`digits` (scikit-learn's embedded 8x8 digits), a folder with one sub-folder of images per class, or an
`.npz` with `x` (N,H,W[,C]) and optional `y`. `split` gives the fixed train / held-out partition (stratified,
seeded) that training, calibration (train part) and verification (held-out part) all use, so the two
never overlap.

Example:
    >>> data = load("digits", image_size=(32, 32))
    >>> data.x.shape, data.class_names[:3]
    ((1797, 32, 32, 3), ['0', '1', '2'])
    >>> train, held_out = split(data)
    >>> len(train.x) + len(held_out.x)
    1797
"""
import dataclasses
import os

import numpy as np

from export.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0


@dataclasses.dataclass
class LabeledImages:
    """Raw images `x` (float32, [0, 255], NHWC), integer labels `y` (or None) and class names."""

    x: np.ndarray
    y: np.ndarray | None
    class_names: list
    source: str

    def take(self, indices):
        """The subset at `indices` (same class names and source)."""
        y = None if self.y is None else self.y[indices]
        return LabeledImages(self.x[indices], y, self.class_names, self.source)


RESIZE_CHUNK = 128  # images per tf.image.resize call: bounds TF's float intermediates for large sizes


def resize(images, image_size, antialias=True):
    """Bilinear resize of NHWC float images to `image_size` (no-op when already that size), in chunks."""
    if tuple(images.shape[1:3]) == tuple(image_size):
        return images.astype("float32")
    import tensorflow as tf

    out = np.empty((len(images), *image_size, images.shape[-1]), dtype="float32")
    for start in range(0, len(images), RESIZE_CHUNK):
        chunk = images[start:start + RESIZE_CHUNK]
        out[start:start + len(chunk)] = tf.image.resize(chunk, image_size, method="bilinear", antialias=antialias)
    return out


def to_channels(images, channels):
    """Make NHW or NHWC images have `channels` channels (gray -> RGB by repetition, RGB -> gray by mean)."""
    if images.ndim == 3:
        images = images[..., None]
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1:
        return np.repeat(images, channels, axis=-1)
    if channels == 1:
        return images.mean(axis=-1, keepdims=True)
    raise UserError(f"images have {have} channels; the model needs {channels}")


def load_digits(image_size, channels=3):
    """scikit-learn's 1,797 embedded 8x8 digits (values 0..16), scaled to [0, 255] and resized."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = to_channels(digits.images.astype("float32") * (255.0 / 16.0), channels)
    return LabeledImages(resize(x, image_size), digits.target.astype("int64"), [str(d) for d in range(10)], "digits")


def list_image_files(folder):
    """(paths, labels, class_names) for a folder with one sub-folder of images per class."""
    if not os.path.isdir(folder):
        raise UserError(f"data folder {folder!r} does not exist")
    class_names = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    paths, labels = [], []
    for label, class_name in enumerate(class_names):
        class_dir = os.path.join(folder, class_name)
        for file_name in sorted(os.listdir(class_dir)):
            if file_name.lower().endswith(IMAGE_SUFFIXES):
                paths.append(os.path.join(class_dir, file_name))
                labels.append(label)
    if not paths:
        raise UserError(f"data folder {folder!r} has no images in class sub-folders (allowed: {', '.join(IMAGE_SUFFIXES)})")
    return paths, np.asarray(labels, dtype="int64"), class_names


def read_image(path, image_size, channels=3):
    """Decode one image file to float32 [0, 255] HWC at `image_size`; UserError for unreadable files."""
    import tensorflow as tf

    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        raise UserError(f"{path!r} is not a readable image (allowed: {', '.join(IMAGE_SUFFIXES)})") from None
    return resize(image.numpy()[None].astype("float32"), image_size)[0]


def load_folder(folder, image_size, channels=3):
    """All images of a class-folder dataset, decoded and resized."""
    paths, labels, class_names = list_image_files(folder)
    x = np.stack([read_image(p, image_size, channels) for p in paths])
    return LabeledImages(x, labels, class_names, os.path.abspath(folder))


def load_npz(path, image_size, channels=3):
    """An `.npz` with `x` (N,H,W[,C], pixels in [0, 255]) and optional integer `y` / `class_names`."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path!r} as .npz: {error}") from None
    if "x" not in arrays:
        raise UserError(f"{path!r} has no array 'x' (found: {', '.join(arrays) or 'nothing'})")
    x = arrays["x"].astype("float32")
    if x.ndim not in (3, 4) or len(x) == 0:
        raise UserError(f"{path!r}: x has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with N > 0")
    y = arrays["y"].astype("int64") if "y" in arrays else None
    n_classes = int(y.max()) + 1 if y is not None else 0
    names = [str(c) for c in arrays["class_names"]] if "class_names" in arrays else [str(i) for i in range(n_classes)]
    return LabeledImages(resize(to_channels(x, channels), image_size), y, names, os.path.abspath(path))


def load(source, image_size, channels=3):
    """Load `source` ("digits", a class-folder path, or an .npz path) at `image_size`.

    Raises UserError with the allowed values when the source is none of them.
    """
    if source == "digits":
        return load_digits(image_size, channels)
    if str(source).endswith(".npz"):
        if not os.path.isfile(source):
            raise UserError(f"data file {source!r} does not exist")
        return load_npz(source, image_size, channels)
    if os.path.isdir(source):
        return load_folder(source, image_size, channels)
    raise UserError(f"data {source!r} not found; allowed: 'digits', a folder of class sub-folders, or an .npz file")


def split(data, held_out_fraction=HELD_OUT_FRACTION, seed=SPLIT_SEED):
    """Fixed (train, held_out) partition, stratified by label when labels exist.

    Example:
        >>> train, test = split(load("digits", (8, 8)))
        >>> len(test.x)
        360
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(data.x))
    stratify = data.y if data.y is not None and np.bincount(data.y).min() >= 2 else None
    train_idx, test_idx = train_test_split(indices, test_size=held_out_fraction, random_state=seed, stratify=stratify)
    return data.take(np.sort(train_idx)), data.take(np.sort(test_idx))
