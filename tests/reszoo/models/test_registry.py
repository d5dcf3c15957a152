"""Invalid names and argument combinations fail with messages naming the argument and allowed values."""
import pytest

import reszoo
from reszoo.errors import UnknownModelError, UserError
from reszoo.models.cifar import CifarResNet
from reszoo.models.resnet import ResNet, resnet_by_depth

SMALL = {"width": 8, "input_shape": (32, 32, 3), "num_classes": 10}


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match=r"unknown model 'resnet51'; did you mean .*resnet50"):
        reszoo.create_model("resnet51")


def test_unknown_name_without_close_match_points_to_list():
    with pytest.raises(UnknownModelError, match="reszoo list"):
        reszoo.model_info("zzzzzz")


@pytest.mark.parametrize("name", ["resnet18", "resnet50v2", "densenet121"])
def test_bad_pooling(name):
    kwargs = {**SMALL, "growth_rate": 4} if name == "densenet121" else SMALL
    with pytest.raises(ValueError, match=r"pooling='mean' is not allowed; choose one of 'avg', 'max', None"):
        reszoo.create_model(name, pooling="mean", **kwargs)


def test_bad_depth():
    with pytest.raises(ValueError, match=r"depth=42 is not allowed; choose one of 18, 34, 50, 101, 152, 200"):
        resnet_by_depth(42)
    with pytest.raises(ValueError, match=r"depth=21 must be 6n\+2"):
        CifarResNet(21)


@pytest.mark.parametrize("argument,value", [("block", "triple"), ("stem", "huge"), ("downsample", "maxpool")])
def test_bad_choices_name_the_argument(argument, value):
    with pytest.raises(ValueError, match=rf"{argument}='{value}' is not allowed; choose one of"):
        ResNet((1, 1), **{argument: value}, **SMALL)


def test_bad_stage_blocks():
    with pytest.raises(ValueError, match="stage_blocks"):
        ResNet((2, 0), **SMALL)


@pytest.mark.parametrize("name", ["resnet18", "resnet50v2", "densenet121", "resnet20"])
def test_include_top_needs_fixed_input(name):
    with pytest.raises(ValueError, match=r"input_shape=\(None, None, 3\): include_top=True needs a fixed"):
        reszoo.create_model(name, input_shape=(None, None, 3))


def test_highway_needs_skip():
    with pytest.raises(ValueError, match="highway=True needs skip=True"):
        reszoo.create_model("resnet18", skip=False, highway=True, **SMALL)


def test_densenet_has_no_highway_twin():
    with pytest.raises(ValueError, match="highway=True is not defined for DenseNet"):
        reszoo.create_model("densenet121", highway=True, growth_rate=4, **SMALL)


def test_resnext_too_narrow():
    with pytest.raises(ValueError, match="empty bottleneck"):
        reszoo.create_model("resnext50_32x4d", **SMALL)


def test_weights_file_of_another_model_names_the_layers(tmp_path):
    path = tmp_path / "wide.weights.h5"
    reszoo.create_model("resnet18", **{**SMALL, "width": 16}).save_weights(path)
    expected = r"does not fit model 'resnet18': \d+ layer\(s\) do not fit: conv1_bn, conv1_conv"
    with pytest.raises(UserError, match=expected):
        reszoo.create_model("resnet18", weights=str(path), **SMALL)


def test_weights_file_roundtrip_and_missing_file(tmp_path):
    path = tmp_path / "r18.weights.h5"
    source = reszoo.create_model("resnet18", **SMALL)
    source.save_weights(path)
    loaded = reszoo.create_model("resnet18", weights=str(path), **SMALL)
    assert all((a == b).all() for a, b in zip(source.get_weights(), loaded.get_weights()))
    with pytest.raises(UserError, match="does not exist"):
        reszoo.create_model("resnet18", weights=str(tmp_path / "absent.weights.h5"), **SMALL)
    with pytest.raises(UserError, match=r"expected None or a path ending in \.keras or \.weights\.h5"):
        reszoo.create_model("resnet18", weights=str(tmp_path / "x.npz"), **SMALL)
