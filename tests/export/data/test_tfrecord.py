"""TFRecord files as an `export.data.sources` kind: written and read back, refused in one line, and accepted by
every consumer through the one `load`: a model trained on TFRecords exports with its recorded source."""
import json
import subprocess
import sys

import numpy as np
import pytest

from export.core.errors import UserError
from export.data import sources, tfrecord


def labeled(count=12, size=16, classes=3, seed=0):
    x = np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype("float32")
    return sources.LabeledImages(x, np.arange(count) % classes, [str(c) for c in range(classes)], "synthetic")


def test_written_examples_read_back_at_the_asked_size(tmp_path):
    images = labeled()
    tfrecord.write_tfrecord(images.take(np.arange(6)), tmp_path / "part-0.tfrecord")
    tfrecord.write_tfrecord(images.take(np.arange(6, 12)), tmp_path / "part-1.tfrecord")
    x, y = tfrecord.read(str(tmp_path / "part-*.tfrecord"), (16, 16))
    np.testing.assert_array_equal(y, images.y)
    np.testing.assert_allclose(x, images.x, atol=0.5)  # PNG keeps whole pixel values
    assert tfrecord.read(str(tmp_path / "part-0.tfrecord"), (8, 8), channels=1)[0].shape == (6, 8, 8, 1)


def test_load_validates_tfrecord_labels_against_the_models_names(tmp_path):
    tfrecord.write_tfrecord(labeled(classes=4), tmp_path / "d.tfrecord")
    data = sources.load(str(tmp_path / "d.tfrecord"), (8, 8), class_names=list("abcd"))
    assert data.x.shape == (12, 8, 8, 3) and data.class_names == list("abcd")
    assert data.source == str(tmp_path / "d.tfrecord")
    with pytest.raises(UserError, match=r"d.tfrecord': label 3 is out of range .* allowed: integers 0..2"):
        sources.load(str(tmp_path / "d.tfrecord"), (8, 8), class_names=list("abc"))


@pytest.mark.parametrize("content, message", [
    (b"", "hold no examples"),
    (b"this is not a tfrecord file", "as TFRecord of (image, label)"),
])
def test_unreadable_or_empty_files_are_one_line_user_errors(tmp_path, content, message):
    (tmp_path / "bad.tfrecord").write_bytes(content)
    with pytest.raises(UserError) as raised:
        sources.load(str(tmp_path / "bad.tfrecord"), (8, 8))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_check_matches_files_without_reading_them(tmp_path):
    (tmp_path / "a.tfrec").write_bytes(b"unread")
    assert tfrecord.check(str(tmp_path / "*.tfrec")) == [str(tmp_path / "a.tfrec")]
    assert sources.check_source(str(tmp_path / "*.tfrec")) == "tfrecord"
    with pytest.raises(UserError, match="no TFRecord files match"):
        tfrecord.check(str(tmp_path / "*.tfrecord"))


def test_model_trained_on_tfrecords_exports_with_its_recorded_source(tmp_path, run_cli):
    """Before the one source table, `reszoo export` refused the recorded 'data/*.tfrecord' (exit 2)."""
    (tmp_path / "data").mkdir()
    tfrecord.write_tfrecord(sources.load("digits", (16, 16)), tmp_path / "data" / "digits.tfrecord")
    trained = run_cli("train", "resnet20", "--data", "data/*.tfrecord", "--width", "4", "--image-size", "16",
                      "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--output", "RUN", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (tmp_path / "elsewhere").mkdir()  # the recorded source is absolute: export works from any folder
    exported = run_cli("export", tmp_path / "RUN" / "final.keras", "--format", "tflite", "--precision", "fp32",
                       "--latency-runs", "0", "--verify-samples", "10", "--output", tmp_path / "OUT",
                       cwd=tmp_path / "elsewhere")
    assert exported.returncode == 0, exported.stderr[-3000:]
    glob_path = str(tmp_path / "data" / "*.tfrecord")
    assert f"calibrating and verifying on {glob_path!r}" in " ".join(exported.stderr.split())  # rich wraps lines
    assert json.loads((tmp_path / "OUT" / "manifest.json").read_text())["data"]["source"] == glob_path


def test_train_help_names_tfrecord_sources():
    done = subprocess.run([sys.executable, "-m", "reszoo", "train", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "TFRecord files ('DIR/*.tfrecord'" in " ".join(done.stdout.split())
