"""Calibration methods (`export.calibration`): the thresholds on known histograms, the ranges they put into real
TFLite and ONNX files (an identity conv whose activation is the input, so its values are known), the request
and CLI option, and the manifest record."""
import json

import numpy as np
import pytest

from export import calibration
from export.core.errors import UserError
from tests.helpers import assert_one_line_user_error

OUTLIER = 50.0
SIZE = 16


def half_normal(count, seed=0):
    return np.abs(np.random.default_rng(seed).normal(size=count)).astype("float32")


def histograms_of(values, lo=None, hi=None):
    values = np.asarray(values, dtype="float32")
    histograms = calibration.Histograms({"t": (values.min() if lo is None else lo, values.max() if hi is None else hi)})
    histograms.add("t", values)
    return histograms


def test_percentile_clips_one_outlier_at_the_percentile():
    values = np.r_[half_normal(100_000), 100.0]
    lo, hi = calibration.ranges("percentile", histograms_of(values), calibration.INT8)["t"]
    expected = np.percentile(values, calibration.PERCENTILE, method="inverted_cdf")
    assert lo == 0.0 and expected <= hi <= expected + 100.0 / calibration.BINS  # the upper edge of its bin
    assert calibration.ranges("minmax", histograms_of(values), calibration.INT8)["t"] == (0.0, 100.0)


def test_entropy_clips_an_outlier_down_to_its_smallest_candidate():
    """TensorRT's search starts at `levels` bins: one-sided int8 255 of 2048, signed 128 (one side's levels)."""
    values = np.r_[half_normal(100_000), 100.0]
    assert calibration.ranges("entropy", histograms_of(values), calibration.INT8)["t"] == (0.0, 100.0 * 255 / 2048)
    signs = np.where(np.random.default_rng(1).random(100_000) < 0.5, -1.0, 1.0)
    signed = histograms_of(np.r_[half_normal(100_000) * signs, 100.0], lo=-100.0)
    assert calibration.ranges("entropy", signed, calibration.INT8)["t"] == (-100.0 * 128 / 2048, 100.0 * 128 / 2048)


def quantized_mse(values, top):
    """Mean squared error of asymmetric one-sided int8 on [0, top] (255 steps), computed on the values."""
    step = top / 255
    return float(np.mean((values - np.clip(np.round(values / step), 0, 255) * step) ** 2))


def test_mse_threshold_is_the_empirical_optimum_of_a_heavy_tail():
    """A log-normal tail: the chosen range's real int8 error is within 1 % of a brute-force search's best."""
    values = np.random.default_rng(0).lognormal(0.0, 1.0, 200_000).astype("float32")
    _, hi = calibration.ranges("mse", histograms_of(values, lo=0.0), calibration.INT8)["t"]
    grid = np.linspace(0.02, 1.0, 1000) * values.max()
    best = min(quantized_mse(values, top) for top in grid)
    assert hi < 0.9 * values.max()
    assert quantized_mse(values, hi) <= 1.01 * best < quantized_mse(values, values.max())


def test_int16_has_more_levels_than_bins_so_entropy_keeps_the_range():
    values = np.r_[half_normal(100_000), 100.0]
    assert calibration.ranges("entropy", histograms_of(values), calibration.INT16)["t"] == (0.0, 100.0)


@pytest.mark.parametrize("method", list(calibration.METHODS))
def test_ranges_hold_zero_and_never_pass_the_recorded_range(method):
    values = np.random.default_rng(2).standard_t(3, 50_000).astype("float32") + 0.5
    histograms = histograms_of(values)
    lo, hi = calibration.ranges(method, histograms, calibration.INT8)["t"]
    assert values.min() <= lo <= 0.0 <= hi <= values.max()


def test_unknown_method_is_a_user_error_naming_the_allowed_ones():
    with pytest.raises(UserError, match="--calibration 'kl': unknown method; allowed: minmax, percentile, entropy, mse"):
        calibration.check_method("kl")


def test_request_records_the_method_and_refuses_it_where_nothing_is_calibrated():
    from export.request import ExportRequest

    assert ExportRequest.build(formats=["tflite"], precisions=["int8"]).calibration == "minmax"
    assert ExportRequest.build(formats=["onnx"], precisions=["int8"], calibration="mse").calibration == "mse"
    with pytest.raises(UserError, match="--calibration 'kl'"):
        ExportRequest.build(precisions=["int8"], calibration="kl")
    with pytest.raises(UserError, match="applies to calibrated rows"):
        ExportRequest.build(formats=["tflite"], precisions=["fp32", "dynamic"], calibration="entropy")
    with pytest.raises(UserError, match="--qat"):
        ExportRequest.build(precisions=["int8"], calibration="entropy", data="digits", optimizations={"qat": True})


@pytest.fixture(scope="module")
def identity_graph(tmp_path_factory):
    """(SavedModel dir, fp32 ONNX path): input -> 1x1 conv with weight 1 (+ReLU; its output IS the input)
    -> 3x3 conv -> pooling -> dense; the identity conv's activation has exactly the calibration values."""
    import keras

    from export.converters.onnx import to_onnx

    keras.utils.set_random_seed(0)
    image = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(1, 1, activation="relu", kernel_initializer="ones", name="identity")(image)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="mixing")(x)
    x = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    root = tmp_path_factory.mktemp("identity")
    keras.Model(image, x).export(str(root / "saved_model"), verbose=False)
    return str(root / "saved_model"), to_onnx(str(root / "saved_model"), str(root / "fp32.onnx"))


def outlier_samples():
    """64 half-normal images with one pixel at OUTLIER: the identity tensor's single outlier."""
    samples = half_normal(64 * SIZE * SIZE, seed=3).reshape(64, SIZE, SIZE, 1)
    samples[5, 7, 7, 0] = OUTLIER
    return samples


def tflite_identity_quantization(flatbuffer):
    """(scale, zero point) of the identity conv's output in a TFLite file."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    tensor, = [t for t in model.subgraphs[0].tensors if b"identity" in t.name and b"Relu" in t.name]
    return float(tensor.quantization.scale[0]), int(tensor.quantization.zeroPoint[0])


def onnx_identity_quantization(path):
    """(scale, zero point) of the QuantizeLinear reading the identity conv's ReLU output in an ONNX QDQ file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    constants = {c.name: numpy_helper.to_array(c) for c in model.graph.initializer}
    node, = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and "identity" in n.input[0]
             and "Relu" in n.input[0]]
    return float(constants[node.input[1]]), int(constants[node.input[2]])


def tflite_file(identity_graph, samples, method, precision="int8"):
    from export.converters import tflite

    return tflite.convert(identity_graph[0], precision, samples, method=method)


def onnx_file(identity_graph, samples, method, tmp_path):
    from export.converters.onnx import quantize_int8

    return quantize_int8(identity_graph[1], str(tmp_path / f"{method}.onnx"), samples, method,
                         target="x86-vnni")  # uint8 activations on every host


@pytest.mark.parametrize("precision, steps", [("int8", 255), ("int16x8", 32767)])
def test_tflite_percentile_scale_is_the_computed_percentile(identity_graph, precision, steps):
    """minmax: the outlier sets the scale; percentile: the 99.99th percentile of the values does (its bin's edge)."""
    samples = outlier_samples()
    percentile = np.percentile(samples, calibration.PERCENTILE, method="inverted_cdf")  # the value at the cut
    minmax_scale, _ = tflite_identity_quantization(tflite_file(identity_graph, samples, "minmax", precision))
    scale, zero_point = tflite_identity_quantization(tflite_file(identity_graph, samples, "percentile", precision))
    assert minmax_scale * steps == pytest.approx(OUTLIER, rel=1e-6)
    assert percentile <= scale * steps * (1 + 1e-6) and scale * steps <= percentile + OUTLIER / calibration.BINS
    assert zero_point == (-128 if precision == "int8" else 0)


def test_onnx_percentile_scale_equals_tflite(identity_graph, tmp_path):
    """One range computation for both runtimes: the same method gives the same scale in ONNX as in TFLite."""
    samples = outlier_samples()
    tflite_scale, _ = tflite_identity_quantization(tflite_file(identity_graph, samples, "percentile"))
    onnx_scale, _ = onnx_identity_quantization(onnx_file(identity_graph, samples, "percentile", tmp_path))
    minmax_scale, _ = onnx_identity_quantization(onnx_file(identity_graph, samples, "minmax", tmp_path))
    assert onnx_scale == pytest.approx(tflite_scale, rel=1e-6) and minmax_scale * 255 == pytest.approx(OUTLIER, rel=1e-6)


@pytest.mark.parametrize("runtime", ["tflite", "onnx"])
def test_entropy_clips_the_outlier_in_the_file(identity_graph, tmp_path, runtime):
    samples = outlier_samples()
    scale_of = {"tflite": lambda method: tflite_identity_quantization(tflite_file(identity_graph, samples, method)),
                "onnx": lambda method: onnx_identity_quantization(onnx_file(identity_graph, samples, method, tmp_path))}
    (minmax_scale, _), (entropy_scale, _) = scale_of[runtime]("minmax"), scale_of[runtime]("entropy")
    assert entropy_scale * 255 == pytest.approx(OUTLIER * 255 / calibration.BINS, rel=1e-5)  # 255 of 2048 bins
    assert entropy_scale < minmax_scale / 4


@pytest.mark.parametrize("runtime", ["tflite", "onnx"])
def test_mse_file_quantizes_a_heavy_tail_with_less_error_than_minmax(identity_graph, tmp_path, runtime):
    """Log-normal calibration images: the identity tensor quantized with the file's own scale and zero point
    has a lower mean squared error on the calibration values under mse than under minmax."""
    samples = np.random.default_rng(4).lognormal(0.0, 1.0, (64, SIZE, SIZE, 1)).astype("float32")
    read = {"tflite": lambda method: tflite_identity_quantization(tflite_file(identity_graph, samples, method)),
            "onnx": lambda method: onnx_identity_quantization(onnx_file(identity_graph, samples, method, tmp_path))}

    grid = {"tflite": (-128, 127), "onnx": (0, 255)}[runtime]  # TFLite int8; ONNX for x86-vnni: uint8 activations

    def error(scale, zero_point):
        levels = np.clip(np.round(samples / scale) + zero_point, *grid)
        return float(np.mean((samples - (levels - zero_point) * scale) ** 2))

    minmax, mse = read[runtime]("minmax"), read[runtime]("mse")
    assert mse[0] < minmax[0] and error(*mse) < error(*minmax)


def _converter(identity_graph, precision, samples, int8_io):
    """A TFLiteConverter configured as `export.converters.tflite` configures it (TF's own calibration)."""
    import tensorflow as tf

    from export.converters.tflite_settings import SETTINGS

    return SETTINGS[precision](tf.lite.TFLiteConverter.from_saved_model(identity_graph[0]), tf, samples, int8_io)


def _quantization(flatbuffer):
    """{tensor name: (type, (scales, zero points) or None)} of a TFLite file."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    return {t.name: (t.type, None if t.quantization is None or t.quantization.scale is None else
                     (list(t.quantization.scale), list(t.quantization.zeroPoint))) for t in model.subgraphs[0].tensors}


def test_recorded_ranges_requantized_are_the_converters_file(identity_graph):
    """The edit path with the calibrator's own ranges gives the converter's scales on every tensor (int8 with
    int8 I/O, int16x8), so another method's file differs from minmax by its ranges only."""
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    from export.converters import tflite, tflite_ranges

    samples = outlier_samples()
    for precision, int8_io in (("int8", True), ("int16x8", False)):
        calibrated, input_type, output_type, allow_float = tflite_ranges.calibrated(
            _converter(identity_graph, precision, samples, int8_io))
        replayed = tflite_ranges.REQUANTIZE[precision](
            tflite_ranges.with_ranges(calibrated, tflite_ranges.recorded_ranges(calibrated)), input_type, output_type,
            allow_float)
        expected = _quantization(_converter(identity_graph, precision, samples, int8_io).convert())
        assert _quantization(replayed) == expected and any(q for _, q in expected.values())


def test_streamed_minmax_gives_the_converters_own_quantization(identity_graph):
    """The converter's calibrator only marks the tensors (one sample); LiteRT's min/max over every sample gives
    the scales TF's calibrator gives over every sample (to float rounding) and the same zero points."""
    import tensorflow as tf

    from export.converters import tflite

    samples = outlier_samples()
    for precision, int8_io in (("int8", True), ("int16x8", False)):
        ours = _quantization(tflite.convert(identity_graph[0], precision, samples, int8_io=int8_io))
        theirs = _quantization(_converter(identity_graph, precision, samples, int8_io).convert())
        assert ours.keys() == theirs.keys() and any(q for _, q in theirs.values())
        for name, (kind, quantization) in theirs.items():
            assert ours[name][0] == kind and (quantization is None) == (ours[name][1] is None), name
            if quantization is not None:
                np.testing.assert_allclose(ours[name][1][0], quantization[0], rtol=1e-6, err_msg=name)
                assert ours[name][1][1] == quantization[1], name


def test_cli_unknown_method_is_one_line_exit_2(run_cli, tmp_path):
    result = run_cli("export", "--precision", "int8", "--calibration", "kl", "--data", "digits",
                     "--output", tmp_path / "out")
    assert_one_line_user_error(result, "--calibration 'kl'", "allowed: minmax, percentile, entropy, mse")
    assert not (tmp_path / "out").exists()


def test_cli_export_records_the_method_in_the_manifest(run_cli, tmp_path):
    import reszoo
    from export.core.metadata import save_model

    model_path = tmp_path / "tiny.keras"
    save_model(reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10), str(model_path),
               {"model_name": "tiny"})
    result = run_cli("export", model_path, "--format", "onnx", "--precision", "int8", "--calibration", "percentile",
                     "--data", "digits", "--verify-samples", "20", "--latency-runs", "0", "--output", tmp_path / "out")
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: a random-init model may miss the int8 gate
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["options"]["calibration"] == "percentile"
    assert "tiny_int8.onnx" in {artifact["file"] for artifact in manifest["artifacts"]}
