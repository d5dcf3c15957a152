"""export.runtimes: every runner predicts what the Keras model predicts, batches static batch-1 artifacts,
quantizes int8 I/O with the file's scale and zero point, and refuses unknown formats and missing files.

Artifacts are made here with the public converters (keras `model.export`, tf.lite, tf2onnx), not with the
export pipeline, so these tests measure the runners alone.
"""
import numpy as np
import pytest

from export.core.errors import UserError
from export.runtimes import KerasRunner, OnnxRunner, TFLiteRunner, dequantize, load_runner, quantize

SHAPE = (8, 8, 3)
CLASSES = 5
# fp32 artifacts run the same float32 graph in another kernel library (XNNPACK, MLAS, Eigen): sums of at most
# 144 products in another order differ by a few ulps of outputs of order 1. 1e-4 leaves a wide margin on any
# CPU while a wrong weight, layout (NCHW/NHWC) or missing layer is off by orders of magnitude more.
RTOL, ATOL = 1e-4, 1e-4


def _rng_inputs(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *SHAPE)).astype("float32")


def _tflite(saved_model_dir, path, int8_io=False, calibration=None):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if int8_io:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def _onnx(model, path, batch):
    import tensorflow as tf
    import tf2onnx

    spec = tf.TensorSpec((batch, *SHAPE), tf.float32, name="input")
    serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    tf2onnx.convert.from_function(serve, input_signature=[spec], opset=17, output_path=str(path))
    return path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A seeded tiny Conv2D+Dense classifier and its fp32 artifacts, with dynamic and static batch-1 inputs.

    Returns (model, {(format, batch): path}) with batch None (dynamic) or 1.
    """
    import keras

    root = tmp_path_factory.mktemp("runtimes")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPE, name="input"), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    model.save(root / "m.keras")
    paths = {("keras", None): root / "m.keras"}
    for batch in (None, 1):
        tag = "dyn" if batch is None else "b1"
        saved = root / f"saved_model_{tag}"
        model.export(str(saved), format="tf_saved_model", verbose=False,
                     input_signature=[keras.InputSpec(shape=(batch, *SHAPE), dtype="float32", name="input")])
        paths["saved_model", batch] = saved
        paths["tflite", batch] = _tflite(saved, root / f"m_{tag}.tflite")
        paths["onnx", batch] = _onnx(model, root / f"m_{tag}.onnx", batch)
    return model, paths


FP32_CASES = [("keras", None), ("saved_model", None), ("saved_model", 1), ("tflite", None), ("tflite", 1),
              ("onnx", None), ("onnx", 1)]


@pytest.mark.parametrize("fmt, batch", FP32_CASES, ids=[f"{f}-{'dyn' if b is None else 'b1'}" for f, b in FP32_CASES])
def test_fp32_runner_matches_keras(artifacts, fmt, batch):
    """Outputs equal the Keras model's within float32 tolerance, for a batch larger than 1 (70 > CHUNK = 64, so
    dynamic-batch runners run two chunks of different sizes and static batch-1 runners 70 calls)."""
    model, paths = artifacts
    x = _rng_inputs(70)
    runner = load_runner(paths[fmt, batch], fmt, threads=1)
    out = runner.predict(x)
    assert out.dtype == np.float32 and out.shape == (70, CLASSES)
    np.testing.assert_allclose(out, np.asarray(model(x, training=False)), rtol=RTOL, atol=ATOL)
    if fmt != "keras":  # KerasRunner batches through model.predict
        assert runner.batch == batch


@pytest.mark.parametrize("fmt", ["saved_model", "tflite", "onnx"])
def test_io_info(artifacts, fmt):
    """inputs/outputs describe the tensors: batch -1 when dynamic, 1 when static; float32; no quantization."""
    _, paths = artifacts
    for batch in (None, 1):
        runner = load_runner(paths[fmt, batch], fmt)
        (inp,), (out,) = runner.inputs, runner.outputs
        assert inp["shape"] == [batch or -1, *SHAPE] and out["shape"] == [batch or -1, CLASSES], (inp, out)
        assert inp["dtype"] == out["dtype"] == "float32"
        assert inp["quantization"] is None and out["quantization"] is None


def test_keras_runner_io_info_and_from_model(artifacts):
    model, paths = artifacts
    runner = KerasRunner.from_model(model)
    assert runner.inputs[0]["shape"] == [-1, *SHAPE] and runner.outputs[0]["shape"] == [-1, CLASSES]
    x = _rng_inputs(3, seed=1)
    np.testing.assert_array_equal(runner.predict(x), load_runner(paths["keras", None], "keras").predict(x))


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_static_batch_one_runs_sample_by_sample(artifacts, fmt):
    """A batch-1 artifact given N samples returns N rows, each what a one-sample call returns."""
    _, paths = artifacts
    runner = load_runner(paths[fmt, 1], fmt)
    x = _rng_inputs(5, seed=2)
    out = runner.predict(x)
    assert out.shape == (5, CLASSES)
    np.testing.assert_array_equal(out, np.concatenate([runner.predict(x[i:i + 1]) for i in range(5)]))


def test_latency_ms_counts_runs(artifacts):
    _, paths = artifacts
    runner = load_runner(paths["tflite", 1], "tflite", threads=1)
    times = runner.latency_ms(_rng_inputs(4), runs=3, warmup=1)
    assert len(times) == 3 and all(t > 0 for t in times)


@pytest.fixture(scope="module")
def int8_io_tflite(artifacts, tmp_path_factory):
    """A full-integer TFLite file of the tiny model with int8 input and output tensors."""
    _, paths = artifacts
    path = tmp_path_factory.mktemp("int8") / "m_int8.tflite"
    return _tflite(paths["saved_model", 1], path, int8_io=True, calibration=_rng_inputs(64, seed=3))


def test_int8_io_info(int8_io_tflite):
    runner = TFLiteRunner(int8_io_tflite)
    (inp,), (out,) = runner.inputs, runner.outputs
    assert inp["dtype"] == out["dtype"] == "int8"
    for info in (inp, out):
        assert info["quantization"]["scale"] > 0 and -128 <= info["quantization"]["zero_point"] <= 127


def test_int8_io_predict_quantizes_and_dequantizes(int8_io_tflite):
    """predict(float) == dequantize(interpreter(quantize(float))) with the file's scale and zero point, computed
    here independently: the runner feeds int8 and returns float32 on the output's quantization grid."""
    runner = load_runner(int8_io_tflite, "tflite")
    x = _rng_inputs(6, seed=4)
    out = runner.predict(x)
    assert out.dtype == np.float32 and out.shape == (6, CLASSES)

    interpreter = runner.interpreter
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], outp["quantization"]
    expected = []
    for sample in x:
        q = np.clip(np.round(sample[None] / in_scale + in_zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q)
        interpreter.invoke()
        raw = interpreter.get_tensor(outp["index"])
        expected.append((raw.astype(np.float32) - out_zero) * out_scale)
    np.testing.assert_allclose(out, np.concatenate(expected), rtol=0, atol=1e-6 * out_scale)
    grid = out / out_scale + out_zero
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-3)  # on the int8 grid


def test_int8_io_close_to_keras(artifacts, int8_io_tflite):
    """Int8 outputs stay near the float model: int8 rounding of two layers costs a few output steps, far below
    10 % of the output range; a missing dequantize (raw int8 values) or a wrong scale is far outside it."""
    model, _ = artifacts
    x = _rng_inputs(32, seed=5)
    reference = np.asarray(model(x, training=False))
    out = load_runner(int8_io_tflite, "tflite").predict(x)
    assert np.abs(out - reference).max() < 0.1 * (reference.max() - reference.min())


def test_quantize_dequantize_round_trip():
    """Within the int8 range a value comes back within half a step; outside it, clipped to the range ends."""
    quantization = {"scale": 0.05, "zero_point": -10}
    x = np.linspace(-5.9, 6.8, 101, dtype="float32")  # representable: (-128+10)*0.05 .. (127+10)*0.05
    q = quantize(x, quantization, np.int8)
    assert q.dtype == np.int8
    back = dequantize(q, quantization)
    assert back.dtype == np.float32
    assert np.abs(back - x).max() <= 0.05 / 2 + 1e-6
    np.testing.assert_array_equal(quantize(np.array([-100.0, 100.0]), quantization, np.int8), [-128, 127])
    np.testing.assert_array_equal(quantize(np.array([0.0]), quantization, np.int8), [-10])


def test_unknown_format_names_the_allowed_ones(artifacts):
    _, paths = artifacts
    with pytest.raises(UserError) as error:
        load_runner(paths["tflite", None], "tflit")
    assert "'tflit'" in str(error.value) and "allowed: tflite, onnx, saved_model, keras" in str(error.value)


@pytest.mark.parametrize("fmt, name", [("tflite", "m.tflite"), ("onnx", "m.onnx"), ("saved_model", "saved_model"),
                                       ("keras", "m.keras")])
def test_missing_file(tmp_path, fmt, name):
    with pytest.raises(UserError, match="does not exist"):
        load_runner(tmp_path / name, fmt)


def test_corrupt_keras_file_is_a_user_error(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(UserError, match="broken.keras"):
        load_runner(path, "keras")


def test_onnx_runner_class_matches_load_runner(artifacts):
    _, paths = artifacts
    x = _rng_inputs(2, seed=6)
    np.testing.assert_array_equal(OnnxRunner(paths["onnx", None], threads=1).predict(x),
                                  load_runner(paths["onnx", None], "onnx").predict(x))


@pytest.mark.parametrize("format, name", [("tflite", "bad.tflite"), ("onnx", "bad.onnx")])
def test_corrupt_artifact_is_a_user_error_naming_it(tmp_path, format, name):
    path = tmp_path / name
    path.write_bytes(b"not a model at all" * 10)
    with pytest.raises(UserError, match=rf"cannot load {format} artifact .*{name}"):
        load_runner(path, format)
