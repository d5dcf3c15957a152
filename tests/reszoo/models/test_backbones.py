"""Backbones: features_only / out_indices / output_stride on every family, feature_info, weights into backbones.

Truths checked against things reszoo does not compute itself: stage sizes against the input size, stage tensors
against the classifier's own intermediate layers, dilated nets against the a-trous identity (a dilated net
subsampled equals the strided one) and against timm's semantics re-implemented in tf.nn on torch state dicts.
"""
import math

import keras
import numpy as np
import pytest

import reszoo
from reszoo.models.features import feature_info
from tests.reszoo.models.dilated_reference import reference_features
from tests.reszoo.weights.torch_reference import random_state_dict

SIDE = 64
SLOW = pytest.mark.slow

# family -> tiny builder arguments (as test_families.TINY) and the stage strides
TINY = {
    "cifar_resnet": {"width": 4}, "cifar_plain": {"width": 4}, "cifar_highway": {"width": 4},
    "resnet": {"width": 8}, "resnet_tricks": {"width": 8}, "seresnet": {"width": 8}, "wide_resnet": {"width": 8},
    "resnext": {"width": 16}, "resnet_v2": {"width": 8}, "densenet": {"width": 8, "growth_rate": 4},
}
CIFAR_STRIDES, IMAGENET_STRIDES = (1, 2, 4), (4, 8, 16, 32)
# one model per family (and both ResNetV2 layouts) in the default run; the rest under -m slow
DEFAULT = ["resnet20", "plain20", "highway20", "resnet18", "resnet50d", "resnext50_32x4d", "wide_resnet50_2",
           "seresnet50", "resnet50v2", "resnetv2_50", "densenet121"]
HEAVY = {"resnet1202"}


def family(name):
    return reszoo.models.registry.get_entry(name).family


def tiny(name, **overrides):
    kwargs = {"input_shape": (SIDE, SIDE, 3), **TINY[family(name)], **overrides}
    if not kwargs.get("features_only"):
        kwargs.setdefault("num_classes", 10)
    return reszoo.create_model(name, **kwargs)


def images(batch=2, side=SIDE, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, side, side, 3)).astype("float32")


def as_list(outputs):
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def expected_channels(name, width, growth_rate=None):
    """Stage channels from the papers' tables, scaled to `width` (independent of the builders)."""
    fam = family(name)
    if fam.startswith("cifar"):
        return [width, 2 * width, 4 * width]
    if fam == "densenet":
        channels, result = width, []
        for layers_in_block in (6, 12, 24, 16):
            channels += layers_in_block * growth_rate
            result.append(channels)
            channels //= 2
        return result
    expansion = 1 if name in ("resnet18", "resnet34") else 4
    return [width * 2 ** k * expansion for k in range(4)]


def cases(names, slow):
    return [pytest.param(n, marks=SLOW) if n in slow else n for n in names]


ALL = [n for n in reszoo.list_models() if n not in HEAVY]


@pytest.mark.parametrize("name", cases(ALL, set(ALL) - set(DEFAULT)))
def test_feature_outputs_have_the_documented_strides_channels_and_names(name):
    model = tiny(name, features_only=True)
    strides = CIFAR_STRIDES if family(name).startswith("cifar") else IMAGENET_STRIDES
    tiny_args = TINY[family(name)]
    channels = expected_channels(name, tiny_args["width"], tiny_args.get("growth_rate"))
    outputs = as_list(model(images(), training=False))
    assert [o.shape for o in outputs] == [(2, SIDE // s, SIDE // s, c) for s, c in zip(strides, channels)]
    assert all(np.all(np.isfinite(o)) for o in outputs)
    names = [f"stage{k}" for k in range(1, len(strides) + 1)]
    assert feature_info(model) == [{"name": n, "stride": s, "channels": c, "size": [SIDE // s, SIDE // s]}
                                   for n, s, c in zip(names, strides, channels)]
    assert not any(layer.name in ("avg_pool", "max_pool", "predictions") for layer in model.layers)


# name -> the classifier's layers whose outputs are the stages (reszoo.models.features' definition, by hand)
STAGE_LAYERS = {
    "resnet20": ["conv2_block3_out", "conv3_block3_out", "conv4_block3_out"],
    "highway20": ["conv2_block3_out", "conv3_block3_out", "conv4_block3_out"],
    "resnet18": ["conv2_block2_out", "conv3_block2_out", "conv4_block2_out", "conv5_block2_out"],
    "resnet50d": ["conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"],
    "resnet50v2": ["conv2_block2_add", "conv3_block3_add", "conv4_block5_add", "post_relu"],  # stride in last block
    "resnetv2_50": ["conv2_block3_add", "conv3_block4_add", "conv4_block6_add", "post_relu"],
    "densenet121": ["conv2_block6_concat", "conv3_block12_concat", "conv4_block24_concat", "relu"],
}


@pytest.mark.parametrize("name", list(STAGE_LAYERS))
def test_features_equal_the_classifier_intermediates_with_its_weights_loaded_by_name(name, tmp_path):
    classifier = tiny(name)
    path = tmp_path / "classifier.weights.h5"
    classifier.save_weights(path)
    backbone = tiny(name, features_only=True, weights=str(path))  # the head's weights are simply not used
    intermediates = keras.Model(classifier.input, [classifier.get_layer(n).output for n in STAGE_LAYERS[name]])
    x = images(seed=2)
    for got, want in zip(as_list(backbone(x, training=False)), as_list(intermediates(x, training=False))):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * float(np.abs(want).max()))
    names = {layer.name for layer in backbone.layers if layer.weights}
    assert names == {layer.name for layer in classifier.layers if layer.weights} - {"predictions"}


def test_out_indices_choose_and_order_the_outputs(tmp_path):
    full = tiny("resnet18", features_only=True)
    path = tmp_path / "full.weights.h5"
    full.save_weights(path)
    x = images(seed=3)
    everything = as_list(full(x, training=False))
    picked = tiny("resnet18", features_only=True, out_indices=(4, 2), weights=str(path))
    assert [f["name"] for f in feature_info(picked)] == ["stage4", "stage2"]
    for got, want in zip(as_list(picked(x, training=False)), [everything[3], everything[1]]):
        np.testing.assert_array_equal(got, want)
    early = tiny("resnet18", features_only=True, out_indices=[1, 2], weights=str(path))
    assert not any(layer.name.startswith(("conv4_", "conv5_")) for layer in early.layers)  # later stages cut off
    np.testing.assert_array_equal(as_list(early(x, training=False))[1], everything[1])


@pytest.mark.parametrize("name,kwargs,fragment", [
    ("resnet18", {"features_only": True, "out_indices": (0, 1)}, "from 1, 2, 3, 4"),
    ("resnet18", {"features_only": True, "out_indices": (5,)}, "out_indices=(5,)"),
    ("resnet18", {"features_only": True, "out_indices": (2, 2)}, "distinct"),
    ("resnet18", {"features_only": True, "out_indices": ()}, "non-empty"),
    ("resnet18", {"features_only": True, "out_indices": "12"}, "out_indices='12'"),
    ("resnet20", {"features_only": True, "out_indices": (4,)}, "from 1, 2, 3"),
    ("resnet18", {"out_indices": (1,)}, "needs features_only=True"),
    ("resnet18", {"features_only": True, "pooling": "avg"}, "pooling='avg'"),
    ("resnet18", {"output_stride": 4}, "choose one of None, 8, 16, 32"),
    ("resnet50v2", {"output_stride": 12}, "output_stride=12"),
    ("resnet20", {"output_stride": 16}, "not offered for the CIFAR ResNets"),
    ("densenet121", {"output_stride": 16}, "not offered for DenseNet"),
])
def test_bad_backbone_arguments_raise_one_line(name, kwargs, fragment):
    with pytest.raises(ValueError) as error:
        tiny(name, **kwargs)
    message = str(error.value)
    assert fragment in message and "\n" not in message, message


# output_stride -> stage strides
DILATED_STRIDES = {16: [4, 8, 16, 16], 8: [4, 8, 8, 8], 32: [4, 8, 16, 32]}


@pytest.mark.parametrize("name,output_stride", [("resnet18", 16), ("resnet18", 8), ("resnetv2_50", 8),
                                                ("resnet50v2", 16), pytest.param("resnet50d", 8, marks=SLOW),
                                                pytest.param("resnet50v2", 8, marks=SLOW)])
def test_output_stride_shapes_with_and_without_features_only(name, output_stride):
    backbone = tiny(name, features_only=True, output_stride=output_stride)
    strides = DILATED_STRIDES[output_stride]
    assert [f["stride"] for f in feature_info(backbone)] == strides
    assert [o.shape[1:3] for o in as_list(backbone(images(), training=False))] == [(SIDE // s,) * 2 for s in strides]
    classifier = tiny(name, output_stride=output_stride)
    assert classifier(images(), training=False).shape == (2, 10)
    assert classifier.count_params() == tiny(name).count_params()  # dilation changes no weight


def relative_error(got, want):
    return float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12))


# The a-trous identity: a stride-2 conv equals its stride-1 twin at even positions, and a conv after it sees the
# same inputs when dilated by 2 (symmetric zero padding keeps this exact at the borders, odd sizes included). So
# the dilated stages subsampled by stride / output_stride equal the strided net's stages. It holds for every
# pointwise merge, not for SE (its global mean sees the extra positions), nor for timm's ResNet-D avg-down in a
# block whose input is already dilated (output_stride=8, stage 4), nor its zero-counting pad at odd sizes.
A_TROUS = [("resnet18", {}, 64), ("resnet18", {"highway": True}, 65), ("resnet18", {"skip": False}, 64),
           ("resnet50", {}, 65), ("resnet50", {"stride_in_1x1": True}, 64), ("resnet50c", {}, 64),
           ("resnext50_32x4d", {}, 64), ("resnet50v2", {}, 65), ("resnetv2_50", {}, 64)]
A_TROUS_DEFAULT = {("resnet18", 16), ("resnet18", 8), ("resnet50", 8), ("resnetv2_50", 16)}  # rest: -m slow
A_TROUS_TOLERANCE = 1e-5  # same float32 ops on the even lattice (TF dilates by space-to-batch): measured 0 here


@pytest.mark.parametrize("name,variant,side,output_stride", [
    pytest.param(n, v, s, o, marks=() if (n, o) in A_TROUS_DEFAULT or v.get("stride_in_1x1") or s % 2 and o == 8
                 and n == "resnet50v2" else SLOW, id=f"{n}-{'-'.join(v) or 'default'}-{s}-os{o}")
    for n, v, s in A_TROUS for o in (16, 8)])
def test_dilated_stages_subsampled_equal_the_strided_net(name, variant, side, output_stride, tmp_path):
    strided = tiny(name, features_only=True, input_shape=(side, side, 3), **variant)
    path = tmp_path / "strided.weights.h5"
    strided.save_weights(path)
    dilated = tiny(name, features_only=True, input_shape=(side, side, 3), output_stride=output_stride,
                   weights=str(path), **variant)
    x = images(side=side, seed=4)
    strides = DILATED_STRIDES[output_stride]
    for k, (got, want) in enumerate(zip(as_list(dilated(x, training=False)), as_list(strided(x, training=False)))):
        step = IMAGENET_STRIDES[k] // strides[k]
        assert got.shape[1] == math.ceil(side / strides[k])
        assert relative_error(got[:, ::step, ::step], want) <= A_TROUS_TOLERANCE, (k, step)


def test_resnet_d_output_stride_16_subsampled_equals_the_strided_net(tmp_path):
    strided = tiny("resnet50d", features_only=True)
    path = tmp_path / "strided.weights.h5"
    strided.save_weights(path)
    dilated = tiny("resnet50d", features_only=True, output_stride=16, weights=str(path))
    x = images(seed=5)
    got, want = as_list(dilated(x, training=False))[3], as_list(strided(x, training=False))[3]
    assert relative_error(got[:, ::2, ::2], want) <= A_TROUS_TOLERANCE


# reszoo name, reference layout, reference arch, output strides: timm's dilated semantics on random torch weights
TIMM_CASES = [
    ("resnet18", "torchvision", dict(block="basic", stage_blocks=(2, 2, 2, 2), width=8, num_classes=5)),
    ("resnet50", "torchvision", dict(block="bottleneck", stage_blocks=(3, 4, 6, 3), width=8, num_classes=5)),
    ("resnet50d", "timm", dict(block="bottleneck", stage_blocks=(3, 4, 6, 3), width=16, stem="deep",
                               downsample="avgpool", num_classes=5)),
    ("seresnet50", "timm", dict(block="bottleneck", stage_blocks=(3, 4, 6, 3), width=32, se=True, num_classes=5)),
    ("resnetv2_50", "timm_v2", dict(stage_blocks=(3, 4, 6, 3), width=8, num_classes=5)),
]
# float32 Keras vs the float64 reference, relative to each stage's range: float32 re-association over the ~50
# layers of a random ResNet-50 measured <= 5.4e-6 (AVX-512 VNNI CPU); 10x margin for other kernels (AVX2). A wrong
# dilation, padding or pool gives > 1e-1.
TIMM_TOLERANCE = 5e-5


@pytest.mark.parametrize("name,layout,arch", TIMM_CASES, ids=[c[0] for c in TIMM_CASES])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_dilated_backbone_with_torch_weights_matches_timm_semantics(name, layout, arch, output_stride):
    from reszoo.weights import import_torch

    state = random_state_dict(layout, seed=3, **arch)
    side = 66 if layout == "timm_v2" else SIDE  # ResNetV2 at an even size whose stages end odd (17, 9, 5)
    model, report = import_torch(state, name, features_only=True, output_stride=output_stride,
                                 input_shape=(side, side, 3))
    assert report.dropped  # the classifier's tensors, reported
    x = images(side=side, seed=6)
    expected = reference_features(state, layout, x, arch, output_stride)
    got = as_list(model(x, training=False))
    assert [g.shape for g in got] == [e.shape for e in expected]
    errors = [relative_error(g, e) for g, e in zip(got, expected)]
    assert max(errors) <= TIMM_TOLERANCE, errors


@pytest.mark.parametrize("name,kwargs", [("resnet50d", {"output_stride": 16}), ("resnet50v2", {"output_stride": 8}),
                                         ("densenet121", {"out_indices": (4, 1)}), ("highway20", {})])
def test_backbone_round_trips_through_keras_in_safe_mode(name, kwargs, tmp_path):
    model = tiny(name, features_only=True, **kwargs)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = images(seed=7)
    for got, want in zip(as_list(loaded(x, training=False)), as_list(model(x, training=False))):
        np.testing.assert_array_equal(got, want)
    assert feature_info(loaded) == feature_info(model)


@pytest.mark.parametrize("name,kwargs", [("resnet18", {"output_stride": 8}), ("resnet20", {}),
                                         ("resnetv2_50", {"output_stride": 16, "out_indices": (1, 4)})])
def test_tf_keras_twin_of_a_backbone_builds_and_agrees(name, kwargs):
    from export.twin import to_tf_keras

    model = tiny(name, features_only=True, **kwargs)
    twin = to_tf_keras(model)  # checks the twin's outputs against the model's on random input
    assert [t.name.split("/")[0] for t in twin.outputs] == [f["name"] for f in feature_info(model)]
    dilations = {tuple(layer.dilation_rate) for layer in twin.layers if hasattr(layer, "dilation_rate")}
    assert dilations == {(1, 1)} | ({(2, 2)} if kwargs.get("output_stride") else set()) | (
        {(4, 4)} if kwargs.get("output_stride") == 8 else set())


def test_model_info_describes_the_backbone():
    info = reszoo.model_info("resnet20", features_only=True)
    model = reszoo.create_model("resnet20", features_only=True, input_shape=(32, 32, 3))
    assert info["features"] == feature_info(model)
    assert [(f["stride"], f["channels"]) for f in info["features"]] == [(1, 16), (2, 32), (4, 64)]
    full = reszoo.model_info("resnet20")
    assert info["params"] == full["params"] - (64 * 10 + 10)  # the Dense head is gone
    assert info["num_classes"] is None and "features" not in full


@SLOW  # a full-width ResNet50V2 (25 M parameters)
def test_keras_applications_weights_port_into_a_dilated_backbone():
    from reszoo.weights.keras_weights import from_keras_applications

    source = keras.applications.ResNet50V2(weights=None, include_top=False, input_shape=(SIDE, SIDE, 3))
    rng = np.random.default_rng(0)
    for layer in source.layers:  # non-trivial BN statistics, so a wrong copy shows
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, variance.shape)])
    x = images(seed=8)
    backbone = from_keras_applications(source, "resnet50v2", features_only=True, out_indices=(4, 2))
    got = as_list(backbone(x, training=False))
    assert relative_error(got[0], np.asarray(source(x, training=False))) <= A_TROUS_TOLERANCE
    assert got[1].shape == (2, SIDE // 8, SIDE // 8, 512)
    dilated = from_keras_applications(source, "resnet50v2", features_only=True, output_stride=16)
    last = as_list(dilated(x, training=False))[3]
    assert last.shape == (2, SIDE // 16, SIDE // 16, 2048)
    assert relative_error(last[:, ::2, ::2], got[0]) <= A_TROUS_TOLERANCE
