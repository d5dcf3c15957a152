"""Every registered model builds, runs and round-trips through .keras; golden parameter counts and FLOPs."""
import math

import keras
import numpy as np
import pytest

import reszoo
from reszoo.models.flops import count_macs
from reszoo.models.resnet import ResNet

# family -> builder arguments that make a tiny model of the same layout (fast tests)
TINY = {
    "cifar_resnet": {"width": 4},
    "cifar_plain": {"width": 4},
    "cifar_highway": {"width": 4},
    "resnet": {"width": 8},
    "resnet_tricks": {"width": 8},
    "seresnet": {"width": 8},
    "wide_resnet": {"width": 8},
    "resnext": {"width": 16},  # 32 groups need >= 1 channel per group
    "resnet_v2": {"width": 8},
    "densenet": {"width": 8, "growth_rate": 4},
}
HEAVY = {"resnet1202"}  # > 1000 layers: build under -m slow only
# An untrained 600-block net in inference mode (BN statistics 0/1) overflows float32 (each block adds its
# branch's variance) unless the residual branches start at zero, which is how such depths are trained.
DEEP_OVERRIDES = {"resnet1202": {"zero_init_residual": True}}
# one model per family (+ plain / highway twins of the ImageNet families) for the default round-trip test
# (each has a layer type the others lack: zero-pad shortcut, gate, avg-pool shortcut, SE, groups, pre-act, concat)
ROUND_TRIP_DEFAULT = ["resnet20", "highway20", "resnet50d", "seresnet50", "resnext50_32x4d", "resnet50v2",
                      "densenet121"]
SLOW = pytest.mark.slow
TWINS = [("resnet18", {"skip": False}), ("resnet50", {"highway": True}), ("resnet50v2", {"skip": False}),
         ("resnet50v2", {"highway": True}), pytest.param("densenet121", {"skip": False}, marks=SLOW),
         pytest.param("wide_resnet50_2", {"highway": True}, marks=SLOW)]


def tiny_model(name, **overrides):
    """`name` at 32x32 with 10 classes and its family's tiny width."""
    family = reszoo.models.registry.get_entry(name).family
    kwargs = {"input_shape": (32, 32, 3), "num_classes": 10, **TINY[family], **DEEP_OVERRIDES.get(name, {}),
              **overrides}
    return reszoo.create_model(name, **kwargs)


def images(batch=2, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (batch, size, size, 3)).astype("float32")


def trainable_params(model):
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def marked(names, slow_names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow_names else n for n in names]


def test_every_family_has_a_tiny_setting():
    families = {reszoo.models.registry.get_entry(n).family for n in reszoo.list_models()}
    assert families <= set(TINY), families - set(TINY)


@pytest.mark.parametrize("name", marked(reszoo.list_models(), HEAVY))
def test_builds_and_runs(name):
    model = tiny_model(name)
    probabilities = model(images(), training=False).numpy()
    assert probabilities.shape == (2, 10)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.name == name


@pytest.mark.parametrize("name", marked(reszoo.list_models(), HEAVY))
def test_every_model_is_built_from_stock_keras_layers(name):
    custom = {type(layer).__name__ for layer in tiny_model(name).layers if not type(layer).__module__.startswith("keras.")}
    assert not custom, f"{name} uses non-Keras layers {custom}: its .keras file would need reszoo to load"


def round_trip(model, tmp_path):
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = images(seed=1)
    expected = model(x, training=False).numpy()
    assert np.all(np.isfinite(expected))
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", marked(reszoo.list_models(), set(reszoo.list_models()) - set(ROUND_TRIP_DEFAULT)))
def test_keras_round_trip_is_exact(name, tmp_path):
    round_trip(tiny_model(name), tmp_path)


@pytest.mark.parametrize("name,twin", TWINS, ids=lambda v: next(iter(v)) if isinstance(v, dict) else v)
def test_plain_and_highway_twins_build_and_round_trip(name, twin, tmp_path):
    model = tiny_model(name, **twin)
    layer_names = {layer.name for layer in model.layers}
    if twin.get("highway"):
        assert "conv2_block1_gate" in layer_names
    else:
        assert not any(n.endswith(("_add", "_concat")) for n in layer_names)
    round_trip(model, tmp_path)


@pytest.mark.parametrize("name", ["resnet20", "resnet34", "resnet50d", "resnext50_32x4d", "resnet50v2", "densenet121"])
def test_variable_input_size_without_top(name):
    model = tiny_model(name, input_shape=(None, None, 3), include_top=False, pooling="avg")
    for size in (32, 48):
        assert model(images(size=size), training=False).shape[0] == 2


# name -> trainable parameters (torchvision / paper convention) at the default input and classes
GOLDEN_TRAINABLE = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


@pytest.mark.parametrize("name", sorted(GOLDEN_TRAINABLE))
def test_golden_parameter_counts(name):
    assert trainable_params(reszoo.create_model(name)) == GOLDEN_TRAINABLE[name]


def test_resnet50_v2_matches_keras_applications_count():
    assert reszoo.create_model("resnet50v2").count_params() == 25_613_800  # keras.applications total


@pytest.mark.parametrize("name,millions", [("resnet20", 0.27), ("resnet56", 0.85)])
def test_cifar_parameter_counts_match_paper_table_6(name, millions):
    assert trainable_params(reszoo.create_model(name)) / 1e6 == pytest.approx(millions, abs=0.005)


def test_resnet50_flops():
    assert count_macs(reszoo.create_model("resnet50")) / 1e9 == pytest.approx(4.09, abs=0.01)
    paper_placement = reszoo.create_model("resnet50", stride_in_1x1=True)
    assert count_macs(paper_placement) / 1e9 == pytest.approx(3.86, abs=0.01)  # paper: 3.8 G


def test_variants_differ_as_named():
    layers_c = {layer.name for layer in tiny_model("resnet50c").layers}
    layers_d = {layer.name for layer in tiny_model("resnet50d").layers}
    assert "conv1_3_conv" in layers_c and "conv1_conv" not in layers_c
    assert "conv3_block1_0_pool" in layers_d and "conv3_block1_0_pool" not in layers_c
    grouped = tiny_model("resnext50_32x4d").get_layer("conv2_block1_2_conv")
    assert grouped.groups == 32
    assert "conv2_block1_se_excite" in {layer.name for layer in tiny_model("seresnet50").layers}


def test_stride_placement():
    v15 = ResNet((1, 1), "bottleneck", width=8, input_shape=(32, 32, 3))
    paper = ResNet((1, 1), "bottleneck", width=8, input_shape=(32, 32, 3), stride_in_1x1=True)
    assert v15.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert paper.get_layer("conv3_block1_1_conv").strides == (2, 2)


def test_zero_init_residual_zeroes_last_bn():
    model = ResNet((1, 1), "bottleneck", width=8, input_shape=(32, 32, 3), zero_init_residual=True)
    assert not np.any(model.get_layer("conv2_block1_3_bn").gamma.numpy())
    assert np.all(model.get_layer("conv2_block1_2_bn").gamma.numpy() == 1)
