"""Edge-target checks read the ops of real TFLite files and flag what each target cannot run."""
import keras
import numpy as np
import pytest

from export.core.errors import UserError
from export.targets import GPU_DELEGATE_OPS, MICRO_OPS, check_tflite


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    """{precision: path} for a small conv net converted at fp32 and full int8, plus a dynamic-batch fp32."""
    from export.converters import tflite
    from export.serving_graph import to_saved_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="fc")(x))
    folder = tmp_path_factory.mktemp("targets")
    calibration = np.random.default_rng(0).random((32, 16, 16, 3)).astype("float32")
    paths = {}
    for dynamic in (False, True):
        saved_model = folder / f"saved_model_{dynamic}"
        to_saved_model(model, saved_model, dynamic_batch=dynamic)
        for precision in (("fp32",) if dynamic else ("fp32", "int8")):
            key = f"{precision}_dynamic" if dynamic else precision
            paths[key] = folder / f"{key}.tflite"
            paths[key].write_bytes(tflite.convert(str(saved_model), precision, calibration=calibration))
    return paths


def op_names(report):
    return [entry["op"] for entry in report["ops"]]


def test_edgetpu_flags_float_model_and_passes_full_int8(tiny_tflite):
    float_report = check_tflite(tiny_tflite["fp32"], "edgetpu")
    assert not float_report["passed"]
    assert any(problem.startswith("CONV_2D computes in float32") for problem in float_report["problems"])
    int8_report = check_tflite(tiny_tflite["int8"], "edgetpu")
    assert int8_report["passed"] and int8_report["problems"] == []
    assert {"QUANTIZE", "DEQUANTIZE", "CONV_2D"} <= set(op_names(int8_report))


def test_ops_are_listed_sorted_with_counts(tiny_tflite):
    report = check_tflite(tiny_tflite["fp32"], "generic")
    assert op_names(report) == sorted(op_names(report))
    assert {"op": "CONV_2D", "count": 1} in report["ops"]
    assert report["passed"] and report["target"] == "generic"


def test_dynamic_batch_is_flagged_for_every_target(tiny_tflite):
    for target in ("generic", "edgetpu", "gpu", "micro"):
        report = check_tflite(tiny_tflite["fp32_dynamic"], target)
        assert any(problem.startswith("dynamic shape [-1, 16, 16, 3]") for problem in report["problems"])


def test_size_limit_is_flagged(tiny_tflite):
    size = tiny_tflite["int8"].stat().st_size
    assert check_tflite(tiny_tflite["int8"], "generic", max_size=size)["passed"]
    report = check_tflite(tiny_tflite["int8"], "generic", max_size=size - 1)
    assert report["problems"] == [f"file size {size:,} bytes exceeds the limit of {size - 1:,} bytes"]


def test_gpu_and_micro_flag_ops_outside_their_lists(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 8), tf.float32)])
    def top_two(x):
        return tf.math.top_k(x, 2).values

    converter = tf.lite.TFLiteConverter.from_concrete_functions([top_two.get_concrete_function()], top_two)
    path = tmp_path / "top_k.tflite"
    path.write_bytes(converter.convert())
    assert "TOPK_V2" not in GPU_DELEGATE_OPS | MICRO_OPS
    for target in ("gpu", "micro"):
        report = check_tflite(path, target)
        assert report["problems"] == [f"TOPK_V2 (x1) is not supported by the {target} target"]
    assert check_tflite(path, "generic")["passed"]


def test_unknown_target_and_missing_file_are_user_errors(tiny_tflite, tmp_path):
    with pytest.raises(UserError, match="unknown target 'tpu'"):
        check_tflite(tiny_tflite["fp32"], "tpu")
    with pytest.raises(UserError, match="does not exist"):
        check_tflite(tmp_path / "missing.tflite", "generic")
