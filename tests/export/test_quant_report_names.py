"""export.quantreport without a model: Keras layer names out of TFLite/ONNX names, pooled SQNR (the docstring
examples run in tests/test_docstrings.py)."""
import math

import numpy as np
import pytest

from export.quantreport.names import keras_layers, main_layer
from export.quantreport.stats import ErrorStats, ranking_key

KNOWN = ["input", "conv1_conv", "conv1_bn", "conv1_relu", "add", "add_1", "conv_1", "predictions"]


@pytest.mark.parametrize("name, known, expected", [
    # TFLite: a fused op lists the layer whose output it is first
    ("resnet8_1/conv1_relu_1/Relu;resnet8_1/conv1_bn_1/batchnorm/add_1;resnet8_1/conv1_conv_1/convolution", None,
     ["conv1_relu", "conv1_bn", "conv1_conv"]),
    # ONNX (tf2onnx): wrapper scopes and the :N output index go
    ("StatefulPartitionedCall/StatefulPartitionedCall/resnet8_1/conv1_conv_1/convolution/merged_input:0", None,
     ["conv1_conv"]),
    # a TF op called add_1 inside conv1_bn is not the Keras layer add_1: the first matching segment wins
    ("resnet8_1/conv1_bn_1/batchnorm/add_1", KNOWN, ["conv1_bn"]),
    ("model/add_1/add", KNOWN, ["add_1"]),
    # a layer really named conv_1 (scope conv_1_1 in Keras 3, conv_1 in tf_keras) is found with the names
    ("resnet_1/conv_1_1/Conv2D", KNOWN, ["conv_1"]), ("model/conv_1/Conv2D", KNOWN, ["conv_1"]),
    # names without a layer
    ("Conv__31:0", None, []), ("StatefulPartitionedCall_1:0", KNOWN, []), ("arith.constant", None, []),
    ("serving_default_input:0", None, ["input"]),
])
def test_keras_layer_names(name, known, expected):
    assert keras_layers([name], known) == expected


def test_the_row_is_named_after_the_last_fused_layer_in_model_order():
    assert main_layer(["conv1_relu", "conv1_bn", "conv1_conv"], KNOWN) == "conv1_relu"
    assert main_layer(["conv1_conv", "conv1_bn"], KNOWN) == "conv1_bn"
    assert main_layer(["conv1_conv", "conv1_bn"]) == "conv1_conv" and main_layer([]) is None


def test_sqnr_is_pooled_over_samples():
    rng = np.random.default_rng(0)
    reference = [rng.normal(size=(4, 4)) * scale for scale in (1.0, 10.0)]
    values = [r + rng.normal(size=r.shape) * 0.01 for r in reference]
    stats = ErrorStats()
    for r, v in zip(reference, values):
        stats.add(r, v)
    signal = sum(np.sum(r ** 2) for r in reference)
    noise = sum(np.sum((v - r) ** 2) for r, v in zip(reference, values))
    assert stats.sqnr_db() == pytest.approx(10 * math.log10(signal / noise))
    assert stats.rel_err() == pytest.approx(10 ** (-stats.sqnr_db() / 20))
    exact = ErrorStats()
    exact.add(np.ones(3), np.ones(3))
    assert exact.sqnr_db() == math.inf


def test_ranking_puts_the_lowest_sqnr_alone_first_and_unmeasured_last():
    rows = [{"sqnr_db": 30.0, "sqnr_accumulated_db": 1.0}, {"sqnr_db": None, "sqnr_accumulated_db": None},
            {"sqnr_db": math.inf, "sqnr_accumulated_db": 5.0}, {"sqnr_db": -1.0, "sqnr_accumulated_db": -1.0}]
    assert [r["sqnr_db"] for r in sorted(rows, key=ranking_key)] == [-1.0, 30.0, math.inf, None]
