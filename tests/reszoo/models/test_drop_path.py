"""Stochastic depth (`drop_path_rate`): a per-sample Dropout before each residual merge, linear in block index."""
import math

import keras
import numpy as np
import pytest

import reszoo
from reszoo.models.blocks import drop_path_rates
from reszoo.models.cifar import CifarResNet
from reszoo.models.resnet import ResNet
from reszoo.models.resnet_v2 import ResNetV2
from tests.reszoo.models.test_families import images, tiny_model

RATE = 0.2
# one model per residual family (DenseNet has no residual add; plain nets have no shortcut)
RESIDUAL_MODELS = ["resnet20", "highway20", "resnet18", "resnet50d", "seresnet50", "wide_resnet50_2",
                   "resnext50_32x4d", "resnet50v2", "resnetv2_50"]
BINOMIAL_SIGMAS = 5  # tolerance of the drop-fraction check, in binomial standard deviations


def drop_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]


def block_names(model):
    """Residual blocks in network order: every block ends in `{block}_add`."""
    return [layer.name[: -len("_add")] for layer in model.layers if layer.name.endswith("_add")]


def copy_weights_by_name(source, target):
    for layer in target.layers:
        layer.set_weights(source.get_layer(layer.name).get_weights())


@pytest.mark.parametrize("name", RESIDUAL_MODELS)
def test_inference_is_the_rate_zero_model_exactly(name):
    dropped = tiny_model(name, drop_path_rate=RATE)
    plain = tiny_model(name)
    copy_weights_by_name(dropped, plain)
    x = images(batch=4, seed=3)
    expected = plain(x, training=False).numpy()
    assert np.all(np.isfinite(expected))
    np.testing.assert_array_equal(dropped(x, training=False).numpy(), expected)
    plain_types = {layer.name: type(layer) for layer in plain.layers}
    dropped_types = {layer.name: type(layer) for layer in dropped.layers}
    assert {n: t for n, t in dropped_types.items() if n in plain_types} == plain_types
    extra = dropped_types.keys() - plain_types.keys()
    assert extra == {layer.name for layer in drop_layers(dropped)}
    assert not drop_layers(plain)
    assert all(n.endswith("_drop_path") for n in extra)
    assert len(extra) == len(block_names(dropped)) - 1  # every block but the first (rate 0) has one
    assert dropped.count_params() == plain.count_params()


@pytest.mark.parametrize("name", RESIDUAL_MODELS)
def test_rates_rise_linearly_over_the_whole_network(name):
    model = tiny_model(name, drop_path_rate=RATE)
    blocks = block_names(model)
    n = len(blocks)
    assert n > 1
    names = {layer.name for layer in model.layers}
    assert f"{blocks[0]}_drop_path" not in names  # the first block's rate is 0: no layer
    rates = []
    for index, block in enumerate(blocks[1:], start=1):
        layer = model.get_layer(f"{block}_drop_path")
        assert layer.rate == pytest.approx(RATE * index / (n - 1), rel=1e-12)
        assert tuple(layer.noise_shape) == (None, 1, 1, 1)  # one keep/drop decision per sample
        assert any(t is layer.output for t in model.get_layer(f"{block}_add").input)  # right before the merge
        rates.append(layer.rate)
    assert rates == sorted(rates)
    assert rates[-1] == RATE * (n - 1) / (n - 1)


def test_rate_schedule_matches_timm():
    assert drop_path_rates(0.2, 5) == [0.2 * i / 4 for i in range(5)]
    assert drop_path_rates(0.2, 5)[0] == 0.0 and drop_path_rates(0.2, 5)[-1] == pytest.approx(0.2)
    assert drop_path_rates(0.3, 1) == [0.0]
    assert not drop_layers(ResNet((1,), "basic", width=8, input_shape=(32, 32, 3), drop_path_rate=0.5))


def test_default_and_zero_rate_add_no_layer():
    default = tiny_model("resnet20")
    zero = tiny_model("resnet20", drop_path_rate=0.0)
    assert [layer.name for layer in zero.layers] == [layer.name for layer in default.layers]
    assert not drop_layers(zero)


def test_training_outputs_are_random_and_inference_is_not():
    keras.utils.set_random_seed(0)
    model = tiny_model("resnet20", drop_path_rate=0.5)
    baseline = tiny_model("resnet20")
    x = images(batch=8, seed=4)
    first, second = model(x, training=True).numpy(), model(x, training=True).numpy()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(baseline(x, training=True).numpy(), baseline(x, training=True).numpy())
    np.testing.assert_array_equal(model(x, training=False).numpy(), model(x, training=False).numpy())


def test_drop_path_layer_drops_whole_samples_and_scales_the_rest():
    keras.utils.set_random_seed(1)
    model = tiny_model("resnet20", drop_path_rate=0.5)
    layer = model.get_layer("conv4_block3_drop_path")  # the last block: rate = drop_path_rate
    p = layer.rate
    assert p == 0.5
    batch = 1024
    out = keras.ops.convert_to_numpy(layer(np.ones((batch, 4, 4, 16), "float32"), training=True))
    flat = out.reshape(batch, -1)
    dropped = np.all(flat == 0, axis=1)
    kept = np.all(np.isclose(flat, 1 / (1 - p), rtol=1e-6), axis=1)
    assert np.all(dropped | kept), "each sample must be all zeros or all 1/(1-p)"
    tolerance = BINOMIAL_SIGMAS * math.sqrt(p * (1 - p) / batch)
    assert abs(dropped.mean() - p) < tolerance
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(np.ones((8, 4, 4, 16), "float32"))), 1.0)


@pytest.mark.parametrize("highway", [False, True], ids=["residual", "highway"])
def test_dropped_samples_are_exactly_the_shortcut_path(highway):
    """A 1-block-per-stage net: the second block (rate p) outputs relu(shortcut) for dropped samples, and
    relu(shortcut + term / (1 - p)) for kept ones, term = F(x) (residual) or T*(F(x) - x) (highway)."""
    keras.utils.set_random_seed(2)
    model = ResNet((1, 1), "basic", width=8, input_shape=(32, 32, 3), include_top=False, highway=highway,
                   drop_path_rate=0.5)
    block = "conv3_block1"
    drop = model.get_layer(f"{block}_drop_path")
    p = drop.rate
    assert p == 0.5
    probe = keras.Model(model.input, [model.get_layer(f"{block}_0_bn").output, drop.input, drop.output,
                                      model.get_layer(f"{block}_out").output])
    shortcut, term, dropped_term, out = (keras.ops.convert_to_numpy(t)
                                         for t in probe(images(batch=64, seed=5), training=True))
    batch = out.shape[0]
    dropped = np.all(dropped_term.reshape(batch, -1) == 0, axis=1)
    assert 0 < dropped.sum() < batch
    np.testing.assert_array_equal(out[dropped], np.maximum(shortcut[dropped], 0))  # the block is the identity
    np.testing.assert_allclose(dropped_term[~dropped], term[~dropped] / (1 - p), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[~dropped], np.maximum(shortcut[~dropped] + term[~dropped] / (1 - p), 0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet20", "highway20", "resnet50d", "resnet50v2"])
def test_keras_round_trip_with_safe_mode(name, tmp_path):
    model = tiny_model(name, drop_path_rate=RATE)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = images(seed=6)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert [(layer.rate, tuple(layer.noise_shape)) for layer in drop_layers(loaded)] == \
        [(layer.rate, tuple(layer.noise_shape)) for layer in drop_layers(model)]
    assert not np.array_equal(loaded(x, training=True).numpy(), loaded(x, training=True).numpy())


def test_tf_keras_twin_rebuilds_from_config():
    from export.twin import to_tf_keras

    model = tiny_model("resnet20", drop_path_rate=RATE)
    twin = to_tf_keras(model)  # checks the twin's inference output against the model's
    rates = {layer.name: layer.rate for layer in twin.layers if type(layer).__name__ == "Dropout"}
    assert rates == {layer.name: layer.rate for layer in drop_layers(model)}


@pytest.mark.parametrize("build", [
    lambda **kw: CifarResNet(20, width=4, **kw),
    lambda **kw: ResNet((1, 1), "basic", width=8, input_shape=(32, 32, 3), **kw),
    lambda **kw: ResNetV2((1, 1), width=8, input_shape=(32, 32, 3), **kw),
], ids=["cifar", "resnet", "resnet_v2"])
def test_plain_nets_refuse_drop_path(build):
    with pytest.raises(ValueError, match="drop_path_rate"):
        build(skip=False, drop_path_rate=0.1)
    assert not drop_layers(build(skip=False, drop_path_rate=0.0))


def test_registered_plain_twins_refuse_drop_path():
    with pytest.raises(ValueError, match="skip=True"):
        reszoo.create_model("plain20", width=4, drop_path_rate=0.1)
    with pytest.raises(ValueError, match="drop_path_rate"):
        reszoo.create_model("resnet18", skip=False, drop_path_rate=0.1)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.1", None, True])
@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnet50v2"])
def test_rate_outside_zero_one_is_refused(name, rate):
    with pytest.raises(ValueError, match="drop_path_rate"):
        tiny_model(name, drop_path_rate=rate)


def test_densenet_rejects_drop_path_like_any_unknown_argument():
    with pytest.raises(TypeError, match="drop_path_rate"):
        reszoo.create_model("densenet121", drop_path_rate=0.1)
