"""Cross-layer equalization: exact in float, balanced ranges, undoes a rescaled channel, stops at joins."""
import keras
import numpy as np
import pytest

from export.optimize.equalize import _input_ranges, _output_ranges, equalize, find_chains
from tests.export.optimize.rescaled import rescaled_chains, rescaled_copy


def logits_of(model, x):
    """The classifier's input times its kernel plus bias: the softmax would hide small differences."""
    head = model.layers[-1]
    features = keras.Model(model.inputs, head.input).predict(x, verbose=0)
    return features @ np.asarray(head.kernel) + np.asarray(head.bias)


def relative(a, b):
    return float(np.abs(a - b).max() / np.abs(a).max())


def test_equalization_keeps_the_function_and_balances_every_pair(trained_resnet, digits):
    x = digits[2][:32]
    equalized, record = equalize(trained_resnet)
    assert record["pairs"] and relative(logits_of(trained_resnet, x), logits_of(equalized, x)) <= 1e-5
    for producer, norm, consumer in find_chains(equalized):
        np.testing.assert_allclose(_output_ranges(producer, norm), _input_ranges(consumer), rtol=1e-5)


def test_equalization_leaves_the_given_model_untouched(trained_resnet):
    before = [np.array(w) for w in trained_resnet.get_weights()]
    equalize(trained_resnet)
    assert all(np.array_equal(a, b) for a, b in zip(before, trained_resnet.get_weights()))


def test_equalization_undoes_a_rescaled_channel(trained_resnet, digits):
    """Equalization depends only on the function: the x1000 copy equalizes to the same weights as the original."""
    x = digits[2][:32]
    chains = rescaled_chains(trained_resnet)
    rescaled = rescaled_copy(trained_resnet, chains)
    assert len(chains) == 3 and relative(logits_of(trained_resnet, x), logits_of(rescaled, x)) <= 1e-4
    norm = rescaled.get_layer(chains[0][0])
    ranges = np.abs(np.asarray(norm.gamma))
    assert ranges[0] > 100 * np.median(ranges[1:])  # the imbalance is there before
    from_original, _ = equalize(trained_resnet)
    from_rescaled, record = equalize(rescaled)
    for a, b in zip(from_original.get_weights(), from_rescaled.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * max(1.0, float(np.abs(a).max())))
    scales = {pair["batch_norm"]: pair["scale_max"] for pair in record["pairs"]}
    assert all(scales[norm_name] > 100 for norm_name, _ in chains)


def branching_model():
    """conv a -> relu -> (conv b, add): `a` feeds a join; conv c -> relu6 -> conv d: ReLU6 is not homogeneous."""
    inputs = keras.Input((8, 8, 4))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(a)
    joined = keras.layers.Add(name="add")([a, b])
    c = keras.layers.Conv2D(4, 1, name="c")(joined)
    clipped = keras.layers.ReLU(max_value=6.0, name="relu6")(c)
    d = keras.layers.Conv2D(4, 1, name="d")(clipped)
    e = keras.layers.Conv2D(4, 1, activation="relu", name="e")(d)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(e)
    return keras.Model(inputs, keras.layers.Dense(3, name="fc")(pooled))


def test_chains_stop_at_joins_shared_outputs_and_clipped_activations():
    model = branching_model()
    pairs = [(p.name, c.name) for p, _, c in find_chains(model)]
    assert pairs == [("d", "e"), ("e", "fc")]


@pytest.mark.parametrize("groups", [1, 2])
def test_a_grouped_consumer_keeps_the_function(groups):
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="p")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1, name="leaky")(x)
    x = keras.layers.ZeroPadding2D(1, name="pad")(x)
    x = keras.layers.Conv2D(4, 3, groups=groups, name="q")(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(groups)
    norm = model.get_layer("bn")
    norm.set_weights([rng.uniform(0.1, 3, 8), rng.normal(0, 1, 8), rng.normal(0, 1, 8), rng.uniform(0.5, 2, 8)])
    x = rng.normal(size=(3, 6, 6, 4)).astype("float32")
    equalized, record = equalize(model)
    assert [pair["consumer"] for pair in record["pairs"]] == ["q"]
    assert relative(model.predict(x, verbose=0), equalized.predict(x, verbose=0)) <= 1e-5
    producer, norm, consumer = find_chains(equalized)[0]
    np.testing.assert_allclose(_output_ranges(producer, norm), _input_ranges(consumer), rtol=1e-5)


def test_a_model_output_keeps_its_scale():
    """A backbone's stage map feeds the next stage and is an output: rescaling it would change the output."""
    inputs = keras.Input((8, 8, 3))
    stage = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stage1_conv")(inputs)
    stage = keras.layers.Identity(name="stage1")(stage)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stage2_conv")(stage)
    head = keras.layers.Conv2D(2, 1, name="head")(x)
    model = keras.Model(inputs, [stage, head])
    assert [(p.name, c.name) for p, _, c in find_chains(model)] == [("stage2_conv", "head")]
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    for before, after in zip(model.predict(x, verbose=0), equalize(model)[0].predict(x, verbose=0)):
        assert relative(before, after) <= 1e-5
