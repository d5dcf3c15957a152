"""`--raw-input` (export.raw_input): artifacts take uint8 pixels with the model's preprocessing in their graph.

The model under test is the trained tiny digits ResNet (`tiny_keras_path`, trained on pixels / 255) behind a stock
`Rescaling(std, mean)` layer, with an ImageNet spec (scale 1/255, ImageNet mean/std): the same trained function,
but one whose input is only right when mean and std are applied, so a baking mistake shows in parity.
"""
import json
import shutil

import numpy as np
import pytest

from export.core.errors import UserError
from export.request import ExportRequest

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RAW_FILES = ("tiny_fp32.tflite", "tiny_int8.tflite", "tiny_fp32.onnx", "tiny_int8.onnx")
CONFIDENT = 0.5  # top-1 minus top-2 probability of the Keras model; int8 moves probabilities by < 0.05 here


@pytest.fixture(scope="module")
def imagenet_keras_path(tiny_keras_path, tmp_path_factory):
    """The trained tiny model taking ImageNet-normalized input (Rescaling undoes mean/std), with that spec."""
    import keras

    from export.core.metadata import load_model, save_model
    from export.data.preprocess import make_spec

    trained, metadata = load_model(tiny_keras_path)
    spec = make_spec((32, 32), scale=1 / 255, mean=MEAN, std=STD)
    inputs = keras.Input((32, 32, 3), name="image")
    model = keras.Model(inputs, trained(keras.layers.Rescaling(scale=list(STD), offset=list(MEAN))(inputs)))
    path = tmp_path_factory.mktemp("imagenet") / "tiny.keras"
    save_model(model, str(path), {**metadata, "preprocessing": spec})
    return str(path)


@pytest.fixture(scope="module")
def raw_export(imagenet_keras_path, tmp_path_factory):
    """ExportResult of --raw-input to .keras + TFLite/ONNX fp32 and int8 on held-out digits."""
    from export.pipeline import export_model

    return export_model(imagenet_keras_path, formats=["keras", "tflite", "onnx"], precisions=["fp32", "int8"],
                        data="digits", output_dir=tmp_path_factory.mktemp("raw") / "export", raw_input=True,
                        calibration_samples=200, latency_runs=0, threads=1, show_progress=False)


def entries(result):
    return {a["file"]: a for a in result.manifest["artifacts"]}


def test_raw_artifacts_take_uint8_pixels_and_pass_their_gates(raw_export):
    artifacts = entries(raw_export)
    assert raw_export.passed, {f: a["parity"]["failures"] for f, a in artifacts.items()}
    for file in RAW_FILES:
        tensor, = artifacts[file]["inputs"]
        assert tensor["dtype"] == "uint8" and tensor["shape"] == [1, 32, 32, 3], (file, tensor)
        assert tensor["quantization"] in (None, {"scale": 1.0, "zero_point": 0}), (file, tensor)  # pixels unchanged
    assert artifacts["tiny_int8.tflite"]["inputs"][0]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert artifacts["tiny.keras"]["inputs"][0]["dtype"] == "float32"  # .keras stays float, and says so
    assert artifacts["tiny_int8.onnx"]["parity"]["top1_agreement"] >= 0.98  # the gate, restated: real int8 parity


def test_the_manifest_states_each_input_contract(raw_export):
    artifacts, spec = entries(raw_export), raw_export.manifest["preprocessing"]
    for file in RAW_FILES:
        assert artifacts[file]["input"] == {
            "dtype": "uint8", "range": [0, 255], "layout": "NHWC", "size": [32, 32], "channels": 3,
            "preprocessing": "in the graph", "spec": {k: spec[k] for k in ("scale", "offset", "mean", "std")}}
    assert artifacts["tiny.keras"]["input"]["dtype"] == "float32"
    assert artifacts["tiny.keras"]["input"]["preprocessing"].startswith("by the caller")
    assert raw_export.manifest["options"]["raw_input"] is True and spec["mean"] == list(MEAN)
    from export.converters.onnx import read_metadata

    card = json.loads(read_metadata(f"{raw_export.output_dir}/tiny_int8.onnx")["reszoo_manifest"])
    assert card["input"] == artifacts["tiny_int8.onnx"]["input"]


def test_int8_tflite_is_integer_only_from_the_pixel_input_on(raw_export):
    """uint8 pixels -> QUANTIZE (uint8 -> int8) -> int8 ops: no CAST and no float tensor inside the graph."""
    from export.targets import check_tflite, read_graph

    path = f"{raw_export.output_dir}/tiny_int8.tflite"
    entry = next(a for a in raw_export.artifacts if a["file"] == "tiny_int8.tflite")
    assert "small_convs_float" not in entry  # the pinned pixel input keeps every op int8 (tflite_raw)
    graph = read_graph(path)
    first = graph["ops"][0]
    assert first["op_name"] == "QUANTIZE" and first["inputs"][0] in graph["inputs"]
    assert "CAST" not in {op["op_name"] for op in graph["ops"]}
    assert check_tflite(path, "edgetpu")["passed"]
    fp32_ops = [op["op_name"] for op in read_graph(f"{raw_export.output_dir}/tiny_fp32.tflite")["ops"]]
    assert fp32_ops[0] == "CAST"  # uint8 -> float32, then the normalize ops


def test_verify_passes_on_the_export_dir(raw_export):
    from export.verify import verify_export_dir

    result = verify_export_dir(raw_export.output_dir, latency_runs=0, samples=120)
    assert result["passed"] and {a["file"] for a in result["artifacts"]} == {*RAW_FILES, "tiny.keras"}


@pytest.fixture(scope="module")
def png_files(tmp_path_factory):
    """Held-out digits written as 32x32 RGB PNG files (exact pixels)."""
    from PIL import Image

    from export.data import sources

    held_out = sources.split(sources.load("digits", (32, 32)))[1]
    folder = tmp_path_factory.mktemp("png")
    paths = []
    for index in range(24):
        paths.append(str(folder / f"{index}.png"))
        Image.fromarray(held_out.x[index].round().clip(0, 255).astype("uint8")).save(paths[-1])
    return paths


def keras_on_png(model_path, paths):
    """The Keras model's probabilities on PNG files preprocessed independently of export (PIL + numpy)."""
    from PIL import Image

    from export.core.metadata import load_model

    model, _ = load_model(model_path)
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype="float32") for p in paths])
    return model.predict((pixels / 255.0 - np.array(MEAN, "float32")) / np.array(STD, "float32"), verbose=0)


@pytest.mark.parametrize("file", RAW_FILES)
def test_predict_feeds_raw_artifacts_pixels_and_matches_keras(raw_export, imagenet_keras_path, png_files, file):
    from export.predict import predict

    reference = keras_on_png(imagenet_keras_path, png_files)
    results = predict(f"{raw_export.output_dir}/{file}", png_files, top_k=10)
    probabilities = np.zeros_like(reference)
    for row, result in zip(probabilities, results):
        for entry in result["top_k"]:
            row[entry["index"]] = entry["probability"]
    ordered = np.sort(reference, -1)
    confident = ordered[:, -1] - ordered[:, -2] > CONFIDENT
    assert confident.sum() >= 12  # trained: the comparison is not vacuous
    assert (probabilities.argmax(-1) == reference.argmax(-1))[confident].all()
    if "fp32" in file:
        np.testing.assert_allclose(probabilities, reference, atol=1e-4)


def test_a_graph_without_mean_and_std_fails_parity(raw_export, tmp_path):
    """The gate can fail: a TFLite file whose baked preprocessing skips mean/std (pixels / 255 only), put in
    place of the fp32 file (sha256 updated), fails `verify` while the correctly baked files pass."""
    from export.converters import tflite_raw
    from export.data.preprocess import make_spec
    from export.manifest import sha256_of
    from export.raw_input import bake
    from export.serving_graph import to_saved_model
    from export.core.metadata import load_model
    from export.verify import verify_export_dir

    model, _ = load_model(f"{raw_export.output_dir}/tiny.keras")
    traced = to_saved_model(model, tmp_path / "saved_model")["path"]
    wrong = bake(traced, make_spec((32, 32), scale=1 / 255), str(tmp_path))  # mean 0, std 1: not applied
    export_dir = tmp_path / "export"
    shutil.copytree(raw_export.output_dir, export_dir)
    (export_dir / "tiny_fp32.tflite").write_bytes(tflite_raw.convert(wrong, "fp32"))
    manifest = json.loads((export_dir / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"] == "tiny_fp32.tflite")
    entry["sha256"] = sha256_of(export_dir / "tiny_fp32.tflite")
    (export_dir / "manifest.json").write_text(json.dumps(manifest))
    result = verify_export_dir(export_dir, latency_runs=0, samples=120)
    parity = {a["file"]: a["parity"] for a in result["artifacts"]}
    assert not result["passed"] and not parity["tiny_fp32.tflite"]["passed"]
    assert parity["tiny_fp32.tflite"]["top1_agreement"] < 0.9 and parity["tiny_fp32.onnx"]["passed"]


def test_a_saved_model_source_gets_a_uint8_graph_too(raw_export, tmp_path):
    """Baking wraps the traced graph, so a SavedModel dir (no Keras model) exports with uint8 input as well."""
    from export.core.metadata import load_model
    from export.pipeline import export_model
    from export.serving_graph import to_saved_model

    model, _ = load_model(f"{raw_export.output_dir}/tiny.keras")
    source = to_saved_model(model, tmp_path / "source")["path"]
    result = export_model(source, formats=["tflite"], precisions=["int8"], data="digits", raw_input=True,
                          output_dir=tmp_path / "export", calibration_samples=100, verify_samples=60,
                          latency_runs=0, show_progress=False)
    artifact, = result.artifacts
    assert artifact["inputs"][0]["dtype"] == "uint8" and artifact["input"]["preprocessing"] == "in the graph"
    assert result.manifest["reference"]["format"] == "saved_model" and "top1_agreement" in artifact["parity"]


def test_request_refuses_raw_input_without_a_pixel_artifact():
    with pytest.raises(UserError, match="--format keras alone stays float"):
        ExportRequest.build(formats=["keras"], raw_input=True)
    assert ExportRequest.build(formats=["tflite"], precisions=["int8"], int8_io=True, raw_input=True).raw_input


def test_cli_refusal_is_one_line(run_cli):
    from tests.helpers import assert_one_line_user_error

    assert_one_line_user_error(run_cli("export", "--format", "keras", "--raw-input"), "--raw-input", "keras")


def test_runners_feed_pixels_to_uint8_inputs_and_float_elsewhere():
    from export.runtimes import feed_for

    x = np.array([[0.0, 12.0, 254.6, 255.0]], dtype="float32")
    assert feed_for(x, {"dtype": "uint8", "quantization": None}).tolist() == [[0, 12, 255, 255]]
    assert feed_for(x, {"dtype": "uint8", "quantization": {"scale": 1.0, "zero_point": 0}}).tolist() == [[0, 12, 255, 255]]
    assert feed_for(x, {"dtype": "float32", "quantization": None}).dtype == np.float32
    int8 = feed_for(x / 255, {"dtype": "int8", "quantization": {"scale": 1 / 255, "zero_point": -128}})
    assert int8.dtype == np.int8 and int8.tolist() == [[-128, -116, 127, 127]]


@pytest.mark.slow
def test_every_precision_takes_pixels_with_int8_io_and_a_dynamic_batch(imagenet_keras_path, tmp_path):
    """TFLite fp16/dynamic/int16x8, ONNX dynamic and the SavedModel too; --int8-io gives TFLite int8 an int8 output
    (the input stays uint8 pixels); a dynamic batch keeps the uint8 input; `verify --trust` re-runs them all."""
    from export.pipeline import export_model
    from export.verify import verify_export_dir

    result = export_model(imagenet_keras_path, formats=["keras", "saved_model", "tflite", "onnx"],  # all but micro
                          precisions=["fp32", "fp16", "dynamic", "int8", "int16x8"], data="digits",
                          output_dir=tmp_path / "export",
                          raw_input=True, int8_io=True, dynamic_batch=True, calibration_samples=200,
                          latency_runs=0, show_progress=False)
    artifacts = entries(result)
    assert result.passed, {f: a["parity"]["failures"] for f, a in artifacts.items()}
    for file, entry in artifacts.items():
        pixels = entry["format"] != "keras"
        assert (entry["inputs"][0]["dtype"] == "uint8") == pixels and (entry["input"]["dtype"] == "uint8") == pixels
        assert entry["inputs"][0]["shape"][0] == -1, file
    assert artifacts["tiny_int8.tflite"]["outputs"][0]["dtype"] == "int8"
    assert artifacts["tiny_int8.tflite"]["inputs"][0]["quantization"] == {"scale": 1.0, "zero_point": 0}
    verified = verify_export_dir(tmp_path / "export", latency_runs=0, samples=120, trust=True)
    assert verified["passed"] and len(verified["artifacts"]) == len(artifacts)
