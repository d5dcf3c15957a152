"""TFRecord files of (image, label) examples: one of the `export.data.sources` kinds, and how to write them.

A source is a path or glob ending in `.tfrecord` / `.tfrec` (`"/data/train-*.tfrecord"`). Each example holds
`image` (encoded PNG/JPEG bytes) and `label` (int64). `check` is cheap (a glob, no TensorFlow); `read` decodes
every example into memory at the asked size; `write_tfrecord` writes that layout from labeled images.

Example:
    >>> from export.data.sources import load
    >>> write_tfrecord(load("digits", (8, 8)), "/tmp/digits.tfrecord")  # doctest: +SKIP
    >>> x, y = read("/tmp/*.tfrecord", (8, 8))  # doctest: +SKIP
    >>> x.shape, y[:3]  # doctest: +SKIP
    ((1797, 8, 8, 3), array([0, 1, 2]))
"""
import glob

import numpy as np

from export.core.errors import UserError

SUFFIXES = (".tfrecord", ".tfrec")
DECODE_BATCH = 1024  # examples per decoded batch


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


def read(pattern, image_size, channels=3):
    """(x float32 [0, 255] NHWC at `image_size`, y int64) of every example in the files `pattern` matches.

    Unreadable records (not TFRecord, missing `image`/`label`, undecodable image) and empty files are UserErrors.
    """
    import tensorflow as tf

    schema = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}

    def decode(record):
        example = tf.io.parse_single_example(record, schema)
        image = tf.io.decode_image(example["image"], channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), image_size, antialias=True)
        return image, example["label"]

    records = tf.data.TFRecordDataset(check(pattern)).map(decode).batch(DECODE_BATCH)
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
        >>> write_tfrecord(load("digits", (8, 8)), "/tmp/digits.tfrecord")  # doctest: +SKIP
    """
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(data.x, data.y):
            png = tf.io.encode_png(np.clip(np.rint(image), 0, 255).astype("uint8")).numpy()
            features = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
