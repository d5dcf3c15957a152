"""Labeled image sources shared by training, calibration and verification.

Every source yields raw pixels: float32 in [0, 255], NHWC, resized to the model's input size. Sources (ONE
table, `SOURCES`: kind -> matches / load / cheap check): `digits` (scikit-learn's embedded 8x8 digits), a folder
with one sub-folder of images per class, an `.npz` with `x` (N,H,W[,C]) and optional `y`, TFRecord files of
(image, label) (`export.data.tfrecord`: `*.tfrecord` / `*.tfrec` or a glob), or in-memory `LabeledImages`.
`check_source` is the cheap check CLIs run before TensorFlow loads. `split` gives the fixed train / held-out
partition (stratified, seeded) that training, calibration (train part) and verification (held-out part) all
use, so the two never overlap.

Example:
    >>> data = load("digits", image_size=(32, 32))
    >>> data.x.shape, data.class_names[:3]
    ((1797, 32, 32, 3), ['0', '1', '2'])
    >>> train, held_out = split(data)
    >>> len(train.x) + len(held_out.x)
    1797

Every source passes through ONE validator, `validate` (see its docstring for the rules), so training, export,
verify, bench and diagnose refuse the same bad data with the same one-line `UserError` (exit 2) before any
converter or training step runs: non-finite pixels, labels that are not whole numbers in 0..K-1, a label count
that differs from the image count, and (for training) fewer than 2 classes. Class folders are strict too: an
empty class folder, or an entry with an image suffix that is not a regular file (a directory named `x.png`, a
broken symlink, a symlink loop) is an error naming the path, never skipped, so no image is silently lost.

When the consumer knows the model's label names (`load(..., class_names=labels)`: export, verify, bench),
named sources are matched by name: class folders (and an `.npz` with `class_names`) get the model's index of
their name, so a folder with a subset of the classes scores against the right outputs; a name the model does
not have is an error listing the allowed names. Sources without names (digits, `.npz` without `class_names`,
TFRecord) keep their integer labels, which must then lie in 0..len(class_names)-1.
"""
import dataclasses
import os

import numpy as np

from export.core.errors import UserError
from export.data import tfrecord

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

    @property
    def count(self):
        return len(self.x)

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


NAME_PREVIEW = 12  # class names listed in an error before "… (N more)"


def preview(names):
    """Names for an error message, shortened: preview(["a", "b"]) == "a, b"."""
    names = [str(n) for n in names]
    more = f", … ({len(names) - NAME_PREVIEW} more)" if len(names) > NAME_PREVIEW else ""
    return ", ".join(names[:NAME_PREVIEW]) + more


def _listdir(folder):
    """sorted(os.listdir(folder)), an unreadable folder as UserError: _listdir("/tmp") -> [...]."""
    try:
        return sorted(os.listdir(folder))
    except OSError as error:
        raise UserError(f"cannot list data folder {folder!r}: {error.strerror}") from None


# (test, what it is) for entries that look like images but cannot be read as files, first match wins.
NOT_A_FILE = (
    (os.path.isdir, "a directory"),
    (lambda p: os.path.islink(p) and not os.path.exists(p), "a broken symlink or a symlink loop"),
    (lambda p: not os.path.isfile(p), "not a regular file"),
)


def _check_image_entry(path):
    """UserError naming `path` when an image-suffixed entry is not a readable regular file.

    Example: a directory `cat/x.png` -> "data entry '.../cat/x.png' is a directory; allowed: ...".
    """
    for test, what in NOT_A_FILE:
        if test(path):
            raise UserError(f"data entry {path!r} is {what}; allowed: regular image files "
                            f"({', '.join(IMAGE_SUFFIXES)}) in each class folder")


def _class_folders(folder):
    """Sorted class sub-folder names of `folder`; an unresolvable symlink entry is a UserError."""
    names = []
    for name in _listdir(folder):
        path = os.path.join(folder, name)
        if os.path.islink(path) and not os.path.exists(path):
            raise UserError(f"data entry {path!r} is a broken symlink or a symlink loop; allowed: class "
                            "sub-folders of images")
        if os.path.isdir(path):
            names.append(name)
    return names


def _class_images(class_dir):
    """Image paths of one class folder; an empty class folder is a UserError naming it."""
    paths = [os.path.join(class_dir, n) for n in _listdir(class_dir) if n.lower().endswith(IMAGE_SUFFIXES)]
    for path in paths:
        _check_image_entry(path)
    if not paths:
        raise UserError(f"class folder {class_dir!r} holds no images; allowed: at least one "
                        f"{'/'.join(IMAGE_SUFFIXES)} file per class folder (remove the folder to drop the class)")
    return paths


def list_image_files(folder):
    """(paths, labels, class_names) for a folder with one sub-folder of images per class (sorted names).

    Strict, so nothing is lost silently: an empty class folder, or an image-named entry that is a directory,
    a broken symlink or a symlink loop, is a UserError naming the path (files without an image suffix are
    ignored). Example: list_image_files("pets") -> (["pets/cat/0.png", ...], array([0, ..., 1]), ["cat", "dog"]).
    """
    if not os.path.isdir(folder):
        raise UserError(f"data folder {folder!r} does not exist")
    class_names = _class_folders(folder)
    if not class_names:
        raise UserError(f"data folder {folder!r} has no images in class sub-folders (allowed: {', '.join(IMAGE_SUFFIXES)})")
    paths, labels = [], []
    for label, class_name in enumerate(class_names):
        found = _class_images(os.path.join(folder, class_name))
        paths += found
        labels += [label] * len(found)
    return paths, np.asarray(labels, dtype="int64"), class_names


IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")  # JPEG PNG GIF BMP


def check_image_header(path):
    """UserError unless `path` starts like an image file (a cheap check of files decoded later, lazily).

    Example: check_image_header("notes.png") -> UserError "'notes.png' is not a readable image (...)".
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise UserError(f"{path!r} is not a readable image ({error.strerror})") from None
    if not head.startswith(IMAGE_SIGNATURES):
        raise UserError(f"{path!r} is not a readable image (allowed: {', '.join(IMAGE_SUFFIXES)})")


def read_image(path, image_size, channels=3):
    """Decode one image file to float32 [0, 255] HWC at `image_size`; UserError for unreadable files."""
    import tensorflow as tf

    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    except tf.errors.OpError:
        raise UserError(f"{path!r} is not a readable image (allowed: {', '.join(IMAGE_SUFFIXES)})") from None
    return resize(image.numpy()[None].astype("float32"), image_size)[0]


def relabel_by_name(data, class_names):
    """`data` with labels re-indexed to `class_names` by name (a folder of a subset of classes keeps its meaning).

    Example: folders ["3", "7"] with class_names "0".."9" -> labels 3 and 7; a folder "cat" -> UserError
    listing the allowed names.
    """
    wanted = [str(n) for n in class_names]
    unknown = [n for n in data.class_names if str(n) not in wanted]
    if unknown:
        raise UserError(f"{data.source!r}: class(es) {preview(unknown)} not among the model's labels; "
                        f"allowed class names: {preview(wanted)}")
    index = np.asarray([wanted.index(str(n)) for n in data.class_names], dtype="int64")
    return LabeledImages(data.x, index[data.y], wanted, data.source)


def load_folder(folder, image_size, channels=3, class_names=None):
    """All images of a class-folder dataset, decoded and resized; labels by name when `class_names` is given."""
    paths, labels, names = list_image_files(folder)
    x = np.stack([read_image(p, image_size, channels) for p in paths])
    data = LabeledImages(x, labels, names, os.path.abspath(folder))
    return data if class_names is None else relabel_by_name(data, class_names)


def _npz_arrays(path):
    """{name: array} of an .npz (no pickles); UserError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"cannot read {path!r} as .npz: {error}") from None


def load_npz(path, image_size, channels=3, class_names=None):
    """An `.npz` with `x` (N,H,W[,C], pixels in [0, 255]) and optional integer `y` / `class_names`.

    Returned at the file's own size and channels (`load` converts after validating, so counts refer to the file).
    With both its own `class_names` and the consumer's, labels are matched by name (`relabel_by_name`).
    """
    arrays = _npz_arrays(path)
    if "x" not in arrays:
        raise UserError(f"{path!r} has no array 'x' (found: {', '.join(arrays) or 'nothing'})")
    x = arrays["x"]
    if x.dtype.kind not in "biuf" or x.ndim not in (3, 4) or len(x) == 0:
        raise UserError(f"{path!r}: x has shape {x.shape} and dtype {x.dtype}; expected numbers shaped "
                        "(N, H, W) or (N, H, W, C) with N > 0")
    names = [str(c) for c in arrays["class_names"]] if "class_names" in arrays else []
    data = validate(LabeledImages(x.astype("float32"), arrays.get("y"), names, os.path.abspath(path)))
    return relabel_by_name(data, class_names) if names and class_names is not None else data


def _check_pixels(data):
    """UserError when x holds NaN/inf, naming the source and how many values."""
    bad = int(np.size(data.x) - np.count_nonzero(np.isfinite(data.x)))
    if bad:
        images = int(np.count_nonzero(~np.isfinite(data.x).reshape(len(data.x), -1).all(axis=1)))
        raise UserError(f"{data.source!r}: x holds {bad} non-finite values (NaN or inf) in {images} of "
                        f"{len(data.x)} images; allowed: finite pixel values in [0, 255]")


def _whole_labels(y, data):
    """`y` as a 1-D int64 array; UserError for a wrong shape/count, non-numbers or non-integral values."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(data.x):
        raise UserError(f"{data.source!r}: y has shape {y.shape} but x has {len(data.x)} images; allowed: one "
                        f"integer label per image, shape ({len(data.x)},)")
    if y.dtype.kind not in "biuf":
        raise UserError(f"{data.source!r}: y has dtype {y.dtype}; allowed: integer labels")
    if y.dtype.kind == "f":
        bad = y[~(np.isfinite(y) & (y == np.round(y)))]
        if len(bad):
            raise UserError(f"{data.source!r}: label {bad[0]:g} is not a whole number ({len(bad)} of {len(y)} labels); "
                            "allowed: integer labels (whole-number floats such as 3.0 are accepted)")
    return y.astype("int64")


def _check_range(y, names, data):
    """UserError for labels outside 0..len(names)-1 (0..max when there are no names: only negatives fail)."""
    top = len(names) - 1 if names else max(int(y.max()), 0)
    bad = y[(y < 0) | (y > top)]
    if len(bad):
        allowed = (f"integers 0..{top} for the {len(names)} class names ({preview(names)})" if names
                   else "integers >= 0 (without class names the classes are 0..max(y))")
        raise UserError(f"{data.source!r}: label {int(bad[0])} is out of range ({len(bad)} of {len(y)} labels); "
                        f"allowed: {allowed}")


def validate(data, class_names=None, min_classes=1):
    """THE data validator: check `data` (LabeledImages) and return it with int64 labels and class names.

    Rules (each breach is a one-line UserError naming the source, the value and what is allowed):
      * x: every value finite (NaN/inf refused, with their count).
      * y (optional): one label per image, shape (N,) or (N, 1); integers, or floats that are whole numbers;
        in 0..K-1 with K = len(class_names) when the consumer gives the model's names, else K = the
        source's own class names, else K = max(y)+1 (then only negatives fail).
      * at least `min_classes` distinct labels present (training asks for 2).
    Example:
        >>> validate(LabeledImages(np.zeros((2, 4, 4, 3)), np.array([0.0, 1.0]), [], "m.npz")).class_names
        ['0', '1']
    """
    _check_pixels(data)
    if data.y is None:
        return data
    names = [str(n) for n in (class_names if class_names is not None else data.class_names)]
    y = _whole_labels(data.y, data)
    _check_range(y, names, data)
    names = names or [str(i) for i in range(int(y.max()) + 1)]
    check_class_count(data.source, [names[i] for i in np.unique(y)], min_classes)
    return LabeledImages(data.x, y, names, data.source)


def check_class_count(source, present, min_classes):
    """UserError naming the classes when fewer than `min_classes` are present (training needs 2)."""
    if len(present) < min_classes:
        raise UserError(f"{source!r}: labels hold {len(present)} class(es) ({preview(present)}); allowed: "
                        f"at least {min_classes} classes for training")


def _load_tfrecord(pattern, image_size, channels):
    """TFRecord files of (image, label) as LabeledImages; class names 0..max(y) come from `validate`."""
    x, y = tfrecord.read(pattern, tuple(image_size), channels)
    return LabeledImages(x, y, [], os.path.abspath(pattern))


def _check_npz(path):
    """UserError when the .npz file is missing (cheap, no read)."""
    if not os.path.isfile(path):
        raise UserError(f"data file {path!r} does not exist")


def _no_check(source):
    """Nothing to check cheaply (built-in or in-memory data)."""


@dataclasses.dataclass(frozen=True)
class SourceKind:
    """One kind of data source: `matches(source)`, `load(source, image_size, channels, class_names)` (unvalidated
    LabeledImages) and `check(source)` (cheap, no TensorFlow: UserError when it cannot be loaded)."""

    matches: object
    load: object
    check: object


# THE source table, first match wins. Every consumer (train, export, verify, bench, diagnose) loads through `load`.
SOURCES = {
    "memory": SourceKind(lambda s: isinstance(s, LabeledImages), lambda s, size, ch, names: s, _no_check),
    "digits": SourceKind(lambda s: s == "digits", lambda s, size, ch, names: load_digits(size, ch), _no_check),
    "tfrecord": SourceKind(tfrecord.matches, lambda s, size, ch, names: _load_tfrecord(s, size, ch), tfrecord.check),
    "npz": SourceKind(lambda s: isinstance(s, str) and s.endswith(".npz"), load_npz, _check_npz),
    "folder": SourceKind(lambda s: isinstance(s, str) and os.path.isdir(s), load_folder, list_image_files),
}
ALLOWED_SOURCES = ("'digits', a folder of class sub-folders, an .npz file, or TFRecord files "
                   f"({', '.join('*' + suffix for suffix in tfrecord.SUFFIXES)}, a path or glob)")


def _plain(source):
    """A path-like source as str, anything else unchanged: _plain(Path("d.npz")) == "d.npz"."""
    return os.fspath(source) if isinstance(source, os.PathLike) else source


def source_kind(source):
    """The SOURCES key of `source`; UserError listing the allowed sources when none matches.

    Example:
        >>> source_kind("digits"), source_kind("/data/train-*.tfrecord")
        ('digits', 'tfrecord')
    """
    source = _plain(source)
    kind = next((name for name, entry in SOURCES.items() if entry.matches(source)), None)
    if kind is None:
        raise UserError(f"data {source!r} not found; allowed: {ALLOWED_SOURCES}")
    return kind


def check_source(source):
    """Cheap check (no TensorFlow, no decoding) that `source` is a loadable kind; returns the kind.

    CLIs call it before TensorFlow loads: a missing .npz, an empty class folder or a glob matching no TFRecord
    file is a one-line UserError at once. Example: check_source("digits") -> "digits".
    """
    kind = source_kind(source)
    SOURCES[kind].check(_plain(source))
    return kind


def load(source, image_size, channels=3, class_names=None, min_classes=1):
    """Load `source` (any SOURCES kind: "digits", a class folder, an .npz, TFRecord files, or LabeledImages) at
    `image_size`, validated (`validate`), at `channels`.

    class_names: the model's label names when the consumer knows them (labels then index them; folders are
    matched by name). Raises UserError with the allowed values when the source is none of them or is unusable.
    Example: load("pets", (32, 32), class_names=["cat", "dog", "fox"]).y -> [0, 0, ..., 2] for folders cat/, fox/.
    """
    source = _plain(source)
    kind = SOURCES[check_source(source)]
    data = validate(kind.load(source, tuple(image_size), channels, class_names), class_names, min_classes)
    x = resize(to_channels(data.x, channels), image_size)
    return LabeledImages(x, data.y, data.class_names, data.source)


def split_indices(count, labels=None, held_out_fraction=HELD_OUT_FRACTION, seed=SPLIT_SEED):
    """(train indices, held-out indices) of `count` items, sorted, stratified by `labels` when every class has 2.

    Example:
        >>> [len(part) for part in split_indices(10)]
        [8, 2]
    """
    from sklearn.model_selection import train_test_split

    counts = np.unique(labels, return_counts=True)[1] if labels is not None else [0]
    stratify = labels if min(counts) >= 2 else None  # classes absent from y do not count
    train_idx, test_idx = train_test_split(np.arange(count), test_size=held_out_fraction, random_state=seed,
                                           stratify=stratify)
    return np.sort(train_idx), np.sort(test_idx)


def split(data, held_out_fraction=HELD_OUT_FRACTION, seed=SPLIT_SEED):
    """Fixed (train, held_out) partition, stratified by label when labels exist.

    Example:
        >>> train, test = split(load("digits", (8, 8)))
        >>> len(test.x)
        360
    """
    train_idx, test_idx = split_indices(len(data.x), data.y, held_out_fraction, seed)
    return data.take(train_idx), data.take(test_idx)
