"""tf.data input pipelines for training: the fixed split, augmentation, sharding, eval preprocessing.

Data comes from the one source table of `export.data.sources` ("digits", a folder of class sub-folders, an
`.npz`, TFRecord files, in-memory LabeledImages) through its `load`, so every source a model is trained on is one
`reszoo export` / verify / bench / diagnose accept. It is loaded as raw [0, 255] pixels at the model's input size
and split with `export.data.sources.split` (stratified, seed 0, 20 % held out), so training, calibration and
verification agree on which images are held out.

The training pipeline is a pure function of (seed, epoch, step): the epoch's order is a seeded permutation
and every image's augmentation uses a stateless seed derived from its position, so a resumed run sees exactly
the batches an uninterrupted run would have seen, whatever the parallelism. Multi-worker input is sharded
explicitly per input pipeline (`tf.distribute.InputContext`), so workers never read the same image in a step.

Augmentations (`AUGMENTATIONS`): "none"; "cifar" (4-pixel pad + random crop, horizontal flip); "cifar-noflip"
(pad-crop only — the default for digits, where a mirrored 2 is not a 2); "imagenet" (random resized crop,
scale 0.08-1, aspect 3/4-4/3, + flip); "imagenet-noflip"; "imagenet-randaug" (+ Keras RandAugment, 2 ops at
factor 0.6). "auto" picks "cifar-noflip" for digits, "cifar" for
inputs up to 64 px and "imagenet" above.

Example:
    >>> train, held_out = load_split("digits", (32, 32))
    >>> spec = default_spec("digits", (32, 32))
    >>> ds = train_dataset(train, spec, global_batch=64, epoch=0, seed=0, augment="cifar-noflip", steps=2)
    >>> [tuple(x.shape) for x, y in ds]
    [(64, 32, 32, 3), (64, 32, 32, 3)]
"""
import functools

import numpy as np

from export.data import sources as datasets
from export.core.errors import UserError
from export.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, make_spec, normalize

PAD_CROP_PIXELS = 4
RESIZED_CROP_SCALE = (0.08, 1.0)
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)

# name -> ordered augmentation steps (see `_AUGMENT_STEPS`).
AUGMENTATIONS = {
    "none": (),
    "cifar": ("pad_crop", "flip"),
    "cifar-noflip": ("pad_crop",),
    "imagenet": ("resized_crop", "flip"),
    "imagenet-noflip": ("resized_crop",),
    "imagenet-randaug": ("resized_crop", "flip", "randaugment"),
}
RANDAUGMENT = {"num_ops": 2, "factor": 0.6}  # Keras RandAugment standing in for timm's rand-m6 (magnitude 6 of 10)

# Per-source normalization (mean/std after scaling to [0, 1]); anything else: ImageNet statistics.
DIGITS_MEAN_STD = ((0.5,) * 3, (0.5,) * 3)
IMAGENET_MEAN_STD = (IMAGENET_MEAN, IMAGENET_STD)
TRAIN_MIN_CLASSES = 2  # a 1-class head learns nothing


def load_data(source, image_size, channels=3):
    """Load any `export.data.sources` source (digits, folder, .npz, TFRecord, LabeledImages) at `image_size`.

    Every source goes through `export.data.sources.validate` with the training rules: finite pixels, integer
    labels 0..K-1 (one per image) and at least 2 classes; unlabeled data is a UserError.
    Example: load_data("digits", (32, 32)).y[:3] -> [0 1 2].
    """
    data = datasets.load(source, tuple(image_size), channels, min_classes=TRAIN_MIN_CLASSES)
    if data.y is None:
        raise UserError(f"data {data.source!r} has no labels; training needs integer labels 'y'")
    return data


def load_split(source, image_size, channels=3):
    """(train, held_out) of `source` with the project's fixed split (export verifies on the same held-out part)."""
    return datasets.split(load_data(source, image_size, channels))


def default_spec(source_name, image_size, channels=3):
    """The preprocessing spec training records: scale 1/255, then mean/std (0.5 for digits, ImageNet else)."""
    mean, std = DIGITS_MEAN_STD if source_name == "digits" else IMAGENET_MEAN_STD
    return make_spec(image_size, channels=channels, scale=1 / 255, mean=mean[:channels], std=std[:channels])


def resolve_augment(augment, source_name, image_size):
    """Map "auto" to a table entry (digits: cifar-noflip; <=64 px: cifar; else imagenet); check the name."""
    if augment == "auto":
        if source_name == "digits":
            return "cifar-noflip"
        return "cifar" if max(image_size) <= 64 else "imagenet"
    if augment not in AUGMENTATIONS:
        raise UserError(f"unknown augmentation {augment!r}; allowed: auto, {', '.join(AUGMENTATIONS)}")
    return augment


def _pad_crop(image, seed):
    import tensorflow as tf

    height, width = image.shape[0], image.shape[1]
    padded = tf.pad(image, [[PAD_CROP_PIXELS] * 2, [PAD_CROP_PIXELS] * 2, [0, 0]])
    return tf.image.stateless_random_crop(padded, [height, width, image.shape[2]], seed=seed)


def _flip(image, seed):
    import tensorflow as tf

    return tf.image.stateless_random_flip_left_right(image, seed=seed)


def resized_crop_box(shape, seed):
    """(begin, size) of an Inception-style crop (scale 0.08-1, aspect 3/4-4/3) of an image of `shape` (HWC)."""
    import tensorflow as tf

    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        area_range=RESIZED_CROP_SCALE, aspect_ratio_range=RESIZED_CROP_RATIO, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    return begin, size


def _resized_crop(image, seed):
    import tensorflow as tf

    begin, size = resized_crop_box(tf.shape(image), seed)
    crop = tf.slice(image, begin, size)
    return tf.image.resize(crop, image.shape[:2], antialias=True)


@functools.lru_cache(maxsize=1)
def _randaugment_layer():
    import keras

    return keras.layers.RandAugment(value_range=(0, 255), **RANDAUGMENT)


def _randaugment(image, seed):
    """Keras' RandAugment (2 random ops at factor 0.6). Its randomness is Keras' own seed generator, not the
    stateless seed: a resumed run continues with other RandAugment draws (the rest stays exact)."""
    return _randaugment_layer()(image, training=True)


_AUGMENT_STEPS = {"pad_crop": _pad_crop, "flip": _flip, "resized_crop": _resized_crop, "randaugment": _randaugment}


def augment_image(image, augment, seed, first_step=0):
    """Apply the `augment` table entry to one raw HWC image with a stateless seed (shape [2] int64), from its
    step `first_step` on (streams apply a resized crop while decoding); step i draws from seed + (i, 0)."""
    import tensorflow as tf

    steps = AUGMENTATIONS[augment]
    for index in range(first_step, len(steps)):
        image = _AUGMENT_STEPS[steps[index]](image, tf.stack([seed[0] + index, seed[1]]))
    return image


def epoch_order(n, seed, epoch):
    """The permutation of `n` training images used in `epoch` (identical on every worker)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def with_mixing(batches, mixing, num_classes, seed, first_index):
    """`batches` with mixup/cutmix (`reszoo.train.mixing`) seeded by (seed, batch position), when `mixing` is on."""
    import tensorflow as tf

    if mixing is None or not mixing.active:
        return batches
    from reszoo.train.mixing import mix_batch

    def mix(index, batch):
        return mix_batch(batch[0], batch[1], num_classes, mixing, tf.stack([tf.cast(seed, tf.int64), index]))

    return batches.enumerate(first_index).map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def train_dataset(data, spec, *, global_batch, epoch, seed, augment, steps, skip_steps=0, input_context=None,
                  deterministic=True, mixing=None, num_classes=None):
    """Batches `skip_steps..steps-1` of `epoch`: seeded order, stateless augmentation, normalize, batch, and
    mixup/cutmix when `mixing` is on (soft targets then replace the labels).

    With `input_context` (from `strategy.distribute_datasets_from_function`) each input pipeline keeps its own
    interleaved shard of every global batch and batches the per-replica size.
    """
    import tensorflow as tf

    order = epoch_order(len(data.x), seed, epoch)
    images = tf.data.Dataset.from_tensor_slices((data.x[order], data.y[order].astype("int32"))).repeat()
    images = images.enumerate().skip(skip_steps * global_batch).take((steps - skip_steps) * global_batch)
    batch = global_batch
    if input_context is not None:
        images = images.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch = input_context.get_per_replica_batch_size(global_batch)
    epoch_seed = np.int64(seed) * 1_000_003 + epoch

    def prepare(position, pair):
        image, label = pair
        image = augment_image(image, augment, tf.stack([epoch_seed, position]))
        return normalize(image, spec), label

    images = images.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    batches = with_mixing(images.batch(batch, drop_remainder=True), mixing, num_classes, mixing_seed(epoch_seed,
                          input_context), skip_steps * batches_per_step(global_batch, batch, input_context))
    return with_options(batches.prefetch(tf.data.AUTOTUNE), deterministic)


def batches_per_step(global_batch, batch, input_context):
    """Batches one input pipeline delivers per global step."""
    return global_batch // batch // (input_context.num_input_pipelines if input_context else 1)


def mixing_seed(epoch_seed, input_context):
    """A per-pipeline seed for mixup/cutmix."""
    return int(epoch_seed) + 104_729 * (input_context.input_pipeline_id if input_context else 0)


def eval_dataset(data, spec, batch_size):
    """Held-out images with the deterministic eval preprocessing (`normalize` with `spec`), in order."""
    import tensorflow as tf

    images = tf.data.Dataset.from_tensor_slices((data.x, data.y.astype("int32")))
    images = images.map(lambda x, y: (normalize(x, spec), y), num_parallel_calls=tf.data.AUTOTUNE)
    return with_options(images.batch(batch_size).prefetch(tf.data.AUTOTUNE), True)


def with_options(dataset, deterministic):
    """Deterministic order on request; no auto-sharding (we shard explicitly per input pipeline)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def synthetic_batches(spec, global_batch, steps, num_classes, input_context=None):
    """`steps` batches of one fixed random batch: training with no input pipeline (`--synthetic`)."""
    import tensorflow as tf

    batch = input_context.get_per_replica_batch_size(global_batch) if input_context else global_batch
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, *spec["input_size"], spec["channels"])).astype("float32")
    labels = rng.integers(0, num_classes, batch).astype("int32")
    one = tf.data.Dataset.from_tensors((normalize(images, spec), labels))
    return with_options(one.repeat(steps * batches_per_step(global_batch, batch, input_context)), True)
