"""`run_on`: tiny real int8 TFLite and ONNX models (and a float ONNX one) on the host and on every emulated CPU
kind. A kind not set up here is skipped with its install command, or fails when CI is "true"."""
import os

import numpy as np
import pytest

from export.cpus.kinds import BY_NAME, KINDS, missing
from export.cpus.run import run_on, run_worker

HOST = BY_NAME["host"]
EMULATED = [kind.name for kind in KINDS if kind.emulator]
# what the emulated process must see (CPUID on x86, HWCAP on arm64)
FEATURES = {"x86-avx2": {"avx2": True, "fma": True, "avx512f": False},
            "x86-sse4": {"avx2": False, "fma": False, "avx512f": False},
            "arm64-dotprod": {"asimddp": True, "i8mm": False},
            "arm64-v8": {"asimddp": False, "i8mm": False}}


def require(kind):
    """Skip (fail under CI=true) with `missing`'s line when `kind` is not set up here."""
    problem = missing(kind)
    if problem and os.environ.get("CI") == "true":
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)


def onnx_conv(folder, rng):
    """Path of a float ONNX model: one 3x3 Conv, 3 -> 8 channels, NCHW 12x12, dynamic batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype("float32"), "w"),
               numpy_helper.from_array(rng.normal(0, 0.1, 8).astype("float32"), "b")]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 12, 12])], weights)
    path = str(folder / "conv_fp32.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def onnx_int8(fp32, path, rng, activations, reduce_range):
    """(path, output step) of `fp32` quantized to QDQ int8 (`activations`: "QUInt8" or "QInt8", int8 weights)."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Calibration(CalibrationDataReader):
        def __init__(self):
            self.batches = iter({"x": rng.normal(size=(1, 3, 12, 12)).astype("float32")} for _ in range(16))

        def get_next(self):
            return next(self.batches, None)

    quantize_static(fp32, str(path), Calibration(), quant_format=QuantFormat.QDQ, reduce_range=reduce_range,
                    activation_type=getattr(QuantType, activations), weight_type=QuantType.QInt8)
    model = onnx.load(str(path))
    scales = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    last, = [node for node in model.graph.node if node.output[0] == "y"]
    assert last.op_type == "DequantizeLinear"
    return str(path), float(scales[last.input[1]])


def tflite_model(folder, rng):
    """(path, output step) of a small Keras CNN converted to full-int8 TFLite (int8 I/O, static batch 1)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3), batch_size=1)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(h)
    h = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(h))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.normal(size=(1, 12, 12, 3)).astype("float32")]
                                                for _ in range(32))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = folder / "cnn_int8.tflite"
    path.write_bytes(converter.convert())
    from ai_edge_litert.interpreter import Interpreter

    output, = Interpreter(model_path=str(path)).get_output_details()
    return str(path), float(output["quantization"][0])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{case: (path, format, x, tolerance)}: float32 within 1e-4, int8 within one output quantization step;
    plus "s8s8": (path, step) of the conv quantized S8S8 with 8-bit weights, which saturates on AVX2."""
    folder = tmp_path_factory.mktemp("cpus")
    rng = np.random.default_rng(0)
    fp32 = onnx_conv(folder, rng)
    # U8S8 with 7-bit weights (export.onnx_targets' x86-avx2 scheme): exact on every CPU
    int8, onnx_step = onnx_int8(fp32, folder / "conv_u8s8.onnx", rng, "QUInt8", reduce_range=True)
    tflite, tflite_step = tflite_model(folder, rng)
    nchw, nhwc = rng.normal(size=(4, 3, 12, 12)).astype("float32"), rng.normal(size=(4, 12, 12, 3)).astype("float32")
    cases = {"onnx-fp32": (fp32, "onnx", nchw, 1e-4), "onnx-int8": (int8, "onnx", nchw, onnx_step * 1.001),
             "tflite-int8": (tflite, "tflite", nhwc, tflite_step * 1.001)}
    return cases, onnx_int8(fp32, folder / "conv_s8s8.onnx", rng, "QInt8", reduce_range=False)


@pytest.fixture(scope="module")
def cases(models):
    return models[0]


@pytest.fixture(scope="module")
def host_outputs(cases):
    return {name: run_on(HOST, path, fmt, x) for name, (path, fmt, x, _) in cases.items()}


def test_host_worker_matches_the_in_process_runtimes(cases, host_outputs):
    """The standalone worker quantizes, batches and dequantizes exactly as export.runtimes."""
    from export.runtimes import load_runner

    for name, (path, fmt, x, _) in cases.items():
        expected = load_runner(path, fmt, threads=1).predict(x)
        assert host_outputs[name].dtype == np.float32 and host_outputs[name].shape == expected.shape
        np.testing.assert_array_equal(host_outputs[name], expected, err_msg=name)


@pytest.mark.parametrize("name", EMULATED)
def test_emulated_kind_matches_the_host(name, cases, host_outputs):
    kind = BY_NAME[name]
    require(kind)
    for case, (path, fmt, x, tolerance) in cases.items():
        outputs, facts = run_worker(kind, path, fmt, x)
        assert facts["machine"] == kind.arch
        assert FEATURES[name].items() <= facts["features"].items(), facts
        if kind.python == "arm64":  # its root view's /proc/cpuinfo agrees with the emulated CPU
            assert facts["cpuinfo_flags"]["asimddp"] == facts["features"]["asimddp"]
        assert outputs.dtype == np.float32 and outputs.shape == host_outputs[case].shape
        assert np.abs(outputs - host_outputs[case]).max() <= tolerance, (case, facts)


def test_a_failing_worker_names_the_command_and_shows_its_log(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    with pytest.raises(RuntimeError) as error:
        run_on(HOST, broken, "tflite", np.zeros((1, 4), "float32"))
    message = str(error.value)
    assert "worker.py" in message and "exit code" in message and "Traceback" in message


def test_emulated_cpus_run_their_own_kernels(models):
    """An S8S8 conv with 8-bit weights saturates VPMADDUBSW's int16 on AVX2 without VNNI (export.onnx_targets):
    x86-avx2 differs from x86-sse4 by many steps and is the farther from the float model, while x86-sse4 and
    arm64-v8 (exact kernels) agree within one step."""
    names = ("x86-avx2", "x86-sse4", "arm64-v8")
    for name in names:
        require(BY_NAME[name])
    cases, (s8s8, step) = models
    fp32, _, x, _ = cases["onnx-fp32"]
    reference = run_on(HOST, fp32, "onnx", x)
    avx2, sse4, arm = (run_on(BY_NAME[name], s8s8, "onnx", x) for name in names)
    assert np.abs(avx2 - sse4).max() > 10 * step
    assert np.abs(avx2 - reference).mean() > np.abs(sse4 - reference).mean()
    assert np.abs(sse4 - arm).max() <= step * 1.001


def test_worker_imports_only_the_standard_library_numpy_and_the_runtimes():
    """Read statically: TensorFlow (or an `export` module that may pull it in) would take minutes under
    emulation; the one project module it imports, `export.core.tensors`, imports numpy alone."""
    import ast
    import sys

    from export.core import tensors
    from export.cpus.run import WORKER

    def imported(path):
        tree = ast.parse(open(path).read())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        return names | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}

    names = imported(WORKER)
    assert {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) == {
        "numpy", "onnxruntime", "ai_edge_litert", "export"}
    assert {name for name in names if name.split(".")[0] == "export"} == {"export.core.tensors"}
    assert imported(tensors.__file__) == {"numpy"}
