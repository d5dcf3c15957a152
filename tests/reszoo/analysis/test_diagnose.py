"""reszoo.analysis.diagnose: per-block gradient norms against direct GradientTape computations, gates, flags, errors."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import reszoo
from export.core.errors import UserError
from reszoo.analysis.diagnose import BlockProbe, block_weights, diagnose_model, find_blocks, gradient_flags
from reszoo.models.blocks import HIGHWAY_GATE_BIAS

SIZE = (16, 16, 3)


def tiny(name, seed=0):
    keras.utils.set_random_seed(seed)
    return reszoo.create_model(name, width=4, input_shape=SIZE, num_classes=10)


def batch(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *SIZE)).astype("float32"), np.arange(n) % 10


def direct_output_gradient_norm(model, block, x, y):
    """||dL/d block output|| via a head model (input -> block output) and a tail model (block output -> probs)."""
    out = model.get_layer(f"{block}_out").output
    head = keras.Model(model.input, out)
    tail = keras.Model(out, model.output)
    hidden = head(x, training=True)
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        loss = keras.losses.sparse_categorical_crossentropy(y, tail(hidden, training=True))
        loss = tf.reduce_mean(loss)
    return float(tf.norm(tape.gradient(loss, hidden)))


def direct_weight_gradient_norms(model, blocks, x, y):
    """Per block sqrt(sum ||dL/dW||^2) over layers named '{block}_*', from one plain model call."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True)))
    groups = [[w for layer in model.layers if layer.name.startswith(block + "_") for w in layer.trainable_weights]
              for block in blocks]
    grads = tape.gradient(loss, [w for group in groups for w in group])
    result, start = [], 0
    for group in groups:
        part = grads[start: start + len(group)]
        start += len(group)
        result.append(math.sqrt(sum(float(tf.reduce_sum(tf.square(g))) for g in part)))
    return result


@pytest.mark.parametrize("name", ["resnet20", "plain20", "highway20"])
def test_block_output_gradient_norms_match_direct_tape(name):
    model = tiny(name)
    x, y = batch()
    snapshot = BlockProbe(model).snapshot(x, y)
    blocks = [row["name"] for row in snapshot["blocks"]]
    for index in (0, 4, len(blocks) - 1):
        expected = direct_output_gradient_norm(model, blocks[index], x, y)
        assert snapshot["blocks"][index]["grad_norm"] == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_block_weight_gradient_norms_match_direct_tape():
    model = tiny("highway20")
    x, y = batch()
    snapshot = BlockProbe(model).snapshot(x, y)
    blocks = [row["name"] for row in snapshot["blocks"]]
    expected = direct_weight_gradient_norms(model, blocks, x, y)
    measured = [row["weight_grad_norm"] for row in snapshot["blocks"]]
    np.testing.assert_allclose(measured, expected, rtol=1e-5, atol=1e-7)
    assert min(measured) > 0


def test_block_weights_group_by_prefix_without_bleeding_into_longer_block_numbers():
    model = tiny("resnet20")
    names = {w.path.split("/")[0] for w in block_weights(model, "conv2_block1")}
    assert names == {"conv2_block1_1_conv", "conv2_block1_1_bn", "conv2_block1_2_conv", "conv2_block1_2_bn"}


def test_activation_statistics_describe_block_outputs():
    model = tiny("resnet20")
    x, y = batch()
    row = BlockProbe(model).snapshot(x, y)["blocks"][2]
    values = keras.Model(model.input, model.get_layer("conv2_block3_out").output)(x, training=True).numpy()
    assert row["mean"] == pytest.approx(values.mean(), rel=1e-5)
    assert row["std"] == pytest.approx(values.std(), rel=1e-5)
    assert row["zero_fraction"] == pytest.approx(np.mean(values == 0))
    assert 0.2 < row["zero_fraction"] < 0.8  # post-ReLU outputs of a BN net at init: about half are zero


def test_highway_gates_lie_in_open_unit_interval_and_start_near_bias_init():
    model = tiny("highway20")
    x, y = batch(16)
    gates = [row["gate_mean"] for row in BlockProbe(model).snapshot(x, y)["blocks"]]
    bias_only = 1 / (1 + math.exp(-HIGHWAY_GATE_BIAS))  # 0.119 for b = -2
    assert len(gates) == 9
    assert all(0.0 < g < 1.0 for g in gates)
    # Measured: per-block means 0.09..0.16 (the he_normal conv term spreads T around sigmoid(b) = 0.12).
    assert all(abs(g - bias_only) < 0.08 for g in gates), gates
    assert abs(np.mean(gates) - bias_only) < 0.03, gates


def test_plain_and_residual_models_have_no_gates():
    snapshot = BlockProbe(tiny("resnet20")).snapshot(*batch())
    assert all("gate_mean" not in row for row in snapshot["blocks"])


def test_blocks_are_ordered_by_depth_across_stages():
    blocks = find_blocks(tiny("resnet56"))
    assert blocks[:2] == ["conv2_block1", "conv2_block2"]
    assert blocks[8:10] == ["conv2_block9", "conv3_block1"]
    assert blocks[-1] == "conv4_block9" and len(blocks) == 27


def test_model_without_block_naming_is_a_user_error():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)), name="mlp")
    with pytest.raises(UserError, match="no residual blocks"):
        find_blocks(model)


def test_flags_follow_the_threshold_table():
    assert gradient_flags([1e-4, 1.0]) == ["vanishing"]
    assert gradient_flags([500.0, 1.0]) == ["exploding"]
    assert gradient_flags([0.5, 1.0]) == []
    assert gradient_flags([float("nan"), 1.0]) == ["non_finite"]


def test_training_steps_lower_the_probe_batch_loss():
    model = tiny("resnet20")
    x, y = batch(32)
    report = diagnose_model(model, x, y, steps=5, batch_size=16, learning_rate=0.05)
    init, trained = report["snapshots"]["init"], report["snapshots"]["trained"]
    assert init["step"] == 0 and trained["step"] == 5
    assert trained["loss"] < init["loss"]  # 5 steps on 32 fixed samples always fit them somewhat
    assert report["blocks"] == [row["name"] for row in init["blocks"]]


def test_imagenet_families_are_recognized_v1_by_out_and_v2_by_add_densenet_is_rejected():
    v1 = reszoo.create_model("resnet18", input_shape=(32, 32, 3), num_classes=10)
    x, y = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32"), np.array([1, 2])
    snapshot = BlockProbe(v1).snapshot(x, y)
    assert [row["name"] for row in snapshot["blocks"]][:3] == ["conv2_block1", "conv2_block2", "conv3_block1"]
    expected = direct_output_gradient_norm(v1, "conv5_block2", x, y)
    assert snapshot["blocks"][-1]["grad_norm"] == pytest.approx(expected, rel=1e-5)
    v2 = reszoo.create_model("resnet50v2", input_shape=(32, 32, 3), num_classes=10)
    outputs = BlockProbe(v2).outputs
    assert len(outputs) == 16 and outputs["conv5_block3"] == "conv5_block3_add"
    with pytest.raises(UserError, match="no residual blocks"):
        find_blocks(reszoo.create_model("densenet121", input_shape=(32, 32, 3), num_classes=10))
