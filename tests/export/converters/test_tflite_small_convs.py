"""TFLite int8 with its narrow first convolutions float (`export.converters.tflite.small_conv_prefix`)."""
import numpy as np
import pytest

from export.converters.tflite import convert, float_convs, small_conv_prefix
from export.targets import read_graph


@pytest.fixture(scope="module")
def tiny_saved_model(tmp_path_factory):
    """SavedModel of resnet20 width 4 (channels 4, 8, 16: 14 convs below 16 channels), and digits to calibrate."""
    import reszoo
    from export.data.sources import load_digits

    work = tmp_path_factory.mktemp("small_convs")
    model = reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10)
    model.export(str(work / "sm"), verbose=False)
    x = np.asarray(load_digits((32, 32)).x[:64], "float32") / 255.0
    return str(work / "sm"), x, work


def _convs(graph):
    """[(first output name, output channels)] of the graph's CONV_2D ops in execution order."""
    tensors = graph["tensors"]
    return [(tensors[op["outputs"][0]]["name"], int(tensors[op["inputs"][1]]["shape"][0]))
            for op in graph["ops"] if op["op_name"] == "CONV_2D"]


def test_prefix_ends_at_the_first_conv_with_enough_channels(tiny_saved_model):
    flatbuffer = convert(tiny_saved_model[0], "fp32")
    graph = read_graph(flatbuffer)
    order = [graph["tensors"][op["outputs"][0]]["name"] for op in graph["ops"]]
    channels = dict(_convs(graph))
    prefix = small_conv_prefix(flatbuffer, 16)
    assert prefix == order[:len(prefix)] and channels[order[len(prefix)]] == 16
    assert all(channels[name] < 16 for name in prefix if name in channels) and len(set(prefix) & set(channels)) > 1
    assert small_conv_prefix(flatbuffer, 4) == []  # the first conv already has 4 channels
    assert small_conv_prefix(flatbuffer, 10_000) == []  # no conv that wide: nothing would stay int8


def test_int8_file_keeps_the_prefix_convs_float_and_the_rest_int8(tiny_saved_model):
    from export.runtimes import load_runner

    saved_model, x, work = tiny_saved_model
    paths = {}
    for name, small in (("mixed", True), ("all", False)):
        paths[name] = str(work / f"{name}.tflite")
        with open(paths[name], "wb") as handle:
            handle.write(convert(saved_model, "int8", x, small_convs_float=small))
    fp32 = convert(saved_model, "fp32")
    narrow = [name for name, width in _convs(read_graph(fp32)) if width < 16]
    assert float_convs(paths["mixed"]) == [name for name in small_conv_prefix(fp32) if name in narrow]
    assert 1 < len(float_convs(paths["mixed"])) < len(_convs(read_graph(fp32)))  # the 16-channel stage is int8
    assert float_convs(paths["all"]) == []
    with open(str(work / "fp32.tflite"), "wb") as handle:
        handle.write(fp32)
    outputs = {name: load_runner(path, "tflite").predict(x[:8]) for name, path in
               {**paths, "fp32": str(work / "fp32.tflite")}.items()}
    assert np.abs(outputs["mixed"] - outputs["fp32"]).max() < 0.05  # random-init softmax ~0.1 each: rounding only
