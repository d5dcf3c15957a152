"""export.converters.onnx_passes: integer zero Pads (exact, refused when not exact) and the float prefix of
small convolutions, on hand-built QDQ graphs and on a real quantized tiny ResNet in onnxruntime."""
import numpy as np
import pytest

from export.converters.onnx_passes import float_pads, float_prefix, integer_zero_pads, integer_zero_pads_in_model

SCALE, ZERO = 0.05, 128


def _qdq_pad_model(pad_value=None, mode="constant", after_scale=SCALE, after_zero=ZERO):
    """x -> Q -> DQ -> Pad -> Q -> DQ -> y (NHWC 1x4x4x2, spatial pads of 1)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers = [numpy_helper.from_array(np.array(SCALE, "float32"), "s"),
                    numpy_helper.from_array(np.array(ZERO, "uint8"), "z"),
                    numpy_helper.from_array(np.array(after_scale, "float32"), "s2"),
                    numpy_helper.from_array(np.array(after_zero, "uint8"), "z2"),
                    numpy_helper.from_array(np.array([0, 1, 1, 0, 0, 1, 1, 0], "int64"), "pads")]
    pad_inputs = ["xd", "pads"]
    if pad_value is not None:
        initializers.append(numpy_helper.from_array(np.array(pad_value, "float32"), "value"))
        pad_inputs.append("value")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_in"),
             helper.make_node("Pad", pad_inputs, ["padded"], name="pad", mode=mode),
             helper.make_node("QuantizeLinear", ["padded", "s2", "z2"], ["pq"], name="q_pad"),
             helper.make_node("DequantizeLinear", ["pq", "s2", "z2"], ["y"], name="dq_out")]
    graph = helper.make_graph(nodes, "qdq_pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 6, 2])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("pad_value", [None, 0.0])
def test_zero_pad_between_equal_qdq_runs_on_integers_with_identical_outputs(pad_value):
    model = _qdq_pad_model(pad_value)
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype("float32") * 3  # some values saturate
    before = _run(model, x)
    assert integer_zero_pads_in_model(model) == 1
    pad, = [node for node in model.graph.node if node.op_type == "Pad"]
    assert pad.input[0] == "xq" and pad.input[2] == "z2"  # the uint8 tensor, padded with the zero point
    assert [node.op_type for node in model.graph.node] == ["QuantizeLinear", "Pad", "DequantizeLinear"]
    assert np.array_equal(_run(model, x), before)


@pytest.mark.parametrize("change", [{"pad_value": 1.0}, {"mode": "reflect"}, {"after_scale": 0.1},
                                    {"after_zero": 0}])
def test_pad_that_would_change_values_or_parameters_stays_float(change):
    model = _qdq_pad_model(**change)
    assert integer_zero_pads_in_model(model) == 0
    assert [node.op_type for node in model.graph.node].count("QuantizeLinear") == 2


def test_dequantize_read_by_another_node_is_kept():
    from onnx import helper

    model = _qdq_pad_model()
    model.graph.node.append(helper.make_node("Relu", ["xd"], ["r"], name="other_reader"))
    model.graph.output.append(helper.make_tensor_value_info("r", 1, [1, 4, 4, 2]))
    x = np.linspace(-2, 2, 32, dtype="float32").reshape(1, 4, 4, 2)
    before = _run(model, x)
    assert integer_zero_pads_in_model(model) == 1
    assert "dq_in" in [node.name for node in model.graph.node]
    assert np.array_equal(_run(model, x), before)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """fp32 ONNX of resnet20 width 4 (channels 4, 8, 16: 14 Convs below 16 channels), and digits to calibrate."""
    import tensorflow as tf

    import reszoo
    from export.converters.onnx import to_onnx
    from export.data.sources import load_digits

    work = tmp_path_factory.mktemp("passes")
    model = reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10)
    signature = tf.function(lambda x: {"output_0": model(x, training=False)},
                            input_signature=[tf.TensorSpec((1, 32, 32, 3), tf.float32, name="input")])
    tf.saved_model.save(model, str(work / "sm"), signatures={"serving_default": signature})
    x = np.asarray(load_digits((32, 32)).x[:64], "float32") / 255.0
    return to_onnx(str(work / "sm"), str(work / "fp32.onnx")), x, work


def test_float_prefix_ends_at_the_first_conv_with_enough_channels(tiny_onnx):
    import onnx

    from export.converters.onnx_passes import conv_output_channels

    path = tiny_onnx[0]
    graph = onnx.load(path).graph
    channels = conv_output_channels(graph)
    prefix = float_prefix(path, 16)
    order = [node.name for node in graph.node]
    boundary = order[len(prefix)]
    assert prefix == order[:len(prefix)] and channels[boundary] == 16
    assert all(channels[name] < 16 for name in prefix if name in channels) and len(set(prefix) & set(channels)) > 1
    assert float_prefix(path, 0) == [] and float_prefix(path, 4) == []  # first Conv has 4 channels
    assert float_prefix(path, 10_000) == []  # no Conv that wide: nothing would stay int8, so nothing stays float


def test_vnni_int8_file_has_float_small_convs_integer_pads_and_fp32_like_outputs(tiny_onnx):
    import onnx
    import onnxruntime as ort

    from export.converters.onnx import quantize_int8

    fp32_path, x, work = tiny_onnx
    path = quantize_int8(fp32_path, str(work / "int8.onnx"), x, target="x86-vnni", small_convs_float=True)
    graph = onnx.load(path).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    float_convs = [node.name for node in convs if producers.get(node.input[1]) != "DequantizeLinear"]
    assert set(float_convs) == {name for name in float_prefix(fp32_path, 16)
                                if name in {c.name for c in convs}}
    assert len(float_convs) < len(convs)  # the 16-channel stage is int8
    assert float_pads(path) == []  # the shortcut's channel pads run on uint8
    run = lambda p: ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"input": x[:1]})[0]  # noqa
    assert np.abs(run(path) - run(fp32_path)).max() < 0.05  # random-init softmax ~0.1 each: int8 rounding only
    every_layer = quantize_int8(fp32_path, str(work / "all_int8.onnx"), x, target="x86-vnni")
    graph = onnx.load(every_layer).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    assert float_pads(every_layer) == []  # without small_convs_float every Conv reads int8 weights
    assert all(producers.get(node.input[1]) == "DequantizeLinear" for node in graph.node if node.op_type == "Conv")
