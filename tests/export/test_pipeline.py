"""End-to-end export of a trained tiny ResNet: every format x precision, real converters and runtimes."""
import json
import os

import numpy as np
import pytest

from export.formats import FORMATS, FP32_SAMPLES
from export.manifest import ARTIFACT_KEYS, sha256_of
from export.pipeline import ROUND_TRIP_SAMPLES

ALL_PAIRS = [(f.name, p) for f in FORMATS.values() for p in f.precisions]


def artifact(result, format, precision):
    matches = [a for a in result.artifacts if a["format"] == format and a["precision"] == precision]
    assert len(matches) == 1, f"expected one {format} {precision} artifact, got {[a['file'] for a in matches]}"
    return matches[0]


@pytest.mark.parametrize("format,precision", ALL_PAIRS)
def test_every_format_and_precision_round_trips_and_passes_its_gate(full_export, format, precision):
    entry = artifact(full_export, format, precision)
    parity = entry["parity"]
    assert os.path.exists(os.path.join(full_export.output_dir, entry["file"]))
    assert parity["passed"], parity["failures"]
    # a .keras file is the reference saved and reloaded (a round trip); other fp32 files are checked on the
    # samples the reference noise is measured on; every other precision on the whole held-out split of digits
    expected = {"keras": ROUND_TRIP_SAMPLES}.get(format, FP32_SAMPLES if precision == "fp32" else 360)
    assert parity["samples"] == expected
    assert parity["top1_agreement"] >= parity["gate"]["min_agreement"]
    if precision == "fp32":
        assert parity["max_abs_err"] <= 1e-4 * parity["output_range"]
    if precision in ("int8", "dynamic", "int16x8"):
        assert parity["max_abs_err"] > 0  # really quantized, not a float copy
        assert parity["accuracy_drop"] <= 1.0


def test_whole_run_passes_and_writes_reports(full_export):
    assert full_export.passed
    names = set(os.listdir(full_export.output_dir))
    assert {"manifest.json", "report.json", "report.md"} <= names
    assert not any(name.startswith(".") for name in names)  # no work dir left behind
    report = json.load(open(os.path.join(full_export.output_dir, "report.json")))
    assert report["passed"] and len(report["artifacts"]) == len(ALL_PAIRS)
    assert "| tiny_int8.tflite | tflite | int8 |" in open(os.path.join(full_export.output_dir, "report.md")).read()


def test_manifest_has_every_field_and_true_hashes(full_export):
    manifest = json.load(open(os.path.join(full_export.output_dir, "manifest.json")))
    for key in ("artifacts", "source_model", "preprocessing", "labels", "data", "versions", "reference",
                "optimizations", "target_checks"):
        assert key in manifest, key
    assert manifest["labels"] == [str(d) for d in range(10)]
    assert manifest["preprocessing"]["input_size"] == [32, 32]
    assert manifest["source_model"]["sha256"] and manifest["source_model"]["name"] == "tiny"
    assert manifest["versions"]["tensorflow"] and manifest["versions"]["onnxruntime"]
    assert manifest["data"]["calibration_samples"] == 300 and manifest["data"]["verification_samples"] == 360
    for entry in manifest["artifacts"]:
        assert set(ARTIFACT_KEYS) <= set(entry)
        path = os.path.join(full_export.output_dir, entry["file"])
        assert entry["sha256"] == sha256_of(path)
        assert entry["inputs"][0]["shape"][1:] == [32, 32, 3] and entry["outputs"][0]["shape"][-1] == 10
    static = [e for e in manifest["artifacts"] if e["format"] in ("tflite", "onnx")]
    assert all(e["inputs"][0]["shape"][0] == 1 for e in static)  # static batch 1 by default


def test_onnx_files_carry_the_manifest_in_metadata_props(full_export):
    from export.converters.onnx import read_metadata

    card = json.loads(read_metadata(os.path.join(full_export.output_dir, "tiny_int8.onnx"))["reszoo_manifest"])
    assert card["precision"] == "int8" and card["labels"][3] == "3"
    assert card["preprocessing"]["scale"] == pytest.approx(1 / 255)


def test_int8_io_scales_dequantize_to_the_reference(full_export, tiny_keras_path):
    """Quantize by hand with the manifest's scale/zero point, run the raw interpreter, dequantize by hand."""
    from ai_edge_litert.interpreter import Interpreter

    from export.data import sources as datasets
    from export.core.metadata import load_model
    from export.data.preprocess import make_spec, normalize

    entry = artifact(full_export, "tflite", "int8")
    in_q, out_q = entry["inputs"][0]["quantization"], entry["outputs"][0]["quantization"]
    assert entry["inputs"][0]["dtype"] == "int8" and entry["outputs"][0]["dtype"] == "int8"
    assert in_q["scale"] == pytest.approx(1 / 255, rel=1e-3) and in_q["zero_point"] == -128  # inputs in [0, 1]
    _, held_out = datasets.split(datasets.load("digits", (32, 32)))
    x = normalize(held_out.x[:40], make_spec((32, 32)))
    model, _ = load_model(tiny_keras_path)
    reference = model.predict(x, verbose=0)
    interpreter = Interpreter(model_path=os.path.join(full_export.output_dir, entry["file"]))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for sample in x:
        q = np.clip(np.round(sample / in_q["scale"] + in_q["zero_point"]), -128, 127).astype("int8")
        interpreter.set_tensor(inp["index"], q[None])
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"]).astype("float32")
        outputs.append((raw - out_q["zero_point"]) * out_q["scale"])
    outputs = np.concatenate(outputs)
    assert np.abs(outputs - reference).max() < 0.15
    assert np.mean(outputs.argmax(-1) == reference.argmax(-1)) >= 0.95
    np.testing.assert_allclose(outputs.sum(-1), 1.0, atol=0.05)  # dequantized softmax is a distribution


def test_fp32_parity_is_on_logits_and_records_the_noise_rule(full_export):
    """The tiny model ends in a softmax: fp32 errors are on log-probabilities and the tolerance used is recorded;
    precisions gated on agreement alone compare the probabilities as they are (no error limit, no noise)."""
    from export.gates import error_limit

    noise = full_export.report["reference"]["noise"]
    for entry in full_export.artifacts:
        parity = entry["parity"]
        if entry["precision"] == "fp32":
            assert parity["compared"] == "logits" and parity["reference_noise"] == noise
            assert parity["tolerance"] == error_limit(parity["gate"], parity["noise_rel_err"]) >= 1e-4
            assert parity["max_rel_err"] <= parity["tolerance"]
        else:
            assert parity["compared"] == "outputs" and parity["reference_noise"] is None
            assert parity["tolerance"] is None  # quantized gates count flips, they do not bound the error


def test_tflite_int8_keeps_narrow_first_convs_float_unless_it_must_be_fully_int8(full_export, tiny_keras_path,
                                                                                   tmp_path):
    from export.converters.tflite import SMALL_CONV_CHANNELS, float_convs
    from export.pipeline import export_model
    from export.targets import read_graph

    result = export_model(tiny_keras_path, formats=["tflite"], precisions=["int8"], data="digits",
                          output_dir=tmp_path / "out", calibration_samples=50, verify_samples=60, latency_runs=0,
                          show_progress=False)
    entry = artifact(result, "tflite", "int8")
    path = os.path.join(result.output_dir, entry["file"])
    graph = read_graph(path)
    convs = [op for op in graph["ops"] if op["op_name"] == "CONV_2D"]
    narrow = [graph["tensors"][op["outputs"][0]]["name"] for op in convs
              if graph["tensors"][op["inputs"][1]]["shape"][0] < SMALL_CONV_CHANNELS]
    facts = entry["small_convs_float"]  # the tiny model's first stage has 8 channels
    assert facts["below_channels"] == SMALL_CONV_CHANNELS and facts["float_convs"] == float_convs(path) == narrow
    assert 0 < len(narrow) < len(convs)
    full = artifact(full_export, "tflite", "int8")  # int8 I/O: an integer-only file, every op int8
    assert "small_convs_float" not in full and float_convs(os.path.join(full_export.output_dir, full["file"])) == []
