"""`export.predict`: a trained tiny model exported once (keras + TFLite/ONNX fp32/int8, TFLite int8 with int8 I/O),
run on held-out digits written as PNG/JPEG files (RGB, grayscale, RGBA, another size)."""
import json
import shutil

import numpy as np
import pytest

from export.core.errors import UserError
from export.predict import as_probabilities, choose_artifact, predict, top_k

# file name -> (PIL mode, size to save at or None for 32x32); JPEG is lossy, PNG is exact
IMAGES = {"rgb.png": ("RGB", None), "gray.png": ("L", None), "rgba.png": ("RGBA", None), "rgb.jpg": ("RGB", None),
          "gray.jpg": ("L", None), "big.png": ("RGB", (45, 51))}


@pytest.fixture(scope="module")
def predict_export(tiny_keras_path, tmp_path_factory):
    """Export dir of the trained tiny model: keras, TFLite and ONNX at fp32 and int8 (TFLite int8 with int8 I/O)."""
    from export.pipeline import export_model

    output_dir = tmp_path_factory.mktemp("predict") / "export"
    export_model(tiny_keras_path, formats=["keras", "tflite", "onnx"], precisions=["fp32", "int8"], data="digits",
                 output_dir=output_dir, int8_io=True, calibration_samples=100, verify_samples=64, latency_runs=0,
                 threads=1, show_progress=False)
    return output_dir


@pytest.fixture(scope="module")
def held_out():
    """The held-out digits at 32x32."""
    from export.data import sources

    return sources.split(sources.load("digits", (32, 32)))[1]


@pytest.fixture(scope="module")
def image_files(held_out, tmp_path_factory):
    """{name: path} of held-out digits 0, 1, 2, ... saved as IMAGES says (RGBA: alpha 100: dropped, not blended)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for digit, (name, (mode, size)) in enumerate(IMAGES.items()):
        first = np.flatnonzero(held_out.y == digit)[0]
        image = Image.fromarray(held_out.x[first].round().clip(0, 255).astype("uint8")).convert(mode)
        if mode == "RGBA":
            image.putalpha(100)
        (image.resize(size, Image.BILINEAR) if size else image).save(folder / name)
        paths[name] = str(folder / name)
    return paths


def expected_inputs(paths, spec):
    """Model inputs made independently of export.predict: TF decode (RGB), TF antialiased bilinear resize, spec."""
    import tensorflow as tf

    from export.data.preprocess import normalize

    rows = []
    for path in paths:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        resized = tf.image.resize(tf.cast(image, tf.float32)[None], spec["input_size"], antialias=True)
        rows.append(normalize(resized.numpy(), spec)[0])
    return np.stack(rows).astype("float32")


@pytest.fixture(scope="module")
def keras_reference(tiny_keras_path, image_files):
    """Softmax outputs of the Keras model on the independently preprocessed image files."""
    from export.core.metadata import load_model

    model, metadata = load_model(tiny_keras_path)
    reference = model.predict(expected_inputs(list(image_files.values()), metadata["preprocessing"]), verbose=0)
    assert (reference.argmax(-1) == np.arange(len(IMAGES))).mean() >= 5 / 6  # trained: top-1 checks are not vacuous
    return reference


def probabilities_of(results, classes=10):
    """(N, classes) probability matrix from predict results with top_k >= classes."""
    out = np.zeros((len(results), classes))
    for row, result in zip(out, results):
        for entry in result["top_k"]:
            row[entry["index"]] = entry["probability"]
    return out


def test_rgba_alpha_is_dropped_and_gray_expanded(image_files):
    """The decoder the loaders use gives RGB pixels equal to PIL's RGB view (alpha dropped, gray repeated)."""
    import tensorflow as tf
    from PIL import Image

    for name in ("rgb.png", "gray.png", "rgba.png"):
        decoded = tf.io.decode_image(tf.io.read_file(image_files[name]), channels=3).numpy()
        np.testing.assert_array_equal(decoded, np.asarray(Image.open(image_files[name]).convert("RGB")))


@pytest.mark.parametrize("target, options", [("tiny.keras", {}), ("tiny_fp32.tflite", {}), ("tiny_fp32.onnx", {}),
                                             ("", {"precision": "fp32"}), ("", {"artifact_name": "tiny.keras"})])
def test_fp32_artifacts_match_keras_on_the_same_pixels(predict_export, image_files, keras_reference, target, options):
    results = predict(str(predict_export / target) if target else str(predict_export), list(image_files.values()),
                      top_k=10, **options)
    assert [r["image"] for r in results] == list(image_files.values())
    probabilities = probabilities_of(results)
    np.testing.assert_allclose(probabilities, keras_reference, atol=1e-4)
    assert (probabilities.argmax(-1) == keras_reference.argmax(-1)).all()


def test_default_is_the_best_passing_int8_and_its_dequantized_outputs_sum_to_one(predict_export, image_files,
                                                                                 keras_reference):
    chosen = choose_artifact(str(predict_export))
    assert chosen.precision == "int8" and chosen.format in ("tflite", "onnx") and "default" in chosen.reason
    results = predict(str(predict_export), list(image_files.values()), top_k=10)
    probabilities = probabilities_of(results)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
    assert (probabilities.argmax(-1) == keras_reference.argmax(-1)).mean() >= 5 / 6


def test_int8_io_tflite_is_quantized_and_dequantized(predict_export, image_files, keras_reference):
    from export.runtimes import load_runner

    path = predict_export / "tiny_int8.tflite"
    runner = load_runner(path, "tflite", threads=1)
    assert runner.inputs[0]["quantization"] and runner.outputs[0]["quantization"]  # int8 I/O
    probabilities = probabilities_of(predict(str(path), list(image_files.values()), top_k=10))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
    assert np.abs(probabilities - keras_reference).max() < 0.1
    assert (probabilities.argmax(-1) == keras_reference.argmax(-1)).mean() >= 5 / 6


def test_top_k_is_ordered_labelled_and_capped(predict_export, image_files):
    result, = predict(str(predict_export / "tiny_fp32.onnx"), [image_files["rgb.png"]], top_k=3)
    probabilities = [entry["probability"] for entry in result["top_k"]]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert all(entry["label"] == str(entry["index"]) for entry in result["top_k"])  # digits' labels are "0".."9"
    capped, = predict(str(predict_export / "tiny_fp32.onnx"), [image_files["rgb.png"]], top_k=50)
    assert sorted(entry["index"] for entry in capped["top_k"]) == list(range(10))


def test_bad_images_get_an_error_and_the_others_are_still_predicted(predict_export, image_files, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    images = [image_files["rgb.png"], str(corrupt), str(tmp_path / "missing.png"), str(text), image_files["gray.jpg"]]
    results = predict(str(predict_export / "tiny_fp32.tflite"), images, top_k=2)
    assert [r["image"] for r in results] == images
    assert ["top_k" in r for r in results] == [True, False, False, False, True]
    assert "does not exist" in results[2]["error"] and "not a readable image" in results[1]["error"]


def test_logits_get_a_softmax_and_quantized_probabilities_are_kept():
    logits = np.array([[2.0, 1.0, -3.0]])
    np.testing.assert_allclose(as_probabilities(logits), np.exp(logits) / np.exp(logits).sum())
    rounded = np.array([[0.5, 0.49, 0.0]])  # an int8 softmax: each class rounded to 1/256
    np.testing.assert_allclose(as_probabilities(rounded, "int8"), rounded / rounded.sum())
    assert top_k(np.array([0.2, 0.5, 0.3]), ["a"], 2) == [{"label": "1", "index": 1, "probability": 0.5},
                                                         {"label": "2", "index": 2, "probability": 0.3}]


@pytest.mark.parametrize("options, fragments", [({"precision": "fp16"}, ("'fp16'", "tiny_int8.onnx (onnx int8)")),
                                                ({"artifact_name": "nope.onnx"}, ("'nope.onnx'", "tiny.keras"))])
def test_unknown_choice_lists_the_manifest(predict_export, image_files, options, fragments):
    with pytest.raises(UserError) as raised:
        choose_artifact(str(predict_export), **options)
    assert "\n" not in str(raised.value) and all(f in str(raised.value) for f in fragments)


def test_a_file_no_manifest_lists_is_refused(predict_export, tmp_path):
    shutil.copy(predict_export / "tiny_fp32.tflite", tmp_path / "alone.tflite")
    with pytest.raises(UserError, match="not listed in a manifest.json"):
        choose_artifact(str(tmp_path / "alone.tflite"))
    shutil.copytree(predict_export, tmp_path / "export")
    shutil.copy(predict_export / "tiny_fp32.tflite", tmp_path / "export" / "extra.tflite")
    with pytest.raises(UserError, match="not listed in a manifest.json"):
        choose_artifact(str(tmp_path / "export" / "extra.tflite"))


def test_a_tampered_dir_runs_nothing(predict_export, tmp_path):
    shutil.copytree(predict_export, tmp_path / "export")
    path = tmp_path / "export" / "tiny_fp32.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    for target in (tmp_path / "export", path):
        with pytest.raises(UserError, match="integrity check.*tiny_fp32.onnx: sha256 mismatch"):
            choose_artifact(str(target))


def test_saved_model_artifacts_are_not_run(predict_export, image_files, tmp_path):
    from tests.helpers import add_saved_model_artifact

    shutil.copytree(predict_export, tmp_path / "export")
    sentinel = tmp_path / "written"
    add_saved_model_artifact(tmp_path / "export", sentinel)
    with pytest.raises(UserError, match="saved_model is not run: SavedModel"):
        predict(str(tmp_path / "export"), [image_files["rgb.png"]], artifact_name="saved_model")
    assert choose_artifact(str(tmp_path / "export"), precision="fp32").format != "saved_model"
    assert not sentinel.exists()
    assert json.loads((tmp_path / "export" / "manifest.json").read_text())["artifacts"][-1]["format"] == "saved_model"
