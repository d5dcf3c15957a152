"""The one place that turns a data source and a model's preprocessing spec into the fixed train / held-out
split, ready to feed: export (calibration + verification), verify, bench and diagnose all call it.

Example:
    >>> from export.data.preprocess import make_spec
    >>> spec = make_spec((32, 32))
    >>> train, held_out = split_for_spec("digits", spec)
    >>> prepare(first(held_out, 4), spec).shape
    (4, 32, 32, 3)
"""
import numpy as np

from export.data.preprocess import center_crop, normalize, scale_size, to_pixels
from export.data.sources import LabeledImages, load, resize, split

NORMALIZE_CHUNK = 128  # images normalized at once by `prepare`
NATIVE_SIZES = {"digits": (8, 8)}  # sources loaded small at their own size; `prepare` resizes only what is used


def native_load_size(source, spec):
    """The size to load `source` at so that only the images used get resized to the model's (`prepare`): its
    native size for NATIVE_SIZES sources without a crop (the same single resize either way), else None.

    Example: native_load_size("digits", make_spec((224, 224))) -> (8, 8): the 1,797 digits at 224 x 224 would
    hold 1.1 GB of float pixels; an export uses the 300 calibration and 360 held-out images of them.
    """
    return None if spec.get("crop_pct") or not isinstance(source, str) else NATIVE_SIZES.get(source)


def split_for_spec(source, spec, class_names=None, load_size=None):
    """(train, held_out) of `source` at the spec's channels, loaded at `load_size` (default: the spec's size).

    A spec with `crop_pct` loads at its scale size and center-crops (timm's evaluation transform; the loaders
    resize bilinearly with antialiasing, whatever `interpolation` the spec records for deployment).
    `class_names`: the model's labels, so class folders map to the model's indices (see `sources.load`).
    """
    size = tuple(load_size or spec["input_size"])
    if spec.get("crop_pct"):
        data = load(source, scale_size({**spec, "input_size": size}), spec["channels"], class_names=class_names)
        x = np.ascontiguousarray(center_crop(data.x, size))
        return split(LabeledImages(x, data.y, data.class_names, data.source))
    return split(load(source, size, spec["channels"], class_names=class_names))


def first(images, samples=None):
    """The first `samples` images (all when None): the held-out part is already in a fixed order."""
    return images if not samples else images.take(np.arange(min(samples, len(images.x))))


def resized(images, spec):
    """`images` (raw [0, 255] float) at the spec's size (no-op when already there): the one resize of `prepare`
    and `pixels`."""
    return resize(images.x, tuple(spec["input_size"]))


def prepare(images, spec):
    """Model input for `images`: resized to the spec's size (no-op when already there), normalized, float32.

    Normalized chunk by chunk into the resized copy: one array of the output's size, not the five a whole-array
    `normalize` + cast makes (300 ResNet-50 inputs: 180 MB instead of ~900 MB at once).
    """
    x = resized(images, spec)  # a new float32 array
    for start in range(0, len(x), NORMALIZE_CHUNK):
        x[start:start + NORMALIZE_CHUNK] = normalize(x[start:start + NORMALIZE_CHUNK], spec)
    return x


def pixels(images, spec):
    """`prepare` without the normalize step: uint8 NHWC pixels at the spec's size, as `--raw-input` artifacts
    take them (`export.raw_input`)."""
    return to_pixels(resized(images, spec))
