"""Random ResNet state dicts in three PyTorch layouts, and an independent reference forward pass (numpy + tf.nn).

Test support for the PyTorch-checkpoint importer; nothing here comes from `reszoo` or `export`. Layouts follow:

* "torchvision": torchvision.models.resnet (v1.5: the stride of a bottleneck sits on its 3x3 conv2);
* "timm": timm.models.resnet.ResNet -- the torchvision keys plus `stem="deep"` (conv1.0/1.1/1.3/1.4/1.6),
  `downsample="avgpool"` (avg-down: AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False), then
  downsample.1 conv 1x1 and downsample.2 BN) and `se=True` (SEModule se.fc1/se.fc2 after the last BN);
* "timm_v2": timm.models.resnetv2.ResNetV2 with BatchNorm (`resnetv2_50`): pre-activation bottlenecks
  (PreActBottleneck: the stride on conv2 of a stage's first block, whose `downsample.conv` projects the
  pre-activation), a stem conv with no norm before the max-pool, final `norm`, a 1x1-conv `head.fc`;
* "cifar": akamaster/pytorch_resnet_cifar10 resnet.py (option A: zero-padded strided identity; option B:
  shortcut.0 conv 1x1 + shortcut.1 BN).

The forward pass runs PyTorch semantics in inference mode on NHWC tensors: weights are read in torch layout
(conv OIHW, linear [out, in]), convolutions pad explicitly (torch's symmetric padding) and run VALID, grouped
convolutions run group by group, max pooling pads with -inf, BatchNorm uses running stats with eps 1e-5.
"""
import collections
import dataclasses
import math

import numpy as np
import tensorflow as tf

BN_EPS = 1e-5  # torch.nn.BatchNorm2d default
_BN_PARTS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_EXPANSION = {"basic": 1, "bottleneck": 4}

_TORCHVISION_ARCH = dict(block="basic", stage_blocks=(2, 2, 2, 2), width=64, groups=1, base_width=64,
                         num_classes=1000)
_TIMM_ARCH = dict(_TORCHVISION_ARCH, stem="default", downsample="conv", se=False)
_CIFAR_ARCH = dict(depth=20, width=16, option="A", num_classes=10)
_TIMM_V2_ARCH = dict(stage_blocks=(3, 4, 6, 3), width=64, num_classes=1000)
_CHOICES = {"block": tuple(_EXPANSION), "stem": ("default", "deep"), "downsample": ("conv", "avgpool"),
            "option": ("A", "B")}

__all__ = ["BN_EPS", "LAYOUTS", "random_state_dict", "reference_forward", "se_channels"]


# ---------------------------------------------------------------------------------------------------------------
# Architecture plans shared by the state builder and the forward pass


@dataclasses.dataclass(frozen=True)
class _Block:
    """One residual block: key prefix, input channels, planes, stride, whether it has a projection shortcut."""

    prefix: str
    inplanes: int
    planes: int
    stride: int
    projects: bool


def se_channels(channels):
    """timm SEModule reduced channels: make_divisible(channels / 16, 8, round_limit=0.) -- SEModule passes
    round_limit=0., so the usual "do not round down by more than 10%" bump never applies."""
    value, divisor = channels / 16, 8
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def _bottleneck_width(arch, planes):
    """torchvision/timm Bottleneck width: int(planes * (base_width / 64.)) * groups."""
    return int(planes * (arch["base_width"] / 64.0)) * arch["groups"]


def _imagenet_blocks(arch):
    """torchvision `_make_layer` / timm `make_blocks`: stage s has planes width * 2**s, stride 2 from stage 2."""
    expansion = _EXPANSION[arch["block"]]
    inplanes = arch["width"]
    for stage, count in enumerate(arch["stage_blocks"]):
        planes = arch["width"] * 2 ** stage
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            projects = index == 0 and (stride != 1 or inplanes != planes * expansion)
            yield _Block(f"layer{stage + 1}.{index}", inplanes, planes, stride, projects)
            inplanes = planes * expansion


def _imagenet_features(arch):
    return arch["width"] * 2 ** (len(arch["stage_blocks"]) - 1) * _EXPANSION[arch["block"]]


def _cifar_blocks(arch):
    """akamaster ResNet: 3 stages of (depth - 2) / 6 basic blocks, planes width, 2*width, 4*width."""
    per_stage = (arch["depth"] - 2) // 6
    inplanes = arch["width"]
    for stage in range(3):
        planes = arch["width"] * 2 ** stage
        for index in range(per_stage):
            stride = 2 if stage > 0 and index == 0 else 1
            yield _Block(f"layer{stage + 1}.{index}", inplanes, planes, stride, stride != 1 or inplanes != planes)
            inplanes = planes


def _timm_v2_blocks(arch):
    """timm ResNetStage: stage s outputs 4 * width * 2**s channels (bottle_ratio 0.25), stride 2 from stage 1 in its
    first block, which always has a projection (proj_layer is set for block 0 only)."""
    inplanes = arch["width"]
    for stage, count in enumerate(arch["stage_blocks"]):
        planes = arch["width"] * 2 ** stage
        for index in range(count):
            yield _Block(f"stages.{stage}.blocks.{index}", inplanes, planes, 2 if stage and not index else 1, not index)
            inplanes = planes * 4


# ---------------------------------------------------------------------------------------------------------------
# Random state dicts


class _RandomState:
    """Appends parameters in torch's state_dict order: He-scaled convolutions, random BatchNorm affine and
    running stats (the latter calibrated afterwards, see `_Calibration`). The last BatchNorm of every residual
    branch has a smaller weight (BRANCH_END_BN_WEIGHT), so that residual sums grow slowly with depth."""

    BRANCH_END_BN_WEIGHT = (0.15, 0.45)

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.state = collections.OrderedDict()

    def _put(self, name, array, dtype=np.float32):
        self.state[name] = np.asarray(array, dtype=dtype)

    def conv(self, name, out_channels, in_channels, kernel, groups=1, bias=False):
        fan_in = in_channels // groups * kernel * kernel
        shape = (out_channels, in_channels // groups, kernel, kernel)
        self._put(f"{name}.weight", self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in))
        if bias:
            self._put(f"{name}.bias", self.rng.normal(0.0, 0.1, out_channels))

    def bn(self, name, channels, weight_range=(0.5, 1.5)):
        self._put(f"{name}.weight", self.rng.uniform(*weight_range, channels))
        self._put(f"{name}.bias", self.rng.normal(0.0, 0.1, channels))
        self._put(f"{name}.running_mean", self.rng.normal(0.0, 0.1, channels))
        self._put(f"{name}.running_var", self.rng.uniform(0.5, 1.5, channels))
        self._put(f"{name}.num_batches_tracked", self.rng.integers(1, 100_000), dtype=np.int64)

    def linear(self, name, out_features, in_features):
        self._put(f"{name}.weight", self.rng.standard_normal((out_features, in_features)) / math.sqrt(in_features))
        self._put(f"{name}.bias", self.rng.normal(0.0, 0.1, out_features))


def _build_default_stem(builder, arch):
    builder.conv("conv1", arch["width"], 3, 7)


def _build_deep_stem(builder, arch):
    half = arch["width"] // 2
    builder.conv("conv1.0", half, 3, 3)
    builder.bn("conv1.1", half)
    builder.conv("conv1.3", half, half, 3)
    builder.bn("conv1.4", half)
    builder.conv("conv1.6", arch["width"], half, 3)


def _build_se(builder, prefix, channels):
    reduced = se_channels(channels)
    builder.conv(f"{prefix}.se.fc1", reduced, channels, 1, bias=True)
    builder.conv(f"{prefix}.se.fc2", channels, reduced, 1, bias=True)


def _build_conv_projection(builder, block, out_channels):
    builder.conv(f"{block.prefix}.downsample.0", out_channels, block.inplanes, 1)
    builder.bn(f"{block.prefix}.downsample.1", out_channels)


def _build_avg_projection(builder, block, out_channels):
    builder.conv(f"{block.prefix}.downsample.1", out_channels, block.inplanes, 1)
    builder.bn(f"{block.prefix}.downsample.2", out_channels)


def _build_basic(builder, block, arch):
    builder.conv(f"{block.prefix}.conv1", block.planes, block.inplanes, 3)
    builder.bn(f"{block.prefix}.bn1", block.planes)
    builder.conv(f"{block.prefix}.conv2", block.planes, block.planes, 3)
    builder.bn(f"{block.prefix}.bn2", block.planes, builder.BRANCH_END_BN_WEIGHT)
    return block.planes


def _build_bottleneck(builder, block, arch):
    width, out_channels = _bottleneck_width(arch, block.planes), block.planes * 4
    builder.conv(f"{block.prefix}.conv1", width, block.inplanes, 1)
    builder.bn(f"{block.prefix}.bn1", width)
    builder.conv(f"{block.prefix}.conv2", width, width, 3, groups=arch["groups"])
    builder.bn(f"{block.prefix}.bn2", width)
    builder.conv(f"{block.prefix}.conv3", out_channels, width, 1)
    builder.bn(f"{block.prefix}.bn3", out_channels, builder.BRANCH_END_BN_WEIGHT)
    return out_channels


_BUILD_STEM = {"default": _build_default_stem, "deep": _build_deep_stem}
_BUILD_BLOCK = {"basic": _build_basic, "bottleneck": _build_bottleneck}
_BUILD_PROJECTION = {"conv": _build_conv_projection, "avgpool": _build_avg_projection}


def _build_imagenet(builder, arch):
    """torchvision / timm module order: conv1 (stem), bn1, layer1..4 (conv/bn..., se, downsample), fc."""
    _BUILD_STEM[arch.get("stem", "default")](builder, arch)
    builder.bn("bn1", arch["width"])
    for block in _imagenet_blocks(arch):
        out_channels = _BUILD_BLOCK[arch["block"]](builder, block, arch)
        if arch.get("se"):
            _build_se(builder, block.prefix, out_channels)
        if block.projects:
            _BUILD_PROJECTION[arch.get("downsample", "conv")](builder, block, out_channels)
    builder.linear("fc", arch["num_classes"], _imagenet_features(arch))


def _build_cifar(builder, arch):
    builder.conv("conv1", arch["width"], 3, 3)
    builder.bn("bn1", arch["width"])
    for block in _cifar_blocks(arch):
        _build_basic(builder, block, arch)
        if block.projects and arch["option"] == "B":
            builder.conv(f"{block.prefix}.shortcut.0", block.planes, block.inplanes, 1)
            builder.bn(f"{block.prefix}.shortcut.1", block.planes)
    builder.linear("linear", arch["num_classes"], 4 * arch["width"])


def _build_timm_v2(builder, arch):
    """Module order: stem.conv, stages (downsample is assigned first in PreActBottleneck), norm, head.fc."""
    builder.conv("stem.conv", arch["width"], 3, 7)
    for block in _timm_v2_blocks(arch):
        pre, out_channels = block.prefix, block.planes * 4
        if block.projects:
            builder.conv(f"{pre}.downsample.conv", out_channels, block.inplanes, 1)
        # gammas of both signs: after ReLU, border pixels where -inf and zero pool padding differ stay apart
        builder.bn(f"{pre}.norm1", block.inplanes, (-1.5, 1.5))
        builder.conv(f"{pre}.conv1", block.planes, block.inplanes, 1)
        builder.bn(f"{pre}.norm2", block.planes)
        builder.conv(f"{pre}.conv2", block.planes, block.planes, 3)
        builder.bn(f"{pre}.norm3", block.planes)
        builder.conv(f"{pre}.conv3", out_channels, block.planes, 1)
    features = arch["width"] * 4 * 2 ** (len(arch["stage_blocks"]) - 1)
    builder.bn("norm", features)
    builder.conv("head.fc", arch["num_classes"], features, 1, bias=True)  # ClassifierHead(use_conv=True)


# ---------------------------------------------------------------------------------------------------------------
# Forward pass in PyTorch semantics (NHWC tensors, torch-layout weights)


class _Params:
    """Read access to a state dict as float32, recording which keys were read."""

    def __init__(self, state):
        self._state, self.used = state, set()

    def __call__(self, key):
        self.used.add(key)
        return np.asarray(self._state[key], dtype=np.float32)

    def unused(self):
        return [key for key in self._state if key not in self.used and not key.endswith(".num_batches_tracked")]

    def observe_bn(self, name, x):
        """Called with each BatchNorm input before it is read; nothing to do at inference."""


class _Calibration(_Params):
    """A forward pass that first sets each BatchNorm's running stats near the statistics of its actual input
    (mean off by N(0, 0.2) std, variance times U(0.5, 1.5)), so every BN really normalizes and activations stay
    O(1) through any depth, while the stats still differ from batch stats."""

    def __init__(self, state, rng):
        super().__init__(state)
        self._rng = rng

    def observe_bn(self, name, x):
        mean, variance = (t.numpy() for t in tf.nn.moments(x, axes=[0, 1, 2]))
        std = np.sqrt(np.maximum(variance, 1e-3))
        self._state[f"{name}.running_mean"] = (mean + self._rng.normal(0.0, 0.2, mean.shape) * std).astype(np.float32)
        self._state[f"{name}.running_var"] = (std ** 2 * self._rng.uniform(0.5, 1.5, std.shape)).astype(np.float32)


def _pad_spatial(x, padding, value=0.0):
    return tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]], constant_values=value)


def _conv(x, weight, stride=1, padding=0, groups=1, bias=None):
    """F.conv2d: weight [out, in/groups, kh, kw], symmetric zero padding, groups convolved one by one."""
    if padding:
        x = _pad_spatial(x, padding)
    kernel = np.transpose(weight, (2, 3, 1, 0))  # HWIO
    inputs, kernels = tf.split(x, groups, axis=-1), np.split(kernel, groups, axis=-1)
    outputs = [tf.nn.conv2d(part, k, strides=stride, padding="VALID") for part, k in zip(inputs, kernels)]
    y = outputs[0] if groups == 1 else tf.concat(outputs, axis=-1)
    return y if bias is None else y + bias


def _conv_key(p, x, name, stride=1, padding=0, groups=1, bias=False):
    return _conv(x, p(f"{name}.weight"), stride, padding, groups, p(f"{name}.bias") if bias else None)


def _bn(p, x, name):
    """BatchNorm2d in eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias."""
    p.observe_bn(name, x)
    scale = p(f"{name}.weight") / np.sqrt(p(f"{name}.running_var") + BN_EPS)
    return (x - p(f"{name}.running_mean")) * scale + p(f"{name}.bias")


def _max_pool_3x3_s2_p1(x):
    """nn.MaxPool2d(3, stride=2, padding=1): the padding never wins (it is -inf)."""
    return tf.nn.max_pool2d(_pad_spatial(x, 1, value=-np.inf), 3, 2, "VALID")


def _ceil_pool_size(size, kernel, stride):
    """Output size of a pooling with ceil_mode=True and no padding (last window must start inside)."""
    out = -(-(size - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= size else out


def _avg_pool_2_ceil(x, stride):
    """nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False): partial windows average their inside."""
    height, width = x.shape[1], x.shape[2]
    pad_h = max(0, (_ceil_pool_size(height, 2, stride) - 1) * stride + 2 - height)
    pad_w = max(0, (_ceil_pool_size(width, 2, stride) - 1) * stride + 2 - width)
    paddings = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
    total = tf.nn.avg_pool2d(tf.pad(x, paddings), 2, stride, "VALID")
    count = tf.nn.avg_pool2d(tf.pad(tf.ones_like(x[..., :1]), paddings), 2, stride, "VALID")
    return total / count


def _linear(p, x, name):
    return tf.matmul(x, p(f"{name}.weight"), transpose_b=True) + p(f"{name}.bias")


def _se(p, x, prefix):
    """timm SEModule: mean -> fc1 (1x1, bias) -> ReLU -> fc2 (1x1, bias) -> sigmoid gate."""
    squeezed = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    hidden = tf.nn.relu(_conv_key(p, squeezed, f"{prefix}.se.fc1", bias=True))
    return x * tf.sigmoid(_conv_key(p, hidden, f"{prefix}.se.fc2", bias=True))


def _default_stem(p, x):
    return _bn(p, _conv_key(p, x, "conv1", stride=2, padding=3), "bn1")


def _deep_stem(p, x):
    x = tf.nn.relu(_bn(p, _conv_key(p, x, "conv1.0", stride=2, padding=1), "conv1.1"))
    x = tf.nn.relu(_bn(p, _conv_key(p, x, "conv1.3", padding=1), "conv1.4"))
    return _bn(p, _conv_key(p, x, "conv1.6", padding=1), "bn1")


def _conv_projection(p, x, block):
    return _bn(p, _conv_key(p, x, f"{block.prefix}.downsample.0", stride=block.stride), f"{block.prefix}.downsample.1")


def _avg_projection(p, x, block):
    pooled = _avg_pool_2_ceil(x, block.stride) if block.stride > 1 else x  # nn.Identity() at stride 1
    return _bn(p, _conv_key(p, pooled, f"{block.prefix}.downsample.1"), f"{block.prefix}.downsample.2")


def _basic(p, x, block, arch):
    """BasicBlock residual branch (before SE and the add): stride on conv1."""
    out = tf.nn.relu(_bn(p, _conv_key(p, x, f"{block.prefix}.conv1", block.stride, 1), f"{block.prefix}.bn1"))
    return _bn(p, _conv_key(p, out, f"{block.prefix}.conv2", padding=1), f"{block.prefix}.bn2")


def _bottleneck(p, x, block, arch):
    """Bottleneck residual branch, v1.5: stride on the grouped 3x3 conv2."""
    pre = block.prefix
    out = tf.nn.relu(_bn(p, _conv_key(p, x, f"{pre}.conv1"), f"{pre}.bn1"))
    out = tf.nn.relu(_bn(p, _conv_key(p, out, f"{pre}.conv2", block.stride, 1, arch["groups"]), f"{pre}.bn2"))
    return _bn(p, _conv_key(p, out, f"{pre}.conv3"), f"{pre}.bn3")


_STEMS = {"default": _default_stem, "deep": _deep_stem}
_BRANCHES = {"basic": _basic, "bottleneck": _bottleneck}
_PROJECTIONS = {"conv": _conv_projection, "avgpool": _avg_projection}


def _forward_imagenet(p, x, arch):
    x = _max_pool_3x3_s2_p1(tf.nn.relu(_STEMS[arch.get("stem", "default")](p, x)))
    for block in _imagenet_blocks(arch):
        out = _BRANCHES[arch["block"]](p, x, block, arch)
        if arch.get("se"):
            out = _se(p, out, block.prefix)
        shortcut = _PROJECTIONS[arch.get("downsample", "conv")](p, x, block) if block.projects else x
        x = tf.nn.relu(out + shortcut)
    return _linear(p, tf.reduce_mean(x, axis=[1, 2]), "fc")  # AdaptiveAvgPool2d((1, 1)) + flatten + fc


def _option_a_shortcut(p, x, block):
    """F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)): subsample, zero channels both sides."""
    pad = block.planes // 4
    if block.inplanes + 2 * pad != block.planes:
        raise ValueError(f"option A cannot pad {block.inplanes} channels to {block.planes}")
    return tf.pad(x[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [pad, pad]])


def _option_b_shortcut(p, x, block):
    return _bn(p, _conv_key(p, x, f"{block.prefix}.shortcut.0", stride=block.stride), f"{block.prefix}.shortcut.1")


_CIFAR_SHORTCUTS = {"A": _option_a_shortcut, "B": _option_b_shortcut}


def _forward_cifar(p, x, arch):
    x = tf.nn.relu(_bn(p, _conv_key(p, x, "conv1", padding=1), "bn1"))
    for block in _cifar_blocks(arch):
        shortcut = _CIFAR_SHORTCUTS[arch["option"]](p, x, block) if block.projects else x
        x = tf.nn.relu(_basic(p, x, block, arch) + shortcut)
    side = x.shape[2]  # F.avg_pool2d(out, out.size()[3]): a W x W window, stride W
    pooled = tf.nn.avg_pool2d(x, (side, side), (side, side), "VALID")
    flat = tf.reshape(tf.transpose(pooled, (0, 3, 1, 2)), (pooled.shape[0], -1))  # out.view(N, -1) of NCHW
    return _linear(p, flat, "linear")


def _forward_timm_v2(p, x, arch):
    """Stem conv (no norm), max-pool with -inf padding on un-activated values, pre-activation blocks with no
    ReLU after the add, final norm + ReLU, average pool, 1x1-conv head."""
    x = _max_pool_3x3_s2_p1(_conv_key(p, x, "stem.conv", stride=2, padding=3))
    for block in _timm_v2_blocks(arch):
        pre = block.prefix
        preact = tf.nn.relu(_bn(p, x, f"{pre}.norm1"))
        shortcut = _conv_key(p, preact, f"{pre}.downsample.conv", stride=block.stride) if block.projects else x
        out = _conv_key(p, preact, f"{pre}.conv1")
        out = _conv_key(p, tf.nn.relu(_bn(p, out, f"{pre}.norm2")), f"{pre}.conv2", block.stride, 1)
        x = _conv_key(p, tf.nn.relu(_bn(p, out, f"{pre}.norm3")), f"{pre}.conv3") + shortcut
    pooled = tf.reduce_mean(tf.nn.relu(_bn(p, x, "norm")), axis=[1, 2], keepdims=True)
    return tf.reshape(_conv_key(p, pooled, "head.fc", bias=True), (pooled.shape[0], -1))


# ---------------------------------------------------------------------------------------------------------------
# Layouts and public API


@dataclasses.dataclass(frozen=True)
class _Layout:
    defaults: dict  # arch keywords and their defaults
    build: object  # (builder, arch) -> None, appends the state entries
    forward: object  # (params, x, arch) -> logits
    image_size: int  # side of the random images the BatchNorm statistics are calibrated on


LAYOUTS = {
    "torchvision": _Layout(_TORCHVISION_ARCH, _build_imagenet, _forward_imagenet, 64),
    "timm": _Layout(_TIMM_ARCH, _build_imagenet, _forward_imagenet, 64),
    "timm_v2": _Layout(_TIMM_V2_ARCH, _build_timm_v2, _forward_timm_v2, 64),
    "cifar": _Layout(_CIFAR_ARCH, _build_cifar, _forward_cifar, 32),
}


def _resolve(layout, arch):
    """The layout's defaults updated with `arch`, validated."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {sorted(LAYOUTS)}")
    defaults = LAYOUTS[layout].defaults
    unknown = sorted(set(arch) - set(defaults))
    if unknown:
        raise TypeError(f"{layout} takes arch keywords {sorted(defaults)}, not {unknown}")
    resolved = dict(defaults, **arch)
    for key, choices in _CHOICES.items():
        if key in resolved and resolved[key] not in choices:
            raise ValueError(f"{key}={resolved[key]!r} is not one of {choices}")
    if resolved.get("block") == "basic" and (resolved["groups"], resolved["base_width"]) != (1, 64):
        raise ValueError("BasicBlock only supports groups=1 and base_width=64")
    if layout == "cifar" and (resolved["depth"] - 2) % 6:
        raise ValueError(f"cifar depth must be 6n+2, not {resolved['depth']}")
    return resolved


def random_state_dict(layout, seed=0, **arch):
    """A random state dict (OrderedDict of numpy arrays, in torch's key order) for `layout` and `arch`.

    float32 parameters and buffers plus an int64 scalar `num_batches_tracked` per BatchNorm. Convolutions are
    He-scaled; BN running stats are calibrated on 4 standard-normal images (then perturbed), so activations
    and logits stay O(1) at any depth for inputs of that scale. Arch keywords and defaults:
    LAYOUTS[layout].defaults.
    """
    resolved = _resolve(layout, arch)
    builder = _RandomState(seed)
    LAYOUTS[layout].build(builder, resolved)
    side = LAYOUTS[layout].image_size
    images = builder.rng.standard_normal((4, side, side, 3)).astype(np.float32)
    LAYOUTS[layout].forward(_Calibration(builder.state, builder.rng), tf.constant(images), resolved)
    return builder.state


def reference_forward(state, layout, x_nhwc, *, strict=True, **arch):
    """Logits [N, num_classes] (float32 numpy) of `state` (torch layout) on `x_nhwc` ([N, H, W, 3]).

    With `strict`, a state entry the forward pass never read (num_batches_tracked aside) raises ValueError;
    a missing one raises KeyError either way.
    """
    resolved = _resolve(layout, arch)
    params = _Params(state)
    logits = LAYOUTS[layout].forward(params, tf.constant(np.asarray(x_nhwc, dtype=np.float32)), resolved)
    unused = params.unused()
    if strict and unused:
        raise ValueError(f"{len(unused)} state entries not used by the {layout} forward pass: {unused[:8]}")
    return logits.numpy()


# ---------------------------------------------------------------------------------------------------------------
# Self-check: run this file


_CHECK_CASES = (
    ("torchvision", dict(block="basic", stage_blocks=(1, 1, 1, 1), width=8, num_classes=5), 64),
    ("torchvision", dict(block="bottleneck", stage_blocks=(1, 2, 1, 1), width=8, groups=2, base_width=32,
                         num_classes=5), 64),
    ("timm", dict(block="bottleneck", stage_blocks=(1, 1, 1, 1), width=16, stem="deep", downsample="avgpool",
                  se=True, num_classes=5), 64),
    ("timm", dict(block="basic", stage_blocks=(2, 1, 1, 1), width=8, se=True, num_classes=5), 36),
    ("timm", dict(block="bottleneck", stage_blocks=(1, 1, 1, 1), width=8, stem="deep", downsample="avgpool",
                  num_classes=5), 50),
    ("cifar", dict(depth=8, width=8, option="A", num_classes=5), 32),
    ("cifar", dict(depth=14, width=8, option="B", num_classes=5), 32),
)


def _check_independent_pieces():
    """Spot checks of the building blocks against direct numpy loops."""
    rng = np.random.default_rng(1)
    # grouped, strided, padded convolution vs a direct loop in NCHW
    x = rng.standard_normal((1, 5, 6, 4)).astype(np.float32)
    weight = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    got = _conv(tf.constant(x), weight, stride=2, padding=1, groups=2).numpy()
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros_like(got)
    for o in range(6):
        group = o // 3
        for i in range(got.shape[1]):
            for j in range(got.shape[2]):
                patch = padded[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3, 2 * group:2 * group + 2]
                want[0, i, j, o] = np.sum(patch * np.transpose(weight[o], (1, 2, 0)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # ceil-mode avg pool without padded counts, on an odd size
    x = rng.standard_normal((1, 5, 3, 1)).astype(np.float32)
    got = _avg_pool_2_ceil(tf.constant(x), 2).numpy()
    assert got.shape == (1, 3, 2, 1)
    np.testing.assert_allclose(got[0, 2, 1, 0], x[0, 4, 2, 0], rtol=1e-6)
    np.testing.assert_allclose(got[0, 0, 1, 0], x[0, 0:2, 2, 0].mean(), rtol=1e-6)
    # max pool padding is -inf: all-negative inputs stay negative
    assert float(tf.reduce_max(_max_pool_3x3_s2_p1(tf.constant(-1.0 - np.abs(x))))) < 0
    assert [se_channels(c) for c in (32, 64, 128, 256, 200, 2048)] == [8, 8, 8, 16, 16, 128]


def _self_check():
    _check_independent_pieces()
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    for layout, arch, size in _CHECK_CASES:
        state = random_state_dict(layout, seed=3, **arch)
        assert all(v.dtype == np.float32 for k, v in state.items() if not k.endswith("num_batches_tracked"))
        assert all(v.dtype == np.int64 and v.shape == () for k, v in state.items() if k.endswith("tracked"))
        logits = reference_forward(state, layout, x[:, :size, :size], **arch)  # strict: every key read
        assert logits.shape == (2, arch["num_classes"]) and np.all(np.isfinite(logits)), (layout, logits)
        again = reference_forward(state, layout, x[:, :size, :size], **arch)
        np.testing.assert_array_equal(logits, again)
        assert not np.allclose(logits[0], logits[1])
        print(f"{layout:12s} {len(state):4d} entries  |logits| max {np.abs(logits).max():7.3f}  {arch}")
    tv = random_state_dict("torchvision", block="bottleneck", stage_blocks=(1, 1, 1, 1), width=8, num_classes=5)
    timm = random_state_dict("timm", block="bottleneck", stage_blocks=(1, 1, 1, 1), width=8, num_classes=5)
    assert list(tv) == list(timm), "timm defaults must match torchvision keys"
    state = random_state_dict("cifar", depth=8, width=8, num_classes=5)
    state["extra.weight"] = np.zeros(1, np.float32)
    try:
        reference_forward(state, "cifar", x[:, :32, :32], depth=8, width=8, num_classes=5)
        raise AssertionError("unused key accepted")
    except ValueError as error:
        assert "extra.weight" in str(error)
    print("torch_reference self-check passed")


if __name__ == "__main__":
    _self_check()
