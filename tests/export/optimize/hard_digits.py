"""A deterministic image task harder than sklearn digits, for optimization tests (no network, fixed seed).

Each 8x8 digit is drawn into a 32x32 RGB canvas at a random scale, rotation and position, in a random colour
over a random background gradient, with a fainter, differently transformed fragment of another digit as
clutter, Gaussian noise and a random contrast. A tiny CIFAR ResNet trained for a few epochs reaches about
90 % held-out accuracy on it (not the 98-99 % of plain digits), so optimizations that damage a model show.

Example:
    >>> x, y = make(copies=1)
    >>> x.shape, x.dtype, y.shape
    ((1797, 32, 32, 3), dtype('uint8'), (1797,))
    >>> path = write_npz("/tmp/hard_digits.npz")  # doctest: +SKIP  (what --data accepts)
"""
import os

import numpy as np

SIZE = 32
SEED = 0
SCALE = (2.0, 3.0)  # canvas pixels per digit pixel: a 16-24 px digit
MAX_ROTATION_DEG = 15.0
CLUTTER_INTENSITY = (0.15, 0.4)  # of the digit's own intensity
NOISE_STD = (0.02, 0.08)  # of the full [0, 1] range
CONTRAST = (0.6, 1.0)


def _affine(rng, scale_range, shift_range):
    """(matrix, offset) mapping canvas (row, col) to 8x8 digit coordinates: random scale, rotation, shift."""
    scale = rng.uniform(*scale_range)
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation / scale
    centre = SIZE / 2 + rng.uniform(-shift_range, shift_range, size=2)
    offset = np.array([3.5, 3.5]) - matrix @ centre
    return matrix, offset


def _draw(image8, rng, scale_range=SCALE, shift_range=4.0):
    from scipy.ndimage import affine_transform

    matrix, offset = _affine(rng, scale_range, shift_range)
    return affine_transform(image8, matrix, offset, output_shape=(SIZE, SIZE), order=1, cval=0.0)


def _background(rng):
    """A random colour gradient (SIZE, SIZE, 3) in [0, 0.5]."""
    ramp = np.linspace(0.0, 1.0, SIZE)
    direction = rng.uniform(-1, 1, size=2)
    field = direction[0] * ramp[:, None] + direction[1] * ramp[None, :]
    field = (field - field.min()) / (np.ptp(field) + 1e-6)
    low, high = rng.uniform(0, 0.5, size=3), rng.uniform(0, 0.5, size=3)
    return low + field[..., None] * (high - low)


def render(image8, clutter8, rng):
    """One 32x32x3 float image in [0, 1] of the 8x8 `image8` (values 0..1) with `clutter8` as clutter."""
    digit = _draw(image8, rng)
    clutter = _draw(clutter8, rng, scale_range=(1.2, 2.2), shift_range=12.0) * rng.uniform(*CLUTTER_INTENSITY)
    colour, clutter_colour = rng.uniform(0.5, 1.0, size=3), rng.uniform(0.3, 1.0, size=3)
    sign = rng.choice([-1.0, 1.0])  # bright digits on dark and dark digits on bright backgrounds
    image = _background(rng) + sign * (digit[..., None] * colour + clutter[..., None] * clutter_colour) * 0.6
    image = 0.5 + (image - 0.5) * rng.uniform(*CONTRAST)
    image = image + rng.normal(0.0, rng.uniform(*NOISE_STD), size=image.shape)
    return np.clip(image + (0.4 if sign < 0 else 0.0), 0.0, 1.0)


def make(copies=2, seed=SEED):
    """(x uint8 (copies*1797, 32, 32, 3), y int64): every sklearn digit rendered `copies` times."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target.astype("int64")
    rng = np.random.default_rng(seed)
    x, y = [], []
    for _ in range(copies):
        clutter_order = rng.permutation(len(images))
        for image8, label, other in zip(images, labels, clutter_order):
            x.append(render(image8, images[other], rng))
            y.append(label)
    return np.round(np.stack(x) * 255).astype("uint8"), np.asarray(y)


def write_npz(path, copies=2, seed=SEED):
    """Write the task as an .npz with x (uint8 pixels), y and class_names (what `--data` accepts); atomic."""
    x, y = make(copies, seed)
    temp = f"{path}.tmp.npz"
    np.savez_compressed(temp, x=x, y=y, class_names=np.array([str(i) for i in range(10)]))
    os.replace(temp, path)
    return path
