"""Streaming input: shards written from a class-folder tree read back exactly, every record once per epoch
across input pipelines (by shards and by records), resume at the same position, the fused JPEG crop, eval crops,
ImageNet-layout label offsets, and training from streams end to end."""
import collections
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from export.core.errors import UserError
from export.data.preprocess import make_spec
from export.data.tfrecord import imagenet_example
from reszoo.train import streams
from reszoo.train.shards import write_shards
from tests.helpers import assert_one_line_user_error, partial_leftovers

SIDE = 12
CLASSES = 3
PER_CLASS = 10  # 30 images: 24 train in 4 shards of 6, 6 validation


def make_tree(root, per_class=PER_CLASS, side=SIDE):
    """Class folders of distinct random images, PNG and JPEG alternately."""
    rng = np.random.default_rng(0)
    for label in range(CLASSES):
        os.makedirs(root / f"class{label}")
        for index in range(per_class):
            image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            encode, suffix = (tf.io.encode_jpeg, "jpg") if index % 2 else (tf.io.encode_png, "png")
            (root / f"class{label}" / f"{index}.{suffix}").write_bytes(encode(image).numpy())
    return root


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("streams")
    tree = make_tree(root / "tree")
    write_shards(str(tree), str(root / "shards"), shards=4, val_fraction=0.2)
    return root


class Pipeline:
    """What `distribute_datasets_from_function` passes: input pipeline n of `count`, one replica each."""

    def __init__(self, count, index):
        self.num_input_pipelines, self.input_pipeline_id, self.num_replicas_in_sync = count, index, count

    def get_per_replica_batch_size(self, global_batch):
        return global_batch // self.num_input_pipelines


def digest(image):
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def decoded(stream, spec, **options):
    """[(image digest, label)] of one epoch (no augmentation, unnormalized pixels), per pipeline."""
    spec = {**spec, "scale": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}
    dataset = streams.train_stream_dataset(stream, spec, augment="none", **options)
    return [(digest(x), int(y)) for xs, ys in dataset for x, y in zip(xs.numpy(), ys.numpy())]


def all_images(stream, spec):
    spec = {**spec, "scale": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}
    return [(digest(x), int(y)) for xs, ys in streams.eval_stream_dataset(stream, spec, 64)
            for x, y in zip(xs.numpy(), ys.numpy())]


def test_shards_hold_the_files_bytes_and_labels(shards):
    summary = json.loads((shards / "shards" / "dataset.json").read_text())
    assert summary["class_names"] == ["class0", "class1", "class2"]
    assert summary["splits"]["train"]["records"] == 24 and summary["splits"]["validation"]["records"] == 6
    stream = streams.open_stream(str(shards / "shards" / "*.tfrecord"))
    assert stream.layout == "imagenet" and stream.count == 30 and stream.class_names == summary["class_names"]
    records = tf.data.TFRecordDataset(list(stream.files)).map(streams.tfrecord.parse_fn("imagenet"))
    written = collections.Counter((bytes(e.numpy()), int(y)) for e, y in records)
    tree = shards / "tree"
    files = collections.Counter(((tree / c / n).read_bytes(), int(c[-1])) for c in os.listdir(tree)
                                for n in os.listdir(tree / c))
    assert written == files


@pytest.mark.parametrize("pattern, pipelines", [("train-*.tfrecord", 2), ("train-00000-*.tfrecord", 2),
                                                (None, 2), ("train-*.tfrecord", 1)])
def test_every_record_once_per_epoch_across_pipelines(shards, pattern, pipelines):
    """4 shards over 2 pipelines go by shards; 1 shard by records; a folder by files (6 divides every share)."""
    stream = streams.open_stream(str(shards / "shards" / pattern) if pattern else str(shards / "tree"))
    spec = make_spec((SIDE, SIDE))
    per_step = 6
    seen = []
    for index in range(pipelines):
        seen += decoded(stream, spec, global_batch=per_step, epoch=1, seed=3,
                        steps=stream.count // per_step, input_context=Pipeline(pipelines, index))
    assert collections.Counter(seen) == collections.Counter(all_images(stream, spec))


def test_a_resumed_epoch_continues_at_the_same_position(shards):
    stream = streams.open_stream(str(shards / "shards" / "train-*.tfrecord"))
    spec = make_spec((SIDE, SIDE))
    options = dict(global_batch=4, epoch=2, seed=1, augment="imagenet", steps=4, input_context=Pipeline(2, 1))
    full = [x.numpy() for x, _ in streams.train_stream_dataset(stream, spec, **options)]
    resumed = [x.numpy() for x, _ in streams.train_stream_dataset(stream, spec, skip_steps=3, **options)]
    assert len(resumed) == 1 and np.array_equal(full[3], resumed[0])
    other_epoch = [x.numpy() for x, _ in streams.train_stream_dataset(stream, spec, **{**options, "epoch": 3})]
    assert not np.array_equal(full[0], other_epoch[0])


def test_fused_jpeg_crop_equals_decode_then_crop():
    image = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    encoded = tf.io.encode_jpeg(image)
    seed = tf.constant([5, 9], tf.int64)
    fused = streams._random_resized_crop(encoded, (16, 16), 3, seed)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(tf.io.decode_jpeg(encoded)), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    plain = tf.image.resize(tf.cast(tf.slice(tf.io.decode_jpeg(encoded), begin, size), tf.float32), (16, 16),
                            antialias=True)
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())


def test_eval_resizes_to_the_scale_size_and_center_crops():
    image = np.arange(20 * 20 * 3, dtype=np.uint8).reshape(20, 20, 3)
    spec = make_spec((8, 8), crop_pct=0.5)
    out = streams.decode_for_eval(tf.io.encode_png(image), spec).numpy()
    expected = tf.image.resize(image.astype("float32"), (16, 16), antialias=True).numpy()[4:12, 4:12]
    np.testing.assert_array_equal(out, expected)


def test_imagenet_labels_with_an_offset(tmp_path):
    image = tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy()
    with tf.io.TFRecordWriter(str(tmp_path / "train-00000-of-00001.tfrecord")) as writer:
        for label in (1, 2, 1000):
            writer.write(imagenet_example(image, label, "n0"))
    stream = streams.open_stream(str(tmp_path / "*.tfrecord"), label_offset=1, num_classes=1000)
    assert stream.count == 3 and stream.class_names[-1] == "999"
    assert [y for _, y in all_images(stream, make_spec((4, 4)))] == [0, 1, 999]


def test_train_streams_shards_with_val_data(shards, run_cli, tmp_path):
    root = shards / "shards"
    result = run_cli("train", "resnet20", "--data", root / "train-*.tfrecord", "--val-data",
                     root / "validation-*.tfrecord", "--width", "4", "--image-size", "16", "--epochs", "1",
                     "--batch-size", "6", "--output", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "history.json").read_text())[-1]
    assert record["step"] == 4 and 0.0 <= record["input_wait"] < 1.0
    assert record["images_per_second_per_replica"] == pytest.approx(record["images_per_second"])
    meta = json.loads(__import__("zipfile").ZipFile(tmp_path / "run" / "final.keras").read("reszoo.json"))
    assert meta["labels"] == ["class0", "class1", "class2"] and meta["data"]["held_out_images"] == 6


def test_shards_cli_and_user_mistakes(shards, run_cli, tmp_path):
    result = run_cli("data", "shards", shards / "tree", "--output", tmp_path / "out", "--shards", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train: 30 images in 2 shards" in result.stdout
    assert_one_line_user_error(run_cli("data", "shards", shards / "tree", "--output", tmp_path / "out"), "exists")
    assert_one_line_user_error(run_cli("data", "shards", tmp_path / "none", "--output", tmp_path / "o2"),
                               "does not exist")
    assert not (tmp_path / "o2").exists() and not partial_leftovers(tmp_path)
    from reszoo.train.streams import IN_MEMORY_SHARD_BYTES, is_streamed, open_stream, split_stream

    pattern = str(shards / "shards" / "train-*.tfrecord")
    assert is_streamed(pattern, has_val_data=True) and not is_streamed(pattern) and IN_MEMORY_SHARD_BYTES >= 1 << 30
    with pytest.raises(UserError, match="needs --val-data"):
        split_stream(open_stream(pattern))


def test_bench_input_and_synthetic_training(shards, run_cli, tmp_path):
    bench = run_cli("bench-input", shards / "shards" / "train-*.tfrecord", "--image-size", "16", "--batch-size", "4",
                    "--batches", "2")
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert "images/s" in bench.stdout and "augment cifar" in bench.stdout and "24 images" in bench.stdout
    synthetic = run_cli("train", "resnet20", "--synthetic", "--data", shards / "tree", "--width", "4",
                        "--image-size", "16", "--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "3",
                        "--output", tmp_path / "run")
    assert synthetic.returncode == 0, synthetic.stderr[-2000:]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["step"] == 3 and "input_wait" in history[-1]


def test_an_image_corrupt_past_its_header_stops_training_in_one_line(tmp_path, run_cli):
    tree = make_tree(tmp_path / "tree", per_class=4)
    png = (tree / "class1" / "0.png").read_bytes()
    (tree / "class1" / "0.png").write_bytes(png[:40])  # the header check passes, decoding fails mid-epoch
    done = run_cli("train", "resnet20", "--data", tree, "--width", "4", "--image-size", "16", "--epochs", "1",
                   "--batch-size", "3", "--output", tmp_path / "run")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # after the progress bar
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith("error: training data: an image could not be decoded: "), errors
    assert "PNG" in errors[0] and "{{" not in errors[0], errors


def test_two_localhost_workers_train_on_shards(shards, tmp_path):
    """MultiWorkerMirroredStrategy with the streamed pipeline: each worker reads its own 2 of the 4 shards."""
    import subprocess
    import sys

    from tests.reszoo.train.test_strategies import free_ports

    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    root = shards / "shards"
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "reszoo", "train", "resnet20", "--strategy", "multi-worker", "--data",
             str(root / "train-*.tfrecord"), "--val-data", str(root / "validation-*.tfrecord"), "--width", "4",
             "--image-size", "16", "--epochs", "2", "--batch-size", "6", "--output", str(tmp_path / "run")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err[-2000:] for _, err in results]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [record["step"] for record in history] == [4, 8]  # 24 records / global batch 6 per epoch
    assert history[-1]["images_per_second_per_replica"] == pytest.approx(history[-1]["images_per_second"] / 2)


def test_labels_outside_the_classes_stop_training_in_one_line(tmp_path, run_cli):
    """ImageNet-style 1-based labels read without --label-offset: label == classes would silently become an
    all-zero target; the pipeline refuses it, naming the fix."""
    image = tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy()
    for split, labels in (("train", [1, 2, 3] * 4), ("validation", [1, 2, 3])):
        with tf.io.TFRecordWriter(str(tmp_path / f"{split}-00000-of-00001.tfrecord")) as writer:
            for label in labels:
                writer.write(imagenet_example(image, label, str(label)))
    args = ["train", "resnet20", "--data", tmp_path / "train-*.tfrecord", "--val-data",
            tmp_path / "validation-*.tfrecord", "--num-classes", "3", "--width", "4", "--image-size", "8",
            "--epochs", "1", "--batch-size", "4"]
    done = run_cli(*args, "--output", tmp_path / "run")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and "label out of range: the model has 3 classes" in errors[0], errors
    assert "--label-offset 1" in errors[0], errors
    fixed = run_cli(*args, "--label-offset", "1", "--output", tmp_path / "run2")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
