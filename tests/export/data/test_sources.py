"""Data sources, the fixed split, preprocessing specs and model metadata (export/datasets, preprocess, metadata)."""
import os
import zipfile

import numpy as np
import pytest

from export.core import metadata
from export.data import preprocess
from export.data import sources as datasets
from export.core.errors import UserError


def test_digits_are_rgb_0_255_at_requested_size():
    data = datasets.load("digits", (32, 32))
    assert data.x.shape == (1797, 32, 32, 3)
    assert data.x.dtype == np.float32
    assert 250.0 <= data.x.max() <= 255.0 and data.x.min() >= 0.0
    assert np.array_equal(data.x[..., 0], data.x[..., 2])  # gray repeated to RGB
    assert data.class_names == [str(d) for d in range(10)]


def test_split_is_fixed_stratified_and_disjoint():
    data = datasets.load("digits", (8, 8))
    train_a, held_a = datasets.split(data)
    train_b, held_b = datasets.split(data)
    assert np.array_equal(held_a.x, held_b.x)
    assert len(held_a.x) == 360 and len(train_a.x) == 1437
    train_rows = {row.tobytes() for row in train_a.x.reshape(len(train_a.x), -1)}
    overlap = sum(row.tobytes() in train_rows for row in held_a.x.reshape(len(held_a.x), -1))
    assert overlap <= 2  # sklearn digits holds a couple of exact duplicate images; indices never overlap
    counts = np.bincount(held_a.y)
    assert counts.min() >= 34 and counts.max() <= 38


def test_folder_source_reads_class_folders(tmp_path):
    from PIL import Image

    for label, color in (("cat", 10), ("dog", 200)):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(np.full((20, 30, 3), color + i, np.uint8)).save(tmp_path / label / f"{i}.png")
    data = datasets.load(str(tmp_path), (16, 16))
    assert data.x.shape == (6, 16, 16, 3)
    assert data.class_names == ["cat", "dog"]
    assert list(data.y) == [0, 0, 0, 1, 1, 1]
    assert data.x[0].mean() == pytest.approx(10.0, abs=0.01)


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "no images"),
    (lambda p: [(p / "a").mkdir(), (p / "a" / "x.png").write_bytes(b"not a png")] and p, "not a readable image"),
])
def test_folder_source_errors_name_the_problem(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        datasets.load(str(make(tmp_path)), (8, 8))


def test_npz_source_and_its_errors(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 2, 1]))
    data = datasets.load(str(good), (8, 8))
    assert data.x.shape == (4, 8, 8, 3) and data.class_names == ["0", "1", "2"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 8, 8)))
    with pytest.raises(UserError, match="no array 'x'"):
        datasets.load(str(bad), (8, 8))
    with pytest.raises(UserError, match="allowed: 'digits'"):
        datasets.load("imagenet", (8, 8))


def test_the_source_table_names_each_kind_first_match_wins(tmp_path):
    (tmp_path / "cats").mkdir()
    memory = datasets.LabeledImages(np.zeros((2, 4, 4, 3)), np.array([0, 1]), [], "memory")
    kinds = {"digits": "digits", str(tmp_path / "cats"): "folder", str(tmp_path / "a.npz"): "npz",
             str(tmp_path / "*.tfrecord"): "tfrecord", str(tmp_path / "b.TFREC"): "tfrecord"}
    assert {source: datasets.source_kind(source) for source in kinds} == kinds
    assert datasets.source_kind(memory) == "memory" and datasets.source_kind(tmp_path / "cats") == "folder"
    assert list(datasets.SOURCES) == ["memory", "digits", "tfrecord", "npz", "folder"]


@pytest.mark.parametrize("source, message", [
    ("{root}/missing.npz", "data file '{root}/missing.npz' does not exist"),
    ("{root}/empty", "data folder '{root}/empty' has no images"),
    ("{root}/none-*.tfrecord", "no TFRecord files match '{root}/none-*.tfrecord'"),
    ("{root}/photos", "data '{root}/photos' not found; allowed: 'digits', a folder of class sub-folders, an .npz "
                      "file, or TFRecord files (*.tfrecord, *.tfrec, a path or glob)"),
])
def test_check_source_refuses_what_load_would_refuse(tmp_path, source, message):
    (tmp_path / "empty").mkdir()
    source, message = source.format(root=tmp_path), message.format(root=tmp_path)
    for call in (datasets.check_source, lambda s: datasets.load(s, (8, 8))):
        with pytest.raises(UserError) as raised:
            call(source)
        assert str(raised.value).startswith(message), str(raised.value)


def test_check_source_is_cheap_and_loads_no_tensorflow(tmp_path):
    import subprocess
    import sys

    (tmp_path / "d.npz").write_bytes(b"not even an npz: check_source does not read it")
    script = ("import sys; from export.data.sources import check_source; "
              f"print(check_source('digits'), check_source({str(tmp_path / 'd.npz')!r}), "
              "'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["digits", "npz", "False"], done.stderr[-2000:]


def test_in_memory_images_are_a_source_validated_and_resized_like_the_others():
    memory = datasets.LabeledImages(np.full((4, 8, 8, 1), 200.0), np.array([0.0, 1.0, 1.0, 0.0]), [], "memory")
    data = datasets.load(memory, (4, 4))
    assert data.x.shape == (4, 4, 4, 3) and data.y.dtype == np.int64 and data.class_names == ["0", "1"]
    with pytest.raises(UserError, match="'memory': label 2 is out of range"):
        datasets.load(datasets.LabeledImages(memory.x, np.array([0, 1, 2, 0]), [], "memory"), (4, 4),
                      class_names=["a", "b"])


def test_normalize_applies_scale_offset_mean_std():
    spec = preprocess.make_spec((2, 2), scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = np.full((1, 2, 2, 3), 255.0, np.float32)
    assert np.allclose(preprocess.normalize(x, spec), 2.0)
    with pytest.raises(ValueError, match="lacks mean"):
        preprocess.check_spec({k: v for k, v in spec.items() if k != "mean"})


def test_metadata_round_trips_inside_the_keras_file(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    path = tmp_path / "m.keras"
    metadata.save_model(model, str(path), {"labels": ["a", "b"], "preprocessing": preprocess.make_spec((4, 4))})
    loaded, meta = metadata.load_model(str(path))
    assert meta["labels"] == ["a", "b"] and meta["schema"] == metadata.SCHEMA_VERSION
    assert np.allclose(loaded.get_layer("dense").kernel.numpy(), model.get_layer("dense").kernel.numpy())
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]  # no temp file left behind
    assert metadata.METADATA_ENTRY in zipfile.ZipFile(path).namelist()


def test_corrupt_model_file_is_a_user_error(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a valid .keras file"):
        metadata.load_model(str(path))
    with pytest.raises(UserError, match="does not exist"):
        metadata.load_model(str(tmp_path / "missing.keras"))
