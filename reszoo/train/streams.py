"""Streaming training input: class-folder trees and TFRecord shards read lazily, never held in memory.

A `Stream` is what a lazy source is before any pixel is decoded: the image files (with their labels) of a
class-folder tree, or TFRecord shards (reszoo's or the ImageNet / Model Garden layout, `--label-offset` for
ImageNet's 1-based labels) with their record counts (read from record headers). Pixels are decoded inside the
tf.data pipeline, so memory holds the file list, the shuffle buffer and the prefetched batches, whatever the
dataset's size.

One epoch for one input pipeline (`tf.distribute.InputContext`), a pure function of (seed, epoch, pipeline):
- files: a seeded permutation of the whole list, every pipeline taking every n-th file (exact global shuffle);
- shards: a seeded shard order, shards dealt to pipelines when there are at least as many as pipelines (else
  every pipeline reads all shards and keeps every n-th record), interleaved, then a bounded shuffle buffer;
then `skip` (a resumed epoch continues at the same position, skipping before any decoding), decoding with the
augmentation (fused JPEG decode-and-crop for random-resized crops), normalization, batching, bounded prefetch.
Evaluation resizes to the spec's scale size and center-crops (`crop_pct`), as export's loaders do.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from export.data.preprocess import make_spec
    >>> root = tempfile.mkdtemp()
    >>> for i in range(8):  # a class-folder tree cat/*.png, dog/*.png
    ...     path = os.path.join(root, ("cat", "dog")[i % 2], f"{i}.png")
    ...     os.makedirs(os.path.dirname(path), exist_ok=True)
    ...     Image.new("RGB", (8, 8)).save(path)
    >>> stream = open_stream(root)  # or TFRecord shards: open_stream("shards/train-*.tfrecord")
    >>> ds = train_stream_dataset(stream, make_spec((8, 8)), global_batch=4, epoch=0, seed=0, augment="cifar",
    ...                           steps=3)
    >>> stream.count, [tuple(images.shape) for images, labels in ds]
    (8, [(4, 8, 8, 3), (4, 8, 8, 3), (4, 8, 8, 3)])
"""
import dataclasses
import os

import numpy as np

from export.core.errors import UserError
from export.data import sources, tfrecord
from export.data.preprocess import center_crop, normalize, scale_size

SHUFFLE_BUFFER = 4096  # encoded records (ImageNet JPEGs average ~110 kB: ~450 MB)
INTERLEAVE_CYCLE = 16  # shards read at once per pipeline
PREFETCH_BATCHES = 2  # bounded, so memory does not follow AUTOTUNE's appetite
TRAIN_MIN_CLASSES = 2
IN_MEMORY_SHARD_BYTES = 1 << 30  # TFRecord data up to 1 GiB without --val-data is loaded and split in memory


@dataclasses.dataclass(frozen=True)
class Stream:
    """A lazily read labeled image source: image `files` + `labels`, or TFRecord `files` + record `counts`."""

    kind: str  # "files" | "tfrecord"
    files: tuple
    labels: tuple | None
    counts: tuple | None
    class_names: list
    source: str
    layout: str | None = None
    label_offset: int = 0

    @property
    def count(self):
        return len(self.files) if self.kind == "files" else int(sum(self.counts))

    def take(self, indices):
        """The files at `indices` (kind "files" only): the held-out part of a split folder."""
        return dataclasses.replace(self, files=tuple(self.files[i] for i in indices),
                                   labels=tuple(self.labels[i] for i in indices))


def open_stream(source, label_offset=0, num_classes=None):
    """The Stream of a folder tree or a TFRecord glob. Class names: the folders, the shards' dataset.json, else
    `num_classes` integers (`reszoo data shards` writes dataset.json; training passes the model's class count)."""
    source = str(source)
    if sources.source_kind(source) == "folder":
        paths, labels, names = sources.list_image_files(source)
        for path in paths:
            sources.check_image_header(path)
        sources.check_class_count(os.path.abspath(source), names, TRAIN_MIN_CLASSES)
        return Stream("files", tuple(paths), tuple(int(v) for v in labels), None, names, os.path.abspath(source))
    files = tfrecord.check(source)
    counts = tuple(tfrecord.count_records(f) for f in files)
    if not sum(counts):
        raise UserError(f"TFRecord files {source!r} hold no examples")
    names = _shard_class_names(files, num_classes)
    return Stream("tfrecord", tuple(files), None, counts, names, os.path.abspath(source),
                  tfrecord.detect_layout(files), int(label_offset))


def _shard_class_names(files, num_classes):
    from reszoo.train.shards import read_dataset_file

    described = read_dataset_file(files)
    if described:
        return list(described["class_names"])
    if not num_classes:
        raise UserError(f"{files[0]!r}: no dataset.json beside the shards tells the classes; give the model's "
                        "number of classes (reszoo data shards writes dataset.json)")
    return [str(i) for i in range(int(num_classes))]


def is_streamed(source, has_val_data=False):
    """True for what training streams: class-folder trees, and TFRecord files when held-out data is given or they
    are too big to load (> IN_MEMORY_SHARD_BYTES). Small TFRecord data without it is loaded and split in memory,
    so export verifies on the same held-out part."""
    kind = sources.source_kind(str(source)) if isinstance(source, (str, os.PathLike)) else None
    if kind != "tfrecord":
        return kind == "folder"
    return has_val_data or sum(map(os.path.getsize, tfrecord.check(str(source)))) > IN_MEMORY_SHARD_BYTES


def split_stream(stream):
    """(train, held_out) of a folder stream with the project's fixed split (the one export verifies on)."""
    if stream.kind != "files":
        raise UserError(f"{stream.source!r}: TFRecord data over {IN_MEMORY_SHARD_BYTES >> 30} GiB needs --val-data "
                        "(records cannot be split stratified without reading them all)")
    train, held_out = sources.split_indices(stream.count, np.asarray(stream.labels))
    return stream.take(train), stream.take(held_out)


def _pipeline(input_context):
    return (input_context.num_input_pipelines, input_context.input_pipeline_id) if input_context else (1, 0)


def _file_records(stream, seed, epoch, pipelines, index):
    """(encoded image, label) of a files stream: the epoch's global permutation, every n-th for this pipeline."""
    import tensorflow as tf

    order = np.random.default_rng([seed, epoch]).permutation(stream.count)[index::pipelines]
    paths = np.asarray(stream.files)[order]
    labels = np.asarray(stream.labels, dtype="int32")[order]
    return tf.data.Dataset.from_tensor_slices((paths, labels)).map(lambda p, y: (tf.io.read_file(p), y))


def _shard_records(stream, seed, epoch, pipelines, index, shuffle_buffer):
    """(encoded image, label) of a TFRecord stream for this pipeline: shards or records sharded, shuffled."""
    import tensorflow as tf

    files = np.asarray(stream.files)[np.random.default_rng([seed, epoch]).permutation(len(stream.files))]
    by_files = len(files) >= pipelines
    mine = files[index::pipelines] if by_files else files
    records = tf.data.Dataset.from_tensor_slices(mine).interleave(
        tf.data.TFRecordDataset, cycle_length=min(INTERLEAVE_CYCLE, len(mine)), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if not by_files:
        records = records.shard(pipelines, index)
    records = records.shuffle(shuffle_buffer, seed=int(seed) * 1_000_003 + epoch, reshuffle_each_iteration=False)
    return records.map(tfrecord.parse_fn(stream.layout, stream.label_offset), num_parallel_calls=tf.data.AUTOTUNE)


def pipeline_records(stream, seed, epoch, input_context=None, shuffle_buffer=SHUFFLE_BUFFER):
    """(encoded image bytes, int32 label) of `epoch` for one input pipeline, in a seeded order."""
    pipelines, index = _pipeline(input_context)
    if stream.kind == "files":
        return _file_records(stream, seed, epoch, pipelines, index)
    return _shard_records(stream, seed, epoch, pipelines, index, shuffle_buffer)


def _decode(encoded, channels):
    import tensorflow as tf

    return tf.io.decode_image(encoded, channels=channels, expand_animations=False)


def _random_resized_crop(encoded, size, channels, seed):
    """Inception-style crop (scale 0.08-1, ratio 3/4-4/3) decoded in one step for JPEGs, then resized."""
    import tensorflow as tf

    from reszoo.train.data import resized_crop_box

    is_jpeg = tf.io.is_jpeg(encoded)
    shape = tf.cond(is_jpeg, lambda: tf.image.extract_jpeg_shape(encoded), lambda: tf.shape(_decode(encoded, channels)))
    begin, crop_size = resized_crop_box(shape, seed)
    window = tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])
    crop = tf.cond(is_jpeg, lambda: tf.image.decode_and_crop_jpeg(encoded, window, channels=channels),
                   lambda: tf.slice(_decode(encoded, channels), begin, crop_size))
    crop.set_shape([None, None, channels])
    return tf.image.resize(tf.cast(crop, tf.float32), size, antialias=True)


def decode_for_training(encoded, spec, augment, seed):
    """Raw [0, 255] float image at the spec's size with the `augment` table entry applied (reszoo.train.data)."""
    import tensorflow as tf

    from reszoo.train.data import AUGMENTATIONS, augment_image

    size, channels = tuple(spec["input_size"]), spec["channels"]
    if AUGMENTATIONS[augment][:1] == ("resized_crop",):
        return augment_image(_random_resized_crop(encoded, size, channels, seed), augment, seed, first_step=1)
    image = tf.image.resize(tf.cast(_decode(encoded, channels), tf.float32), size, antialias=True)
    image.set_shape([*size, channels])
    return augment_image(image, augment, seed)


def decode_for_eval(encoded, spec):
    """Resize to the spec's scale size, center-crop to its input size (crop_pct), as export's loaders do."""
    import tensorflow as tf

    size, channels = tuple(spec["input_size"]), spec["channels"]
    image = tf.image.resize(tf.cast(_decode(encoded, channels), tf.float32), scale_size(spec), antialias=True)
    image = center_crop(image[None], size)[0]
    image.set_shape([*size, channels])
    return image


LABEL_RANGE_ERROR = "label out of range"  # the start of the message `checked_label` fails with


def checked_label(label, num_classes):
    """`label`, failing the pipeline (InvalidArgumentError) when it is not in 0..num_classes-1: a label the loss
    would turn into an all-zero target (e.g. ImageNet's 1..1000 read without --label-offset 1)."""
    import tensorflow as tf

    if not num_classes:
        return label
    in_range = tf.logical_and(label >= 0, label < num_classes)
    message = (f"{LABEL_RANGE_ERROR}: the model has {num_classes} classes (0..{num_classes - 1}); ImageNet shards "
               "label 1..1000: pass --label-offset 1")
    with tf.control_dependencies([tf.debugging.Assert(in_range, [message, label])]):
        return tf.identity(label)


def train_stream_dataset(stream, spec, *, global_batch, epoch, seed, augment, steps, skip_steps=0,
                         input_context=None, deterministic=True, shuffle_buffer=SHUFFLE_BUFFER, mixing=None,
                         num_classes=None):
    """Batches `skip_steps..steps-1` of `epoch` for this input pipeline (see the module docstring)."""
    import tensorflow as tf

    from reszoo.train.data import batches_per_step, mixing_seed, with_mixing, with_options

    pipelines, index = _pipeline(input_context)
    batch = input_context.get_per_replica_batch_size(global_batch) if input_context else global_batch
    per_step = global_batch // pipelines  # this pipeline's records per global step
    records = pipeline_records(stream, seed, epoch, input_context, shuffle_buffer).repeat()
    records = records.skip(skip_steps * per_step).take((steps - skip_steps) * per_step).enumerate(skip_steps * per_step)
    epoch_seed = np.int64(seed) * 1_000_003 + epoch * 7919 + index

    def prepare(position, pair):
        encoded, label = pair
        image = decode_for_training(encoded, spec, augment, tf.stack([epoch_seed, position]))
        return normalize(image, spec), checked_label(label, num_classes)

    images = records.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    batches = with_mixing(images.batch(batch, drop_remainder=True), mixing, num_classes,
                          mixing_seed(epoch_seed, input_context),
                          skip_steps * batches_per_step(global_batch, batch, input_context))
    return with_options(batches.prefetch(PREFETCH_BATCHES), deterministic)


def eval_stream_dataset(stream, spec, batch_size):
    """Every image of `stream` once, in file order, with the evaluation preprocessing."""
    import tensorflow as tf

    from reszoo.train.data import with_options

    if stream.kind == "files":
        records = tf.data.Dataset.from_tensor_slices((np.asarray(stream.files), np.asarray(stream.labels, "int32")))
        records = records.map(lambda p, y: (tf.io.read_file(p), y))
    else:
        records = tf.data.TFRecordDataset(list(stream.files)).map(tfrecord.parse_fn(stream.layout, stream.label_offset))
    images = records.map(lambda encoded, y: (normalize(decode_for_eval(encoded, spec), spec), y),
                         num_parallel_calls=tf.data.AUTOTUNE)
    return with_options(images.batch(batch_size).prefetch(PREFETCH_BATCHES), True)
