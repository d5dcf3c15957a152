"""Per-layer quantization report on real conversions of the tiny trained ResNet and its x1000 rescaled copy.

Here (not under tests/export/) because it shares the session's `trained_resnet` and the rescaled copy helpers.
Thresholds: a healthy int8/int16x8 layer of this model measures 35-45 dB alone, a layer whose input lost all
but one channel to a x1000 range -2..+8 dB; the plain model's output 30-35 dB (TFLite int8, ONNX QDQ; 19.5 dB
with the 7-bit weights of ONNX x86-avx2), the rescaled copy's below 0 dB. The report's numbers do not depend on
the CPU's int8 instructions: TFLite's builtin int8 kernels compute exact int32 sums and fixed-point
requantization, and the ONNX QDQ graph runs literally (QuantizeLinear, float ops, DequantizeLinear: no U8S8
VPMADDUBSW path on AVX2), so AVX2-only and AVX-512 VNNI CPUs differ at most by float rounding inside a float
conv (far below 0.1 dB).
"""
import math
import os

import numpy as np
import pytest

from export.core.errors import UserError
from export.onnx_targets import TARGETS, default_target
from export.quantreport import (REPORT_JSON, REPORT_MD, REPORT_PNG, layer_report, worst_layers, worst_layers_line,
                                write_quant_report)
from tests.export.optimize.rescaled import rescaled_chains, rescaled_copy
from tests.helpers import partial_leftovers

SAMPLES = 64
HEALTHY_OUTPUT_DB = 25.0  # 8-bit weights: measured 30.5-35.4 dB on the plain model (TFLite, ONNX int8/dynamic)
# ONNX int8 for x86-avx2 has 7-bit weights (reduce_range, so VPMADDUBSW cannot saturate): measured 19.5 dB on the
# same model where its 8-bit twins (x86-vnni, arm) measure 30.5 dB; the report runs the QDQ graph literally, so
# the figure is the file's, not the host CPU's
HEALTHY_7BIT_OUTPUT_DB = 15.0
BROKEN_LAYER_DB = 10.0  # a layer fed one surviving channel: -2..+8 dB; healthy layers: >= 35 dB
GAP_DB = 20.0  # between the worst healthy row and the best rescaled one (measured ~28-37 dB)


def _artifacts(model, folder, calibration):
    """{(format, precision): path} of `model` converted by the existing converters (fp32 = the float reference)."""
    from export.converters import onnx as onnx_converter
    from export.converters import tflite
    from export.serving_graph import to_saved_model

    saved_model = os.path.join(folder, "saved_model")
    to_saved_model(model, saved_model)
    paths = {}
    for precision in ("fp32", "int8", "int16x8", "dynamic"):
        paths["tflite", precision] = os.path.join(folder, f"m_{precision}.tflite")
        with open(paths["tflite", precision], "wb") as handle:
            handle.write(tflite.convert(saved_model, precision, calibration))
    paths["onnx", "fp32"] = onnx_converter.to_onnx(saved_model, os.path.join(folder, "m_fp32.onnx"))
    paths["onnx", "int8"] = onnx_converter.quantize_int8(paths["onnx", "fp32"], os.path.join(folder, "m_int8.onnx"),
                                                         calibration)
    paths["onnx", "dynamic"] = onnx_converter.quantize_dynamic(paths["onnx", "fp32"],
                                                               os.path.join(folder, "m_dynamic.onnx"))
    return paths


@pytest.fixture(scope="module")
def converted(trained_resnet, digits, tmp_path_factory):
    """Artifacts of the trained model ("plain") and of its rescaled copy ("rescaled"), plus the chains."""
    calibration = digits[0][:300]
    chains = rescaled_chains(trained_resnet)
    copy = rescaled_copy(trained_resnet, chains)
    return {"plain": _artifacts(trained_resnet, str(tmp_path_factory.mktemp("plain")), calibration),
            "rescaled": _artifacts(copy, str(tmp_path_factory.mktemp("rescaled")), calibration),
            "chains": chains, "layer_names": [layer.name for layer in trained_resnet.layers],
            "samples": calibration[:SAMPLES], "reports": {}}


def report_of(converted, which, fmt, precision, names=True):
    """The report of one artifact (computed once per module: several tests read the same one)."""
    key = (which, fmt, precision, names)
    if key not in converted["reports"]:
        paths = converted[which]
        converted["reports"][key] = layer_report(paths[fmt, "fp32"], paths[fmt, precision], fmt,
                                                 converted["samples"],
                                                 layer_names=converted["layer_names"] if names else None)
    return converted["reports"][key]


ACTIVATION_TYPES = {"tflite": "int8", "onnx": TARGETS[default_target()].activations}  # ONNX: this host's target


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("names", [True, False], ids=["with-layer-names", "from-scopes-alone"])
def test_rows_are_named_by_layers_of_the_model(converted, fmt, names):
    report = report_of(converted, "plain", fmt, "int8", names=names)
    model_layers = set(converted["layer_names"])
    assert len(report["rows"]) >= 12  # 7 convs, 3 adds, dense, softmax at least
    for row in report["rows"]:
        assert row["layers"] and set(row["layers"]) <= model_layers, row
        assert row["layer"] in row["layers"]
        assert row["dtype"] == ACTIVATION_TYPES[fmt] and isinstance(row["scale"], float)
        assert row["float_min"] <= row["float_max"]
    convs = {name for name in model_layers if name.endswith("_conv")}
    assert convs <= {layer for row in report["rows"] for layer in row["layers"]}  # every conv has its row


@pytest.mark.parametrize("fmt, precision", [("tflite", "int8"), ("tflite", "int16x8"), ("onnx", "int8"),
                                            ("onnx", "dynamic")])
def test_the_rescaled_layers_rank_first(converted, fmt, precision):
    """The three convs that read a x1000 channel are the three first rows, far below every other row."""
    report = report_of(converted, "rescaled", fmt, precision)
    consumers = {consumer for _, consumer in converted["chains"]}
    first = report["rows"][:3]
    assert {c for row in first for c in row["layers"] if c in consumers} == consumers, first
    assert all(row["sqnr_db"] < BROKEN_LAYER_DB for row in first)
    assert report["rows"][3]["sqnr_db"] - first[-1]["sqnr_db"] > GAP_DB
    assert set(worst_layers(report)) == {row["layer"] for row in first}


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_accumulated_error_is_inherited_and_not_used_for_ranking(converted, fmt):
    """After the first broken layer every tensor is broken end to end, yet those layers are fine alone."""
    report = report_of(converted, "rescaled", fmt, "int8")
    consumers = {consumer for _, consumer in converted["chains"]}
    inherited = [row for row in report["rows"] if not consumers & set(row["layers"])
                 and row["sqnr_accumulated_db"] < BROKEN_LAYER_DB]
    assert len(inherited) >= 3 and all(row["sqnr_db"] > 30.0 for row in inherited), inherited


@pytest.mark.parametrize("fmt, precision", [("tflite", "int8"), ("tflite", "int16x8"), ("tflite", "dynamic"),
                                            ("onnx", "int8"), ("onnx", "dynamic")])
def test_the_plain_model_output_keeps_its_signal(converted, fmt, precision):
    plain = report_of(converted, "plain", fmt, precision)
    seven_bit = (fmt, precision) == ("onnx", "int8") and TARGETS[default_target()].reduce_range
    assert plain["output"]["sqnr_db"] > (HEALTHY_7BIT_OUTPUT_DB if seven_bit else HEALTHY_OUTPUT_DB) and plain["rows"]
    assert math.isclose(plain["output"]["rel_err"], 10 ** (-plain["output"]["sqnr_db"] / 20), rel_tol=1e-3)


def _tflite_outputs(path, x):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=path,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for sample in x:
        interpreter.set_tensor(given["index"], sample[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(taken["index"]).copy())
    return np.concatenate(outputs)


def _onnx_outputs(path, x, literal):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if literal:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: sample[None]})[0] for sample in x])


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_the_output_row_equals_an_independent_computation(converted, fmt):
    """Output SQNR from the per-layer path == numpy SQNR of the two files run plainly, same kernels."""
    x = converted["samples"]
    paths = converted["plain"]
    if fmt == "tflite":
        reference, quantized = _tflite_outputs(paths[fmt, "fp32"], x), _tflite_outputs(paths[fmt, "int8"], x)
    else:
        reference = _onnx_outputs(paths[fmt, "fp32"], x, literal=False)
        quantized = _onnx_outputs(paths[fmt, "int8"], x, literal=True)
    reference, quantized = reference.astype("float64"), quantized.astype("float64")
    expected = 10 * math.log10(np.sum(reference ** 2) / np.sum((quantized - reference) ** 2))
    assert report_of(converted, "plain", fmt, "int8")["output"]["sqnr_db"] == pytest.approx(expected, abs=1e-3)


def test_dynamic_and_int16_rows_say_how_they_are_stored(converted):
    int16 = report_of(converted, "plain", "tflite", "int16x8")
    assert {row["dtype"] for row in int16["rows"]} == {"int16"} and all(row["scale"] for row in int16["rows"])
    for fmt in ("tflite", "onnx"):
        dynamic = report_of(converted, "plain", fmt, "dynamic")
        assert dynamic["rows"] and all(row["dtype"] == "float32" and row["scale"] is None
                                       for row in dynamic["rows"])


def test_write_quant_report_writes_json_markdown_and_png(converted, tmp_path):
    import json

    reports = [report_of(converted, "rescaled", "tflite", "int8"), report_of(converted, "rescaled", "onnx", "int8")]
    paths = write_quant_report(str(tmp_path), reports)
    assert sorted(os.listdir(tmp_path)) == sorted([REPORT_JSON, REPORT_MD, REPORT_PNG])
    document = json.loads((tmp_path / REPORT_JSON).read_text())
    assert [a["artifact"] for a in document["artifacts"]] == ["m_int8.tflite", "m_int8.onnx"]
    consumers = {consumer for _, consumer in converted["chains"]}
    for artifact in document["artifacts"]:
        assert {c for row in artifact["rows"][:3] for c in row["layers"]} & consumers == consumers
    text = (tmp_path / REPORT_MD).read_text()
    assert all(f"## {a['artifact']}" in text for a in reports) and worst_layers(reports[0])[0] in text
    assert open(paths[REPORT_PNG], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    line = worst_layers_line(reports[0])
    assert "\n" not in line and all(name in line for name in worst_layers(reports[0]))


def test_a_failing_report_writes_no_file(converted, tmp_path):
    broken = dict(report_of(converted, "plain", "tflite", "int8"))
    del broken["output"]
    with pytest.raises(KeyError):
        write_quant_report(str(tmp_path), [broken])
    assert os.listdir(tmp_path) == [] and partial_leftovers(tmp_path) == []


def test_mistakes_are_one_line_user_errors(converted):
    paths = converted["plain"]
    x = converted["samples"]
    cases = [(lambda: layer_report(paths["tflite", "fp32"], paths["tflite", "int8"], "keras", x), "'keras'"),
             (lambda: layer_report(paths["tflite", "fp32"], "/no/such.tflite", "tflite", x), "/no/such.tflite"),
             (lambda: layer_report(paths["tflite", "fp32"], paths["tflite", "int8"], "tflite", x[:0]), "sample")]
    for call, fragment in cases:
        with pytest.raises(UserError) as caught:
            call()
        assert "\n" not in str(caught.value) and fragment in str(caught.value)


def test_report_sample_count_keeps_the_input_pixels_of_64_samples_at_32x32():
    """Bigger images give every tensor more values per sample, so fewer samples settle its SQNR: 64 at 32 x 32
    (the measured settling point), 16 at 64 x 64, the floor of 8 at 224 x 224 (ResNet-50's report 4x faster)."""
    from export.quantreport import DEFAULT_SAMPLES, MIN_SAMPLES, samples_for_size

    assert samples_for_size(32, 32) == DEFAULT_SAMPLES == 64 and samples_for_size(8, 8) == 64
    assert samples_for_size(64, 64) == 16 and samples_for_size(224, 224) == MIN_SAMPLES == 8
