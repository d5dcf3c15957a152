"""Nothing lost, nothing executed — data: the one validator (`export.data.sources.validate`) behind every source.

Unit cases call `load` / `load_data` directly (fast); CLI cases check the end-to-end contract on `reszoo export`
and `reszoo train`: exit 2, one `error:` line naming the file and what is allowed, no traceback, no partial
output next to --output, and every pre-existing file byte-identical.
"""
import os

import numpy as np
import pytest

from export.data import sources as datasets
from export.core.errors import UserError
from export.data.tfrecord import write_tfrecord
from reszoo.train import data as pipelines
from tests.helpers import assert_one_line_user_error, partial_leftovers, tree_sha256

DIGIT_NAMES = [str(i) for i in range(10)]
EXPORT_FLAGS = ("--format", "tflite", "--precision", "int8", "--latency-runs", "0", "--verify-samples", "20",
                "--calibration-samples", "20")
TRAIN_FLAGS = ("--epochs", "1", "--batch-size", "8", "--width", "4", "--steps-per-epoch", "1", "--image-size", "16")


# ------------------------------------------------------------------------------------------------ data makers
def pixels(n=40, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def write_npz(path, x=None, **arrays):
    """An .npz with `x` (random pixels unless given) and `y` = 0..9 cycled unless given."""
    x = pixels() if x is None else x
    arrays.setdefault("y", np.arange(len(x)) % 10)
    np.savez(path, x=x, **arrays)
    return str(path)


def with_values(values, at=((1, 0, 0, 0), (3, 2, 2, 1))):
    x = pixels()
    for index, value in zip(at, values):
        x[index] = value
    return x


def write_folder(root, classes, per_class=4, size=12):
    """root/<class>/<i>.png random RGB images; returns str(root)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for name in classes:
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return str(root)


# Bad sources: name -> (maker(tmp_path) -> source path, fragments the one-line error must hold).
BAD_NPZ = {
    "inf": (lambda p: write_npz(p / "bad.npz", with_values([np.inf, -np.inf])),
            ["bad.npz", "2 non-finite values", "allowed: finite"]),
    "nan": (lambda p: write_npz(p / "bad.npz", with_values([np.nan])), ["bad.npz", "1 non-finite value", "finite"]),
    "y=99 with 10 class names": (
        lambda p: write_npz(p / "bad.npz", y=np.r_[np.arange(39) % 10, 99], class_names=np.array(DIGIT_NAMES)),
        ["bad.npz", "label 99", "allowed: integers 0..9"]),
    "y=-1": (lambda p: write_npz(p / "bad.npz", y=np.r_[-1, np.arange(39) % 10]), ["bad.npz", "label -1", ">= 0"]),
    "len(y) != len(x)": (lambda p: write_npz(p / "bad.npz", y=np.arange(39) % 10),
                         ["bad.npz", "(39,)", "40 images", "one integer label per image"]),
    "float labels 1.5": (lambda p: write_npz(p / "bad.npz", y=np.full(40, 1.5)),
                         ["bad.npz", "label 1.5", "not a whole number", "integer labels"]),
}


def empty_class(p):
    write_folder(p / "data", ["a", "c"])
    os.makedirs(p / "data" / "b")
    return str(p / "data")


def dir_named_png(p):
    write_folder(p / "data", ["a", "b"])
    os.makedirs(p / "data" / "a" / "x.png")
    return str(p / "data")


def symlink_loop(p):
    write_folder(p / "data", ["a", "b"])
    os.symlink("loop.png", p / "data" / "a" / "loop.png")
    return str(p / "data")


BAD_FOLDERS = {
    "empty class folder": (empty_class, ["data/b", "holds no images", "allowed: at least one"]),
    "dir named x.png": (dir_named_png, ["a/x.png", "is a directory", "allowed: regular image files"]),
    "symlink loop": (symlink_loop, ["a/loop.png", "symlink loop", "allowed: regular image files"]),
}


# ------------------------------------------------------------------------------------------------ unit cases
@pytest.mark.parametrize("case", [*BAD_NPZ, *BAD_FOLDERS])
def test_every_bad_source_is_one_user_error_naming_file_and_rule(tmp_path, case):
    make, fragments = {**BAD_NPZ, **BAD_FOLDERS}[case]
    with pytest.raises(UserError) as raised:
        datasets.load(make(tmp_path), (16, 16))
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_labels_beyond_the_models_classes_are_refused_even_without_names_in_the_file(tmp_path):
    path = write_npz(tmp_path / "d.npz", y=np.r_[np.arange(39) % 10, 12])
    assert datasets.load(path, (16, 16)).class_names == [str(i) for i in range(13)]  # no names: 0..max(y)
    with pytest.raises(UserError, match=r"label 12 is out of range .*allowed: integers 0\.\.9 for the 10 class"):
        datasets.load(path, (16, 16), class_names=DIGIT_NAMES)


def test_whole_number_float_and_column_labels_are_accepted_as_int64(tmp_path):
    y = (np.arange(40) % 10).astype("float64")[:, None]
    data = datasets.load(write_npz(tmp_path / "d.npz", y=y), (16, 16))
    assert data.y.dtype == np.int64 and list(data.y[:11]) == [*range(10), 0]


def test_a_subset_of_the_models_classes_gets_the_models_indices(tmp_path):
    folder = write_folder(tmp_path, ["3", "7"])
    data = datasets.load(folder, (16, 16), class_names=DIGIT_NAMES)
    assert data.class_names == DIGIT_NAMES
    assert list(data.y) == [3] * 4 + [7] * 4
    assert list(datasets.load(folder, (16, 16)).y) == [0] * 4 + [1] * 4  # no model names: folder order


def test_npz_class_names_are_matched_by_name_to_the_models_labels(tmp_path):
    path = write_npz(tmp_path / "d.npz", y=np.arange(40) % 2, class_names=np.array(["dog", "cat"]))
    data = datasets.load(path, (16, 16), class_names=["cat", "dog", "fox"])
    assert list(data.y[:4]) == [1, 0, 1, 0]


def test_folders_the_model_does_not_know_list_the_allowed_names(tmp_path):
    folder = write_folder(tmp_path, ["cat", "dog"])
    with pytest.raises(UserError, match=r"cat, dog not among the model's labels; allowed class names: 0, 1, .*9$"):
        datasets.load(folder, (16, 16), class_names=DIGIT_NAMES)


def test_split_stays_stratified_for_a_subset_of_classes(tmp_path):
    folder = write_folder(tmp_path, ["3", "7"], per_class=10)
    _, held_out = datasets.split(datasets.load(folder, (8, 8), class_names=DIGIT_NAMES))
    assert sorted(held_out.y) == [3, 3, 7, 7]


@pytest.mark.parametrize("source", ["folder", "npz", "tfrecord", "LabeledImages"])
def test_training_needs_two_classes_from_every_source(tmp_path, source):
    one_class = datasets.LabeledImages(pixels(), np.zeros(40, "int64"), ["a"], "one-class")
    makers = {"folder": lambda: write_folder(tmp_path, ["a"]),
              "npz": lambda: write_npz(tmp_path / "d.npz", y=np.zeros(40, "int64")),
              "tfrecord": lambda: write_tfrecord(one_class, str(tmp_path / "d.tfrecord"))
              or str(tmp_path / "d.tfrecord"),
              "LabeledImages": lambda: one_class}
    with pytest.raises(UserError, match=r"1 class\(es\) \(.*\); allowed: at least 2 classes for training"):
        pipelines.load_data(makers[source](), (16, 16))


def test_in_memory_and_tfrecord_sources_get_the_same_pixel_check(tmp_path):
    bad = datasets.LabeledImages(with_values([np.nan, np.nan]), np.arange(40) % 10, DIGIT_NAMES, "memory")
    with pytest.raises(UserError, match="'memory': x holds 2 non-finite values"):
        pipelines.load_data(bad, (16, 16))


def test_held_image_variety_still_loads(tmp_path):
    """Grayscale, RGBA, JPEG bytes under a .png name and mixed sizes all decode to RGB at the asked size."""
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(np.full((10, 14), 90, np.uint8)).save(tmp_path / "a" / "gray.png")
    Image.fromarray(np.full((20, 20, 4), 40, np.uint8)).save(tmp_path / "a" / "rgba.png")
    Image.fromarray(np.full((9, 9, 3), 200, np.uint8)).save(tmp_path / "b" / "jpeg.png", format="JPEG")
    Image.fromarray(np.full((31, 17, 3), 10, np.uint8)).save(tmp_path / "b" / "rgb.png")
    data = datasets.load(str(tmp_path), (16, 16))
    assert data.x.shape == (4, 16, 16, 3) and list(data.y) == [0, 0, 1, 1]


@pytest.mark.parametrize("arrays, message", [({}, "no array 'x'"), ({"x": np.array([object()] * 2)}, "cannot read")])
def test_held_empty_and_object_npz_are_user_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(UserError, match=message):
        datasets.load(str(tmp_path / "d.npz"), (16, 16))


# ------------------------------------------------------------------------------------------------ CLI cases
@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny untrained resnet20 (width 4, 32x32, 10 classes) with labels "0".."9" and a preprocessing spec."""
    import reszoo
    from export.core.metadata import save_model
    from export.data.preprocess import make_spec

    model = reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10)
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    save_model(model, path, {"model_name": "tiny", "labels": DIGIT_NAMES, "preprocessing": make_spec((32, 32))})
    return path


def assert_refused_cleanly(run_cli, tmp_path, args, fragments):
    """Run `reszoo ARGS` in `tmp_path` (which holds the inputs); one-line exit 2, nothing added or changed."""
    os.makedirs(tmp_path / "out", exist_ok=True)
    (tmp_path / "out" / "keep.txt").write_text("pre-existing")
    before = tree_sha256(tmp_path)
    result = run_cli(*args)
    assert_one_line_user_error(result, *fragments)
    assert partial_leftovers(tmp_path / "out") == []
    assert tree_sha256(tmp_path) == before


CLI_EXPORT_CASES = ["inf", "nan", "y=99 with 10 class names", "len(y) != len(x)", "dir named x.png", "symlink loop",
                    "empty class folder"]


@pytest.mark.parametrize("case", CLI_EXPORT_CASES)
def test_export_refuses_bad_data_before_converting(run_cli, tmp_path, model_path, case):
    make, fragments = {**BAD_NPZ, **BAD_FOLDERS}[case]
    args = ("export", model_path, *EXPORT_FLAGS, "--data", make(tmp_path), "--output", tmp_path / "out" / "o")
    assert_refused_cleanly(run_cli, tmp_path, args, fragments)


def test_export_refuses_folders_that_are_not_the_models_classes(run_cli, tmp_path, model_path):
    folder = write_folder(tmp_path / "data", ["cat", "dog"], per_class=6, size=32)
    args = ("export", model_path, *EXPORT_FLAGS, "--data", folder, "--output", tmp_path / "out" / "o")
    assert_refused_cleanly(run_cli, tmp_path, args, ["data", "cat, dog", "allowed class names: 0, 1, 2"])


@pytest.mark.parametrize("case", ["nan", "single class folder"])
def test_train_refuses_bad_data_before_training(run_cli, tmp_path, case):
    makers = {"nan": (lambda: write_npz(tmp_path / "bad.npz", with_values([np.nan])), ["bad.npz", "non-finite"]),
              "single class folder": (lambda: write_folder(tmp_path / "data", ["a"], per_class=20),
                                      ["data", "1 class(es) (a)", "at least 2 classes"])}
    make, fragments = makers[case]
    args = ("train", "resnet20", "--data", make(), *TRAIN_FLAGS, "--output", tmp_path / "out" / "run")
    assert_refused_cleanly(run_cli, tmp_path, args, fragments)
