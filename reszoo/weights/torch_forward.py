"""A reference forward pass of PyTorch ResNet state dicts in pure numpy, with PyTorch's inference semantics.

`reszoo import --check` compares an imported Keras model against it. It knows nothing of reszoo's builders: the
architecture comes only from the state dict's keys and tensor shapes (number of stages and blocks, basic or
bottleneck, groups, shortcuts, stems, squeeze-excitation, classifier), the layout only names the key scheme:

* "torchvision": torchvision.models.resnet (v1.5), keys `conv1, bn1, layer{1..4}.{i}.*, fc`;
* "timm": timm's ResNet (the torchvision keys plus deep stem `conv1.{0,1,3,4,6}`, avg-down `downsample.1/2` and
  `se.fc1/fc2`) or its pre-activation ResNetV2 (`stem.conv`, `stages.{s}.blocks.{i}`, `norm`, `head.fc`);
* "cifar": akamaster/pytorch_resnet_cifar10 (`conv1, bn1, layer{1,2,3}.{i}.*, linear`; option A shortcuts, the
  zero-padded strided identity, or option B `shortcut.0/1`).

Tensors are float32 and NHWC; convolutions are im2col + matmul (in float64), with torch's symmetric zero padding
(k - 1) // 2; BatchNorm uses the running stats and eps 1e-5; max pooling pads with -inf.

Example:
    >>> import numpy as np
    >>> from reszoo.weights import load_state_dict
    >>> state = load_state_dict("resnet20-12fca82f.th")  # doctest: +SKIP
    >>> torch_forward(state, np.zeros((1, 32, 32, 3), np.float32), "cifar").shape  # doctest: +SKIP
    (1, 10)
"""
import re

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from reszoo.errors import UserError

__all__ = ["BN_EPS", "torch_forward"]

BN_EPS = 1e-5  # torch.nn.BatchNorm2d's default
_IGNORED_SUFFIX = ".num_batches_tracked"


class _Params:
    """Float32 read access to a state dict; remembers which keys were read, so the rest can be reported."""

    def __init__(self, state, layout):
        self._state, self.layout, self._used = state, layout, set()

    def __contains__(self, key):
        return key in self._state

    def keys(self):
        return self._state.keys()

    def __call__(self, key):
        if key not in self._state:
            raise UserError(f"cannot interpret the {self.layout} state dict: it has no {key!r}")
        self._used.add(key)
        return np.asarray(self._state[key], dtype=np.float32)

    def check_all_used(self):
        unused = [k for k in self._state if k not in self._used and not k.endswith(_IGNORED_SUFFIX)]
        if unused:
            shown = ", ".join(unused[:6]) + (f" and {len(unused) - 6} more" if len(unused) > 6 else "")
            raise UserError(f"cannot interpret {len(unused)} key(s) of the {self.layout} state dict: {shown}")


# ---------------------------------------------------------------------------------------------------------------
# Layers (NHWC float32 in and out)


def _matmul(a, b):
    """a @ b accumulated in float64 (a reference may afford it), returned as float32."""
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)


def _conv(p, x, name, stride=1):
    """nn.Conv2d `name`: OIHW weight, padding (k - 1) // 2, groups = input channels / weight.shape[1], bias
    when `name.bias` exists."""
    weight = p(f"{name}.weight")
    groups = x.shape[-1] // weight.shape[1] if weight.ndim == 4 and weight.shape[1] else 0
    if not groups or x.shape[-1] % weight.shape[1] or weight.shape[0] % groups:
        raise UserError(f"cannot interpret {name}.weight of shape {weight.shape} on {x.shape[-1]} input channels")
    out_channels, group_in, kh, kw = weight.shape
    pad_h, pad_w = (kh - 1) // 2, (kw - 1) // 2
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # N, Ho, Wo, C, kh, kw
    n, ho, wo = windows.shape[:3]
    cols = windows.reshape(n * ho * wo, groups, group_in * kh * kw).transpose(1, 0, 2)  # G, M, K
    kernels = weight.reshape(groups, out_channels // groups, group_in * kh * kw).transpose(0, 2, 1)  # G, K, O/G
    y = _matmul(cols, kernels).transpose(1, 0, 2).reshape(n, ho, wo, out_channels)
    return y + p(f"{name}.bias") if f"{name}.bias" in p else y


def _bn(p, x, name):
    """nn.BatchNorm2d `name` in eval mode."""
    scale = p(f"{name}.weight") / np.sqrt(p(f"{name}.running_var") + np.float32(BN_EPS))
    return (x - p(f"{name}.running_mean")) * scale + p(f"{name}.bias")


def _relu(x):
    return np.maximum(x, np.float32(0))


def _max_pool(x):
    """nn.MaxPool2d(3, stride=2, padding=1): the padding is -inf, so it never wins."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    return sliding_window_view(padded, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(-2, -1))


def _avg_down(x):
    """nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False): a partial last window averages what
    it covers."""
    n, h, w, c = x.shape
    padded = np.zeros((n, h + h % 2, w + w % 2, c), np.float32)
    padded[:, :h, :w] = x
    count = np.zeros(padded.shape[1:3], np.float32)
    count[:h, :w] = 1
    windows = (padded.shape[1] // 2, 2, padded.shape[2] // 2, 2)
    total = padded.reshape(n, *windows, c).sum(axis=(2, 4))
    return total / count.reshape(windows).sum(axis=(1, 3))[None, :, :, None]


def _se(p, x, prefix):
    """timm SEModule: mean over H, W -> 1x1 conv fc1 -> ReLU -> 1x1 conv fc2 -> sigmoid gate."""
    squeezed = x.mean(axis=(1, 2), keepdims=True)
    gate = _conv(p, _relu(_conv(p, squeezed, f"{prefix}.se.fc1")), f"{prefix}.se.fc2")
    return x * (np.float32(0.5) + np.float32(0.5) * np.tanh(np.float32(0.5) * gate))  # sigmoid, no overflow


def _classify(p, features, name):
    """Global average pool + classifier `name` (a Linear, or timm ResNetV2's 1x1 Conv2d); the features
    themselves when the state dict has no classifier."""
    if f"{name}.weight" not in p:
        return features
    weight = p(f"{name}.weight")
    if weight.shape[1:] not in ((features.shape[-1],), (features.shape[-1], 1, 1)):
        raise UserError(f"cannot interpret {name}.weight of shape {weight.shape} on {features.shape[-1]} features")
    logits = _matmul(features.mean(axis=(1, 2)), weight.reshape(weight.shape[0], -1).T)
    return logits + p(f"{name}.bias") if f"{name}.bias" in p else logits


def _blocks(p, pattern, template, first):
    """(key prefix, stride) of every residual block found in the keys: stages numbered first, first + 1, ...,
    blocks 0, 1, ...; stride 2 in the first block of every stage but the first."""
    found = {}
    for key in p.keys():
        match = re.match(pattern, key)
        if match:
            found.setdefault(int(match[1]), set()).add(int(match[2]))
    stages = sorted(found)
    if not stages or stages != list(range(first, first + len(stages))) or any(
            sorted(found[s]) != list(range(len(found[s]))) for s in stages):
        numbering = {s: sorted(found[s]) for s in stages}
        raise UserError(f"cannot interpret the {p.layout} state dict: residual blocks {template.format('s', 'i')}"
                        f" must be numbered s = {first}, {first + 1}, ... and i = 0, 1, ..., found {numbering}")
    for n, stage in enumerate(stages):
        for index in range(len(found[stage])):
            yield template.format(stage, index), 2 if n > 0 and index == 0 else 1


# ---------------------------------------------------------------------------------------------------------------
# torchvision / timm ResNet (v1) and the CIFAR ResNet


def _default_stem(p, x):
    return _relu(_bn(p, _conv(p, x, "conv1", stride=2), "bn1"))


def _deep_stem(p, x):
    """timm's deep stem (ResNet-C/D): three 3x3 convs, the first with stride 2."""
    x = _relu(_bn(p, _conv(p, x, "conv1.0", stride=2), "conv1.1"))
    x = _relu(_bn(p, _conv(p, x, "conv1.3"), "conv1.4"))
    return _relu(_bn(p, _conv(p, x, "conv1.6"), "bn1"))


def _branch(p, x, prefix, stride):
    """Bottleneck (conv3 exists; v1.5, stride and groups on conv2) or basic residual branch, then timm's SE."""
    if f"{prefix}.conv3.weight" in p:
        y = _relu(_bn(p, _conv(p, x, f"{prefix}.conv1"), f"{prefix}.bn1"))
        y = _relu(_bn(p, _conv(p, y, f"{prefix}.conv2", stride), f"{prefix}.bn2"))
        y = _bn(p, _conv(p, y, f"{prefix}.conv3"), f"{prefix}.bn3")
    else:
        y = _relu(_bn(p, _conv(p, x, f"{prefix}.conv1", stride), f"{prefix}.bn1"))
        y = _bn(p, _conv(p, y, f"{prefix}.conv2"), f"{prefix}.bn2")
    return _se(p, y, prefix) if f"{prefix}.se.fc1.weight" in p else y


def _imagenet_shortcut(p, x, prefix, stride, planes):
    """Identity, downsample.0 conv + downsample.1 BN, or timm's avg-down (pool, downsample.1 conv, .2 BN)."""
    down = f"{prefix}.downsample"
    if f"{down}.1.weight" in p and np.ndim(p(f"{down}.1.weight")) == 4:
        pooled = _avg_down(x) if stride > 1 else x
        return _bn(p, _conv(p, pooled, f"{down}.1"), f"{down}.2")
    if f"{down}.0.weight" in p:
        return _bn(p, _conv(p, x, f"{down}.0", stride), f"{down}.1")
    return x


def _cifar_shortcut(p, x, prefix, stride, planes):
    """Option B (shortcut.0 conv + shortcut.1 BN) when its keys exist; else, where the shape changes, option A:
    x[:, ::2, ::2] with planes // 4 zero channels on both sides; else identity."""
    if f"{prefix}.shortcut.0.weight" in p:
        return _bn(p, _conv(p, x, f"{prefix}.shortcut.0", stride), f"{prefix}.shortcut.1")
    if stride == 1 and x.shape[-1] == planes:
        return x
    pad = planes // 4
    if x.shape[-1] + 2 * pad != planes:
        raise UserError(f"cannot interpret {prefix}: an option A shortcut cannot pad {x.shape[-1]} channels "
                        f"to {planes}")
    return np.pad(x[:, ::2, ::2], ((0, 0), (0, 0), (0, 0), (pad, pad)))


def _residual_stages(p, x, shortcut):
    for prefix, stride in _blocks(p, r"layer(\d+)\.(\d+)\.", "layer{}.{}", 1):
        y = _branch(p, x, prefix, stride)
        x = _relu(y + shortcut(p, x, prefix, stride, y.shape[-1]))
    return x


def _forward_v1(p, x):
    """torchvision / timm ResNet: stem, max pool, layer1..N, global average pool, fc."""
    x = _max_pool(_deep_stem(p, x) if "conv1.0.weight" in p else _default_stem(p, x))
    return _classify(p, _residual_stages(p, x, _imagenet_shortcut), "fc")


def _forward_cifar(p, x):
    """CIFAR ResNet: 3x3 stem (stride 1, no pooling), layer1..N, global average pool, linear."""
    x = _relu(_bn(p, _conv(p, x, "conv1"), "bn1"))
    return _classify(p, _residual_stages(p, x, _cifar_shortcut), "linear")


# ---------------------------------------------------------------------------------------------------------------
# timm ResNetV2 (pre-activation)


def _forward_v2(p, x):
    """timm ResNetV2: stem conv (no norm) + max pool; pre-activation bottlenecks (norm1 -> relu feeds conv1 and the
    downsample conv, no relu after the add); final norm -> relu; global average pool; head.fc (1x1 conv)."""
    x = _max_pool(_conv(p, x, "stem.conv", stride=2))
    for prefix, stride in _blocks(p, r"stages\.(\d+)\.blocks\.(\d+)\.", "stages.{}.blocks.{}", 0):
        preact = _relu(_bn(p, x, f"{prefix}.norm1"))
        shortcut = _conv(p, preact, f"{prefix}.downsample.conv", stride) if f"{prefix}.downsample.conv.weight" in p \
            else x
        y = _conv(p, preact, f"{prefix}.conv1")
        y = _conv(p, _relu(_bn(p, y, f"{prefix}.norm2")), f"{prefix}.conv2", stride)
        x = _conv(p, _relu(_bn(p, y, f"{prefix}.norm3")), f"{prefix}.conv3") + shortcut
    return _classify(p, _relu(_bn(p, x, "norm")), "head.fc")


def _forward_timm(p, x):
    return _forward_v2(p, x) if "stem.conv.weight" in p else _forward_v1(p, x)


_FORWARDS = {"torchvision": _forward_v1, "timm": _forward_timm, "cifar": _forward_cifar}


def torch_forward(state, images, layout):
    """Run the PyTorch ResNet described by `state` on `images`, in eval mode.

    state: {key: np.ndarray} in torch layout (conv weight OIHW, linear (out, in)), already unwrapped (no
    'module.' prefix, as reszoo.weights.state_dict.load_state_dict returns it); images: NHWC float32 numpy;
    layout: "torchvision" | "timm" | "cifar". Returns the logits (N, classes) as float32, or, when the state
    dict has no classifier tensors, the final feature map in NHWC (after the last ReLU, before pooling).
    Raises UserError for keys it cannot interpret (missing, unused, or of unexpected shape).
    """
    if layout not in _FORWARDS:
        raise UserError(f"unknown layout {layout!r}; expected one of {', '.join(_FORWARDS)}")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise UserError(f"images must be NHWC (4-D), got shape {images.shape}")
    params = _Params(state, layout)
    out = _FORWARDS[layout](params, images)
    params.check_all_used()
    return out.astype(np.float32)
