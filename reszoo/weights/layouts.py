"""PyTorch state-dict layouts: which torch module becomes which reszoo layer, and what the keys tell the builder.

Three layouts (`LAYOUTS`), told apart by their keys (`detect_layout`, the order of LAYOUTS is the order tried):
- `cifar`: the classic CIFAR ResNet code (`conv1, bn1, layer{1,2,3}.{i}.conv1/bn1/conv2/bn2, linear`),
  option A shortcut (no parameters) or option B (`shortcut.0/1`).
- `timm`: timm's ResNet family: torchvision's keys plus the deep stem (`conv1.0/1/3/4/6`, ResNet-C/D),
  avg-down shortcuts (`downsample.1/2`, ResNet-D) and squeeze-excitation (`se.fc1/fc2`); and timm's
  pre-activation ResNetV2 with BatchNorm (`stem.conv, stages.{s}.blocks.{i}.norm1..3/conv1..3/downsample.conv,
  norm, head.fc`), which reszoo builds as `resnetv2_50` / `resnetv2_101`.
- `torchvision`: torchvision.models.resnet (resnet18-152, resnext, wide_resnet): `conv1, bn1,
  layer{1-4}.{i}.conv{1,2,3}/bn{1,2,3}/downsample.0/1, fc`.

Block modules `layer{s}.{i}.<part>` (`stages.{s-1}.blocks.{i}.<part>`) become `conv{s+1}_block{i+1}_<suffix>`,
the keras.applications names every reszoo builder uses.

Example:
    >>> keys = ["conv1.weight", "layer1.0.conv1.weight", "linear.weight"]
    >>> detect_layout(dict.fromkeys(keys)).name
    'cifar'
"""
import dataclasses
import re
from typing import Callable

from reszoo.errors import UserError

BLOCK_MODULE = re.compile(r"layer(\d+)\.(\d+)\.(.+)")  # stage counted from 1
V2_BLOCK_MODULE = re.compile(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)")  # stage counted from 0
TORCH_BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default, used by torchvision, timm and the CIFAR code

# block part -> reszoo layer suffix
TORCHVISION_BLOCK = {"conv1": "1_conv", "bn1": "1_bn", "conv2": "2_conv", "bn2": "2_bn", "conv3": "3_conv",
                     "bn3": "3_bn", "downsample.0": "0_conv", "downsample.1": "0_bn"}
TIMM_AVG_DOWN = {"downsample.1": "0_conv", "downsample.2": "0_bn"}  # downsample.0 is the (parameter-free) pool
TIMM_SE = {"se.fc1": "se_reduce", "se.fc2": "se_expand"}
TIMM_V2_BLOCK = {"norm1": "preact_bn", "conv1": "1_conv", "norm2": "1_bn", "conv2": "2_conv", "norm3": "2_bn",
                 "conv3": "3_conv", "downsample.conv": "0_conv"}
CIFAR_BLOCK = {"conv1": "1_conv", "bn1": "1_bn", "conv2": "2_conv", "bn2": "2_bn", "shortcut.0": "0_conv",
               "shortcut.1": "0_bn"}

# top-level module -> reszoo layer
DEFAULT_STEM = {"conv1": "conv1_conv", "bn1": "conv1_bn"}
DEEP_STEM = {"conv1.0": "conv1_1_conv", "conv1.1": "conv1_1_bn", "conv1.3": "conv1_2_conv", "conv1.4": "conv1_2_bn",
             "conv1.6": "conv1_3_conv", "bn1": "conv1_3_bn"}
TIMM_V2_TOP = {"stem.conv": "conv1_conv", "norm": "post_bn", "head.fc": "predictions"}


def _modules(state):
    return {key.rsplit(".", 1)[0] for key in state}


def _has(state, pattern):
    return any(re.search(pattern, key) for key in state)


def _block_names(modules, block_table, pattern=BLOCK_MODULE, first_stage=1):
    """{module: reszoo layer} for the block modules (`pattern`: stage, index, part) whose part is in `block_table`."""
    names = {}
    for module in modules:
        match = pattern.fullmatch(module)
        if match and match.group(3) in block_table:
            stage, index, part = int(match.group(1)) - first_stage, int(match.group(2)), match.group(3)
            names[module] = f"conv{stage + 2}_block{index + 1}_{block_table[part]}"
    return names


def _is_timm_v2(state):
    return _has(state, r"^stages\.\d+\.blocks\.")


def torchvision_names(state):
    modules = _modules(state)
    return {**DEFAULT_STEM, "fc": "predictions", **_block_names(modules, TORCHVISION_BLOCK)}


def timm_names(state):
    modules = _modules(state)
    if _is_timm_v2(state):
        return {**TIMM_V2_TOP, **_block_names(modules, TIMM_V2_BLOCK, V2_BLOCK_MODULE, first_stage=0)}
    stem = DEEP_STEM if "conv1.0" in modules else DEFAULT_STEM
    block = {**TORCHVISION_BLOCK, **TIMM_SE, **(TIMM_AVG_DOWN if _has(state, r"\.downsample\.2\.") else {})}
    return {**stem, "fc": "predictions", **_block_names(modules, block)}


def cifar_names(state):
    return {**DEFAULT_STEM, "linear": "predictions", **_block_names(_modules(state), CIFAR_BLOCK)}


def _head_kwargs(state, classifier):
    """num_classes from the classifier's shape; a checkpoint without one builds a headless model."""
    weight = state.get(f"{classifier}.weight")
    return {"num_classes": int(weight.shape[0])} if weight is not None else {"include_top": False}


def imagenet_kwargs(state):
    """Stem width from the stem's last BN; classes from `fc`; torch's BN epsilon."""
    kwargs = {"bn_epsilon": TORCH_BN_EPSILON, **_head_kwargs(state, "fc")}
    if "bn1.weight" in state:
        kwargs["width"] = int(state["bn1.weight"].shape[0])
    return kwargs


def timm_kwargs(state):
    """imagenet_kwargs, or for ResNetV2 the stem width from `stem.conv` and classes from `head.fc`."""
    if not _is_timm_v2(state):
        return imagenet_kwargs(state)
    kwargs = {"bn_epsilon": TORCH_BN_EPSILON, **_head_kwargs(state, "head.fc")}
    if "stem.conv.weight" in state:
        kwargs["width"] = int(state["stem.conv.weight"].shape[0])
    return kwargs


def cifar_kwargs(state):
    """Width from `conv1`; option B when there are `shortcut.0` convs; classes from `linear`."""
    kwargs = {"bn_epsilon": TORCH_BN_EPSILON, "shortcut": "B" if _has(state, r"\.shortcut\.0\.weight$") else "A",
              **_head_kwargs(state, "linear")}
    if "conv1.weight" in state:
        kwargs["width"] = int(state["conv1.weight"].shape[0])
    return kwargs


@dataclasses.dataclass(frozen=True)
class Layout:
    """One state-dict layout: how to recognise it, name its modules, and what its keys tell the builder."""

    name: str
    detect: Callable  # state -> bool
    module_names: Callable  # state -> {torch module: reszoo layer name}
    builder_kwargs: Callable  # state -> builder keyword arguments read from the weights
    classifiers: tuple  # the torch modules a classifier may have (dropped with include_top=False)
    example: str


LAYOUTS = {
    "cifar": Layout("cifar", lambda s: "linear.weight" in s and _has(s, r"^layer1\.") and not _has(s, r"^layer4\."),
                    cifar_names, cifar_kwargs, ("linear",), "classic CIFAR ResNet-20..1202 (.th)"),
    "timm": Layout("timm", lambda s: _is_timm_v2(s) or (_has(s, r"^layer1\.") and
                                                         _has(s, r"^conv1\.0\.|\.downsample\.2\.|\.se\.fc1\.")),
                   timm_names, timm_kwargs, ("fc", "head.fc"), "timm resnet*/resnet*d/seresnet*/resnext*/resnetv2_*"),
    "torchvision": Layout("torchvision", lambda s: "conv1.weight" in s and _has(s, r"^layer1\."),
                          torchvision_names, imagenet_kwargs, ("fc",), "torchvision resnet18-152, resnext, wide_resnet"),
}
LAYOUT_CHOICES = ("auto", *LAYOUTS)


def detect_layout(state):
    """The first of LAYOUTS whose `detect` accepts the keys; UserError listing some keys when none does."""
    for layout in LAYOUTS.values():
        if layout.detect(state):
            return layout
    shown = ", ".join(sorted(state)[:6])
    raise UserError(f"cannot tell the layout from the keys ({shown}, ...); pass a layout: {', '.join(LAYOUTS)}")


def choose_layout(state, layout="auto"):
    """LAYOUTS[layout], or the detected one for "auto"; UserError for an unknown name.

    Example:
        >>> choose_layout({}, "timm").classifiers
        ('fc', 'head.fc')
    """
    if layout == "auto":
        return detect_layout(state)
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; allowed: {', '.join(LAYOUT_CHOICES)}")
    return LAYOUTS[layout]
