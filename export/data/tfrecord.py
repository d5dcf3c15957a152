"""TFRecord files of (image, label) examples: one of the `export.data.sources` kinds, and how to write them.

A source is a path or glob ending in `.tfrecord` / `.tfrec` (`"/data/train-*.tfrecord"`). Two example layouts
(`LAYOUTS`, told apart by the first record): reszoo's `image` (encoded PNG/JPEG bytes) + `label` (int64), and
the ImageNet / TF Model Garden one, `image/encoded` + `image/class/label` (+ optional `image/class/text`).
`check` is cheap (a glob, no TensorFlow); `count_records` walks record headers without reading images; `read`
decodes every example into memory at the asked size; `parse_fn` gives (bytes, label) for streaming pipelines;
`write_tfrecord` writes reszoo's layout from labeled images.

Example:
    >>> import tempfile
    >>> from export.data.sources import load
    >>> folder = tempfile.mkdtemp()
    >>> write_tfrecord(load("digits", (8, 8)).take(range(100)), os.path.join(folder, "digits.tfrecord"))
    >>> x, y = read(os.path.join(folder, "*.tfrecord"), (8, 8))
    >>> x.shape, y[:3]
    ((100, 8, 8, 3), array([0, 1, 2]))
"""
import dataclasses
import glob
import os
import struct

import numpy as np

from export.core.errors import UserError

SUFFIXES = (".tfrecord", ".tfrec")
DECODE_BATCH = 1024  # examples per decoded batch
RECORD_HEADER = struct.Struct("<QI")  # length, masked CRC of the length; then data and its masked CRC (4 bytes)


@dataclasses.dataclass(frozen=True)
class ExampleKeys:
    """The tf.train.Example feature names of one layout."""

    image: str
    label: str
    text: str | None = None


LAYOUTS = {
    "reszoo": ExampleKeys("image", "label"),
    "imagenet": ExampleKeys("image/encoded", "image/class/label", "image/class/text"),  # Model Garden / ImageNet
}


def matches(source):
    """True when `source` names TFRecord files: matches("/d/*.tfrecord") -> True, matches("d.npz") -> False."""
    return isinstance(source, str) and source.lower().endswith(SUFFIXES)


def check(pattern):
    """The sorted files `pattern` matches (no TensorFlow); UserError when none do.

    Example: check("/data/none-*.tfrecord") -> UserError "no TFRecord files match '/data/none-*.tfrecord'".
    """
    files = sorted(glob.glob(pattern))
    if not files:
        raise UserError(f"no TFRecord files match {pattern!r}; allowed: a path or glob of existing "
                        f"{'/'.join(SUFFIXES)} files")
    return files


def _record_lengths(path):
    """The data length of each record of the TFRecord file `path`, from its headers (data is skipped)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        while handle.tell() < size:
            header = handle.read(RECORD_HEADER.size)
            length = RECORD_HEADER.unpack(header)[0] if len(header) == RECORD_HEADER.size else size
            if handle.tell() + length + 4 > size:
                raise UserError(f"cannot read {path!r} as TFRecord of (image, label): not a TFRecord file or "
                                f"truncated (the record at byte {handle.tell() - len(header)} runs past the end)")
            yield length
            handle.seek(length + 4, os.SEEK_CUR)


def count_records(path):
    """Number of records in `path`, read from the record headers only (ImageNet's 1,024 train shards: ~1 s).

    Example: count_records("train-00000-of-01024") -> 1251.
    """
    return sum(1 for _ in _record_lengths(path))


def first_record(path):
    """The bytes of the first record of `path` (None for an empty file)."""
    for length in _record_lengths(path):
        with open(path, "rb") as handle:
            handle.seek(RECORD_HEADER.size)
            return handle.read(length)
    return None


def detect_layout(files):
    """The LAYOUTS name whose image and label features the first record of the first non-empty file has."""
    import tensorflow as tf

    record = next((r for r in map(first_record, files) if r is not None), None)
    if record is None:
        raise UserError(f"TFRecord files {files[0]!r}... hold no examples")
    try:
        features = set(tf.train.Example.FromString(record).features.feature)
    except Exception:  # protobuf's DecodeError: not a tf.train.Example
        raise UserError(f"cannot read {files[0]!r} as TFRecord of (image, label): not tf.train.Example") from None
    for name, keys in LAYOUTS.items():
        if {keys.image, keys.label} <= features:
            return name
    raise UserError(f"{files[0]!r}: examples hold {sorted(features)}; allowed layouts: "
                    + "; ".join(f"{k.image} + {k.label}" for k in LAYOUTS.values()))


def parse_fn(layout, label_offset=0):
    """A tf function: serialized example -> (encoded image bytes, int32 label - label_offset)."""
    import tensorflow as tf

    keys = LAYOUTS[layout]
    schema = {keys.image: tf.io.FixedLenFeature([], tf.string), keys.label: tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
        example = tf.io.parse_single_example(record, schema)
        return example[keys.image], tf.cast(example[keys.label] - label_offset, tf.int32)

    return parse


def read(pattern, image_size, channels=3):
    """(x float32 [0, 255] NHWC at `image_size`, y int64) of every example in the files `pattern` matches.

    Unreadable records (not TFRecord, missing `image`/`label`, undecodable image) and empty files are UserErrors.
    """
    import tensorflow as tf

    files = check(pattern)
    parse = parse_fn(detect_layout(files))

    def decode(record):
        encoded, label = parse(record)
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), image_size, antialias=True), tf.cast(label, tf.int64)

    records = tf.data.TFRecordDataset(files).map(decode).batch(DECODE_BATCH)
    try:
        pairs = list(records.as_numpy_iterator())
    except tf.errors.OpError as error:
        first_line = error.message.splitlines()[0]
        raise UserError(f"cannot read {pattern!r} as TFRecord of (image, label): {first_line}") from None
    if not pairs:
        raise UserError(f"TFRecord files {pattern!r} hold no examples")
    return (np.concatenate([x for x, _ in pairs]).astype("float32"),
            np.concatenate([y for _, y in pairs]).astype("int64"))


def write_tfrecord(data, path):
    """Write labeled images (`data.x` [0, 255] NHWC, integer `data.y`) as PNG `image` + int64 `label` examples.

    Example:
        >>> import tempfile
        >>> from export.data.sources import load
        >>> path = os.path.join(tempfile.mkdtemp(), "digits.tfrecord")
        >>> write_tfrecord(load("digits", (8, 8)).take(range(10)), path)
        >>> count_records(path)
        10
    """
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(data.x, data.y):
            png = tf.io.encode_png(np.clip(np.rint(image), 0, 255).astype("uint8")).numpy()
            features = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def imagenet_example(encoded, label, text):
    """One serialized example in the ImageNet / Model Garden layout (`LAYOUTS["imagenet"]`)."""
    import tensorflow as tf

    keys = LAYOUTS["imagenet"]
    features = {keys.image: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                keys.label: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                keys.text: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
