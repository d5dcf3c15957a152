"""reszoo.weights.torch_forward: the numpy reference forward of PyTorch state dicts that `reszoo import --check`
uses, against the independent tf.nn reference (tests/reszoo/weights/torch_reference) for every import case, and
against direct hand computations for timm's ResNetV2 (hand-built states: -inf max-pool padding, block order).
"""
import numpy as np
import pytest

from reszoo.errors import UserError
from reszoo.weights.torch_forward import BN_EPS, torch_forward
from tests.reszoo.weights.cases import CASES, LAYOUT_NAME, MAX_RELATIVE_ERROR, inputs, relative_error
from tests.reszoo.weights.torch_reference import reference_forward

CLASSIFIERS = {"torchvision": "fc", "timm": "fc", "cifar": "linear"}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_reference_forward(case, states):
    _, layout, _, _, side = CASES[case]
    state, expected = states[case]
    logits = torch_forward(state, inputs(side), LAYOUT_NAME.get(layout, layout))
    assert logits.dtype == np.float32 and logits.shape == expected.shape
    assert relative_error(logits, expected) <= MAX_RELATIVE_ERROR, case


@pytest.mark.parametrize("case, side", [("timm-resnet50d", 50), ("timm-seresnet50", 37), ("cifar-resnet20-A", 31)])
def test_odd_input_sizes_match_the_reference_forward(case, side, states):
    """Odd sides reach the avg-down pool's partial (ceil-mode) windows and the option A subsampling."""
    _, layout, arch, _, _ = CASES[case]
    state, _ = states[case]
    expected = reference_forward(state, layout, inputs(side, seed=2), **arch)
    assert relative_error(torch_forward(state, inputs(side, seed=2), layout), expected) <= MAX_RELATIVE_ERROR


@pytest.mark.parametrize("case", ["torchvision-resnet18", "timm-resnet50d", "cifar-resnet20-A"])
def test_headless_state_dict_gives_the_feature_map(case, states):
    _, layout, _, _, side = CASES[case]
    state, expected = states[case]
    head = CLASSIFIERS[layout]
    headless = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    features = torch_forward(headless, inputs(side), layout)
    weight = state[f"{head}.weight"]
    assert features.dtype == np.float32 and features.ndim == 4 and features.shape[-1] == weight.shape[1]
    assert features.min() >= 0  # after the last ReLU
    logits = features.mean(axis=(1, 2)) @ weight.T + state[f"{head}.bias"]
    assert relative_error(logits, expected) <= MAX_RELATIVE_ERROR


def _user_error(state, layout, side, match):
    with pytest.raises(UserError, match=match) as error:
        torch_forward(state, inputs(side), layout)
    assert "\n" not in str(error.value)


def test_keys_it_cannot_interpret_raise_one_line_user_errors(states):
    state, _ = states["cifar-resnet20-A"]
    _user_error({**state, "layer1.0.conv9.weight": np.zeros((16, 16, 3, 3), "float32")}, "cifar", 32,
                r"cannot interpret 1 key\(s\) of the cifar state dict: layer1\.0\.conv9\.weight$")
    _user_error({k: v for k, v in state.items() if k != "layer2.1.bn2.running_var"}, "cifar", 32,
                "has no 'layer2.1.bn2.running_var'")
    renumbered = {k.replace("layer3.", "layer5."): v for k, v in state.items()}
    _user_error(renumbered, "cifar", 32, r"must be numbered s = 1, 2, \.\.\.")
    _user_error({**state, "layer1.0.conv2.weight": np.zeros((16, 5, 3, 3), "float32")}, "cifar", 32,
                r"layer1\.0\.conv2\.weight of shape \(16, 5, 3, 3\) on 16 input channels")
    _user_error(state, "keras", 32, "unknown layout 'keras'")
    torchvision, _ = states["torchvision-resnet18"]
    _user_error(torchvision, "cifar", 64, r"cannot interpret \d+ key\(s\) of the cifar state dict: .*downsample")


# ---------------------------------------------------------------------------------------------------------------
# timm ResNetV2 (pre-activation), also checked against direct computations


def _norm(rng, name, channels):
    return {f"{name}.weight": rng.uniform(0.5, 1.5, channels), f"{name}.bias": rng.normal(0, 0.1, channels),
            f"{name}.running_mean": rng.normal(0, 0.1, channels),
            f"{name}.running_var": rng.uniform(0.5, 1.5, channels), f"{name}.num_batches_tracked": np.array(7)}


def _v2_state(rng, blocks, stem=4, classes=5, center_only=False):
    """A timm ResNetV2 state dict: stem.conv, the pre-activation bottlenecks `blocks` ((stage, index, in, out);
    downsample conv where in != out), norm, head.fc. With `center_only` each 3x3 conv2 has only its center tap,
    so it acts as a strided 1x1 conv."""
    state = {"stem.conv.weight": rng.standard_normal((stem, 3, 7, 7)) * 0.1}
    for stage, index, inplanes, planes in blocks:
        prefix, mid = f"stages.{stage}.blocks.{index}", planes // 2
        conv2 = rng.standard_normal((mid, mid, 3, 3)) * 0.3
        if center_only:
            conv2[:, :, [0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 2, 0, 2, 0, 1, 2]] = 0
        state.update(_norm(rng, f"{prefix}.norm1", inplanes))
        if inplanes != planes:
            state[f"{prefix}.downsample.conv.weight"] = rng.standard_normal((planes, inplanes, 1, 1)) * 0.3
        state[f"{prefix}.conv1.weight"] = rng.standard_normal((mid, inplanes, 1, 1)) * 0.3
        state.update(_norm(rng, f"{prefix}.norm2", mid))
        state[f"{prefix}.conv2.weight"] = conv2
        state.update(_norm(rng, f"{prefix}.norm3", mid))
        state[f"{prefix}.conv3.weight"] = rng.standard_normal((planes, mid, 1, 1)) * 0.3
    state.update(_norm(rng, "norm", blocks[-1][-1]))
    state["head.fc.weight"] = rng.standard_normal((classes, blocks[-1][-1], 1, 1)) * 0.3
    state["head.fc.bias"] = rng.normal(0, 0.1, classes)
    return {k: v.astype(np.int64 if k.endswith("tracked") else np.float32) for k, v in state.items()}


def _stem_and_pool_by_loops(x, weight):
    """stem.conv (7x7, stride 2, zero padding 3) then MaxPool2d(3, 2, 1), whose windows only see the inside."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (3, 3), (3, 3), (0, 0)))
    kernel = weight.astype(np.float64).transpose(2, 3, 1, 0)  # kh, kw, in, out
    side = (x.shape[1] - 1) // 2 + 1
    conv = np.zeros((x.shape[0], side, side, weight.shape[0]))
    for i in range(side):
        for j in range(side):
            conv[:, i, j] = np.einsum("nhwc,hwco->no", padded[:, 2 * i:2 * i + 7, 2 * j:2 * j + 7], kernel)
    pooled_side = (side - 1) // 2 + 1
    pooled = np.zeros((x.shape[0], pooled_side, pooled_side, weight.shape[0]))
    for i in range(pooled_side):
        for j in range(pooled_side):
            pooled[:, i, j] = conv[:, max(0, 2 * i - 1):2 * i + 2, max(0, 2 * j - 1):2 * j + 2].max(axis=(1, 2))
    return pooled


def _bn(state, x, name):
    scale = state[f"{name}.weight"] / np.sqrt(state[f"{name}.running_var"].astype(np.float64) + BN_EPS)
    return (x - state[f"{name}.running_mean"]) * scale + state[f"{name}.bias"]


def _pointwise(x, weight, stride=1):
    """A 1x1 conv (or a center-only 3x3 conv with padding 1) with stride."""
    center = weight[:, :, weight.shape[2] // 2, weight.shape[3] // 2]
    return np.einsum("nhwc,oc->nhwo", x[:, ::stride, ::stride], center)


def _v2_by_hand(state, x, blocks):
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    x = _stem_and_pool_by_loops(x, state["stem.conv.weight"])
    for stage, index, inplanes, planes in blocks:
        prefix, stride = f"stages.{stage}.blocks.{index}", 2 if stage > 0 and index == 0 else 1
        preact = relu(_bn(state, x, f"{prefix}.norm1"))
        shortcut = x if inplanes == planes else _pointwise(preact, state[f"{prefix}.downsample.conv.weight"], stride)
        y = _pointwise(preact, state[f"{prefix}.conv1.weight"])
        y = _pointwise(relu(_bn(state, y, f"{prefix}.norm2")), state[f"{prefix}.conv2.weight"], stride)
        x = _pointwise(relu(_bn(state, y, f"{prefix}.norm3")), state[f"{prefix}.conv3.weight"]) + shortcut
    pooled = relu(_bn(state, x, "norm")).mean(axis=(1, 2))
    return pooled @ state["head.fc.weight"][:, :, 0, 0].T + state["head.fc.bias"]


V2_BLOCKS = ((0, 0, 4, 8), (0, 1, 8, 8), (1, 0, 8, 16))  # projection, identity, strided projection


def _positiveinputs(side):
    return np.abs(inputs(side)) + 0.1


def test_v2_stem_max_pool_pads_with_minus_inf():
    """With negative stem weights and positive inputs every stem output is negative: a zero-padded max pool would
    give 0 on the border, torch's gives the (negative) max of the window's inside. A block that adds nothing
    (conv3 = 0, identity shortcut) and a final norm that negates expose relu(-pool(stem)) as the feature map."""
    rng = np.random.default_rng(0)
    state = _v2_state(rng, ((0, 0, 4, 4),))
    state["stem.conv.weight"] = -np.abs(state["stem.conv.weight"])
    state["stages.0.blocks.0.conv3.weight"][:] = 0
    state.update({"norm.weight": -np.ones(4, "float32"), "norm.bias": np.zeros(4, "float32"),
                  "norm.running_mean": np.zeros(4, "float32"), "norm.running_var": np.ones(4, "float32") - BN_EPS})
    del state["head.fc.weight"], state["head.fc.bias"]
    x = _positiveinputs(20)
    features = torch_forward(state, x, "timm")
    expected = -_stem_and_pool_by_loops(x, state["stem.conv.weight"])
    assert features.shape == expected.shape == (2, 5, 5, 4)
    assert expected.min() > 0.05
    np.testing.assert_allclose(features, expected, rtol=1e-5)


def test_v2_forward_matches_a_direct_computation():
    state = _v2_state(np.random.default_rng(1), V2_BLOCKS, center_only=True)
    state["stem.conv.weight"] = -np.abs(state["stem.conv.weight"])  # the max pool's padding matters here too
    x = _positiveinputs(32)
    logits = torch_forward(state, x, "timm")
    assert logits.dtype == np.float32 and logits.shape == (2, 5)
    assert relative_error(logits, _v2_by_hand(state, x, V2_BLOCKS)) <= 1e-5


def test_v2_full_3x3_convs_headless_and_layout_misuse():
    state = _v2_state(np.random.default_rng(2), V2_BLOCKS)
    x = inputs(32)
    logits = torch_forward(state, x, "timm")
    assert logits.shape == (2, 5) and np.all(np.isfinite(logits))
    features = torch_forward({k: v for k, v in state.items() if not k.startswith("head.")}, x, "timm")
    assert features.shape == (2, 4, 4, 16) and features.min() >= 0  # 32 -> stem 16 -> pool 8 -> stage 1: 4
    np.testing.assert_allclose(features.mean(axis=(1, 2)) @ state["head.fc.weight"][:, :, 0, 0].T
                               + state["head.fc.bias"], logits, rtol=1e-4, atol=1e-5)
    _user_error(state, "torchvision", 32, "has no 'conv1.weight'")
    _user_error({**state, "stages.0.blocks.1.downsample.norm.weight": np.ones(8, "float32")}, "timm", 32,
                r"stages\.0\.blocks\.1\.downsample\.norm\.weight$")
