"""tf.data pipelines: deterministic order/augmentation, resume position, per-pipeline sharding, TFRecord input."""
import numpy as np
import pytest
import tensorflow as tf

from export.data.sources import LabeledImages
from export.data.tfrecord import write_tfrecord
from reszoo.train import data as pipelines


@pytest.fixture(scope="module")
def digits_split():
    return pipelines.load_split("digits", (32, 32))


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def make(train, **kw):
    spec = pipelines.default_spec("digits", (32, 32))
    args = dict(global_batch=16, epoch=0, seed=0, augment="cifar-noflip", steps=4)
    return pipelines.train_dataset(train, spec, **{**args, **kw})


def test_same_seed_same_batches_and_other_epoch_differs(digits_split):
    train, _ = digits_split
    first, again, next_epoch = batches(make(train)), batches(make(train)), batches(make(train, epoch=1))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not np.array_equal(first[0][1], next_epoch[0][1])


def test_skipping_steps_resumes_at_the_same_data_position(digits_split):
    train, _ = digits_split
    full, resumed = batches(make(train)), batches(make(train, skip_steps=2))
    assert len(resumed) == 2
    for (x_full, y_full), (x_resumed, y_resumed) in zip(full[2:], resumed):
        np.testing.assert_array_equal(x_full, x_resumed)
        np.testing.assert_array_equal(y_full, y_resumed)


def test_two_input_pipelines_split_each_global_batch_without_overlap(digits_split):
    train, _ = digits_split
    whole = batches(make(train, augment="none"))
    shards = [batches(make(train, augment="none", input_context=tf.distribute.InputContext(2, i, 2)))
              for i in range(2)]
    for step, (x_global, _) in enumerate(whole):
        parts = np.concatenate([shards[0][step][0], shards[1][step][0]])
        assert parts.shape == x_global.shape
        key = lambda images: sorted(images.reshape(len(images), -1).sum(axis=1).round(3))  # noqa: E731
        assert key(parts) == key(x_global)


def test_augmentations_keep_shape_and_change_pixels():
    image = tf.random.stateless_uniform((32, 32, 3), seed=[1, 2], maxval=255.0)
    for name in pipelines.AUGMENTATIONS:
        out = pipelines.augment_image(image, name, tf.constant([3, 4], tf.int64))
        assert out.shape == image.shape
        assert (name == "none") == bool(np.array_equal(out.numpy(), image.numpy()))


def test_auto_augment_never_flips_digits_and_unknown_name_is_user_error():
    assert "flip" not in pipelines.AUGMENTATIONS[pipelines.resolve_augment("auto", "digits", (32, 32))]
    assert pipelines.resolve_augment("auto", "/data/imagenet", (224, 224)) == "imagenet"
    with pytest.raises(pipelines.UserError, match="unknown augmentation 'flipz'"):
        pipelines.resolve_augment("flipz", "digits", (32, 32))


def test_eval_preprocessing_is_the_recorded_spec(digits_split):
    _, held_out = digits_split
    spec = pipelines.default_spec("digits", (32, 32))
    x, _ = next(iter(pipelines.eval_dataset(held_out, spec, 8)))
    np.testing.assert_allclose(x.numpy(), (held_out.x[:8] / 255.0 - 0.5) / 0.5, atol=1e-5)


def test_training_loads_tfrecord_through_the_one_source_table(tmp_path):
    images = LabeledImages(np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3)).astype("float32"),
                           np.arange(6) % 3, ["0", "1", "2"], "synthetic")
    write_tfrecord(images, tmp_path / "part-0.tfrecord")
    loaded = pipelines.load_data(str(tmp_path / "*.tfrecord"), (16, 16))
    np.testing.assert_array_equal(loaded.y, images.y)
    assert loaded.class_names == ["0", "1", "2"] and loaded.source == str(tmp_path / "*.tfrecord")
    with pytest.raises(pipelines.UserError, match="no TFRecord files"):
        pipelines.load_data(str(tmp_path / "none*.tfrecord"), (16, 16))
