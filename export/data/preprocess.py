"""The preprocessing spec stored with every model, and the one function that applies it.

A spec turns raw images (float32 pixels in [0, 255], NHWC, already at `input_size`) into model inputs:
``x * scale + offset``, then ``(x - mean) / std`` per channel. Optional `crop_pct` (timm's convention): images
are first resized to `scale_size` = input_size / crop_pct, then center-cropped (`interpolation` is recorded
for deployment; reszoo's loaders resize bilinearly with antialiasing). Training, calibration, verification and the
manifest all read the same dict, so nobody re-implements preprocessing by hand.

Example:
    >>> import numpy as np
    >>> spec = make_spec((32, 32), scale=1 / 255)
    >>> float(normalize(np.full((1, 32, 32, 3), 255.0, "float32"), spec).max())
    1.0
"""
import numpy as np

SPEC_KEYS = ("input_size", "channels", "interpolation", "scale", "offset", "mean", "std")
# ImageNet channel statistics of [0, 1] pixels (torchvision's Normalize, keras.applications' "torch" mode)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")  # tf.image.resize methods a spec may name


def make_spec(input_size, channels=3, scale=1 / 255, offset=0.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
              interpolation="bilinear", crop_pct=None):
    """Build a preprocessing spec dict (JSON-serializable); `crop_pct` only appears when given.

    Example:
        >>> make_spec((224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)["input_size"]
        [224, 224]
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation={interpolation!r}; allowed: {', '.join(INTERPOLATIONS)}")
    if crop_pct is not None and not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct={crop_pct!r} must be in (0, 1]")
    spec = {
        "input_size": [int(input_size[0]), int(input_size[1])],
        "channels": int(channels),
        "interpolation": interpolation,
        "scale": float(scale),
        "offset": float(offset),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }
    return spec if crop_pct is None else {**spec, "crop_pct": float(crop_pct)}


def scale_size(spec):
    """The size images are resized to before the center crop: input_size / crop_pct (floor, as timm), or
    input_size when the spec has no crop.

    Example:
        >>> scale_size(make_spec((224, 224), crop_pct=0.875))
        (256, 256)
    """
    crop_pct = spec.get("crop_pct") or 1.0
    return tuple(int(side / crop_pct + 1e-6) for side in spec["input_size"])


def center_crop(images, size):
    """The central `size` (height, width) window of NHWC `images` (no-op at that size)."""
    top = (images.shape[1] - size[0]) // 2
    left = (images.shape[2] - size[1]) // 2
    return images[:, top:top + size[0], left:left + size[1]]


def check_spec(spec):
    """Raise ValueError naming the first missing key of a preprocessing spec."""
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        raise ValueError(f"preprocessing spec lacks {', '.join(missing)}; expected keys: {', '.join(SPEC_KEYS)}")
    return spec


def normalize(images, spec):
    """Apply scale/offset/mean/std of `spec` to raw [0, 255] images (numpy or tf tensors, NHWC).

    Works inside tf.data maps too, since it only uses broadcasting arithmetic.
    """
    mean = np.asarray(spec["mean"], dtype="float32")
    std = np.asarray(spec["std"], dtype="float32")
    x = images * np.float32(spec["scale"]) + np.float32(spec["offset"])
    return (x - mean) / std


def affine(spec):
    """(gain, bias), float32 per channel, with ``normalize(x, spec) == x * gain + bias`` up to float rounding: the
    spec folded into one multiply-add (what `--raw-input` bakes into a graph, `export.raw_input`).

    Example:
        >>> spec = make_spec((4, 4), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
        >>> gain, bias = affine(spec)
        >>> x = np.arange(3 * 255, dtype="float32").reshape(1, 15, 17, 3) % 256
        >>> bool(np.allclose(x * gain + bias, normalize(x, spec), atol=1e-5)), bias.tolist()
        (True, [-2.0, -1.0, -0.5])
    """
    std = np.asarray(spec["std"], dtype="float64")
    gain = spec["scale"] / std
    bias = (spec["offset"] - np.asarray(spec["mean"], dtype="float64")) / std
    return gain.astype("float32"), bias.astype("float32")


def to_pixels(images):
    """Raw [0, 255] float images as uint8 pixels (rounded, clipped): what a camera pipeline delivers, and what
    `--raw-input` artifacts take (`normalize` is baked into their graph).

    Example:
        >>> to_pixels(np.array([[-3.0, 0.4, 127.5, 300.0]])).tolist()
        [[0, 0, 128, 255]]
    """
    return np.clip(np.round(np.asarray(images, dtype="float32")), 0, 255).astype("uint8")


def default_spec_for_input(input_shape):
    """The spec reszoo uses when a model carries none: resize to its input, scale to [0, 1]."""
    height, width, channels = input_shape
    return make_spec((height or 224, width or 224), channels=channels or 3, mean=(0.0,) * (channels or 3),
                     std=(1.0,) * (channels or 3))
