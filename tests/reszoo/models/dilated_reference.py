"""Stage features of PyTorch ResNet state dicts with timm's `output_stride`, in tf.nn (test support).

Nothing here comes from `reszoo`: the state dicts are those of the importer's independent reference
(tests/reszoo/weights/torch_reference.py, whose ceil-mode avg pool this reuses); the forward pass runs in float64
and is written from timm's source (timm/models/resnet.py `make_blocks`, `downsample_avg`, `BasicBlock`,
`Bottleneck`; timm/models/resnetv2.py `ResNetV2`, `ResNetStage`, `PreActBottleneck`):

* the stage loop: net stride starts at 4; a stage whose stride would pass `output_stride` gets stride 1 and
  multiplies the dilation by 2 instead; a block's first 3x3 uses the previous dilation, the rest the new one
  (ResNetV2: `first_dilation = 1 if dilation in (1, 2) else 2`, the same numbers);
* convolutions pad like timm's `get_padding`: ((stride - 1) + dilation * (k - 1)) // 2 on each side;
* avg-down (ResNet-D): identity at stride 1 / dilation 1, AvgPool2d(2, 2, ceil_mode=True,
  count_include_pad=False) when strided, and `AvgPool2dSame(2, 1)` in a dilated block (one zero row and column
  appended, counted in the average).

Stage features: each stage's output (timm's `layer{k}` / `stages.{k}`); ResNetV2's last one after the final
`norm` + ReLU (forward_intermediates(norm=True)).
"""
import numpy as np
import tensorflow as tf

from tests.reszoo.weights.torch_reference import BN_EPS, _Params, _avg_pool_2_ceil, _pad_spatial

EXPANSION = {"basic": 1, "bottleneck": 4}
DTYPE = tf.float64  # the reference runs in float64, so a comparison measures the Keras model's float32 error


def param(p, key):
    return tf.constant(p(key), DTYPE)


def conv(p, x, name, stride=1, dilation=1, groups=1, bias=False):
    """F.conv2d with timm's padding for `name.weight` (OIHW), dilated, grouped group by group."""
    weight = p(f"{name}.weight")
    padding = ((stride - 1) + dilation * (weight.shape[-1] - 1)) // 2
    if padding:
        x = _pad_spatial(x, padding)
    kernels = np.split(np.transpose(weight, (2, 3, 1, 0)).astype(np.float64), groups, axis=-1)
    parts = [tf.nn.conv2d(part, kernel, strides=stride, padding="VALID", dilations=dilation)
             for part, kernel in zip(tf.split(x, groups, axis=-1), kernels)]
    y = parts[0] if groups == 1 else tf.concat(parts, axis=-1)
    return y + param(p, f"{name}.bias") if bias else y


def bn(p, x, name):
    """BatchNorm2d in eval mode."""
    scale = param(p, f"{name}.weight") / tf.sqrt(param(p, f"{name}.running_var") + BN_EPS)
    return (x - param(p, f"{name}.running_mean")) * scale + param(p, f"{name}.bias")


def max_pool_3x3_s2_p1(x):
    """nn.MaxPool2d(3, stride=2, padding=1): the padding never wins (it is -inf)."""
    return tf.nn.max_pool2d(_pad_spatial(x, 1, value=-np.inf), 3, 2, "VALID")


def se(p, x, prefix):
    """timm SEModule: mean -> fc1 (1x1, bias) -> ReLU -> fc2 (1x1, bias) -> sigmoid gate."""
    hidden = tf.nn.relu(conv(p, tf.reduce_mean(x, axis=[1, 2], keepdims=True), f"{prefix}.se.fc1", bias=True))
    return x * tf.sigmoid(conv(p, hidden, f"{prefix}.se.fc2", bias=True))


def stem(p, x, kind):
    """torchvision's 7x7/2 conv + bn1, or timm's deep stem (conv1.0/1.1, conv1.3/1.4, conv1.6 + bn1); ReLU, max pool."""
    if kind == "deep":
        x = tf.nn.relu(bn(p, conv(p, x, "conv1.0", stride=2), "conv1.1"))
        x = tf.nn.relu(bn(p, conv(p, x, "conv1.3"), "conv1.4"))
        x = bn(p, conv(p, x, "conv1.6"), "bn1")
    else:
        x = bn(p, conv(p, x, "conv1", stride=2), "bn1")
    return max_pool_3x3_s2_p1(tf.nn.relu(x))


def avg_pool_same_2x2_s1(x):
    """timm AvgPool2dSame(2, stride=1): pad_same adds one zero row and column after; zeros are averaged in."""
    return tf.nn.avg_pool2d(tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]), 2, 1, "VALID")


def stage_plan(num_stages, output_stride):
    """[(stride, dilation)] per stage, timm's rule."""
    plan, net_stride, dilation = [], 4, 1
    for stage in range(num_stages):
        stride = 1 if stage == 0 else 2
        if net_stride >= output_stride:
            dilation, stride = dilation * stride, 1
        else:
            net_stride *= stride
        plan.append((stride, dilation))
    return plan


def downsample(p, x, prefix, stride, dilation, avg_down):
    """timm downsample_conv (1x1, kernel stays 1) or downsample_avg."""
    if not avg_down:
        return bn(p, conv(p, x, f"{prefix}.downsample.0", stride), f"{prefix}.downsample.1")
    if stride > 1:
        x = _avg_pool_2_ceil(x, stride)
    elif dilation > 1:
        x = avg_pool_same_2x2_s1(x)
    return bn(p, conv(p, x, f"{prefix}.downsample.1"), f"{prefix}.downsample.2")


def branch(p, x, prefix, block, stride, first_dilation, dilation, groups):
    """BasicBlock (conv1 strided at first_dilation, conv2 at dilation) or Bottleneck (conv2 strided at
    first_dilation) residual branch, before SE and the add."""
    if block == "basic":
        y = tf.nn.relu(bn(p, conv(p, x, f"{prefix}.conv1", stride, first_dilation), f"{prefix}.bn1"))
        return bn(p, conv(p, y, f"{prefix}.conv2", 1, dilation), f"{prefix}.bn2")
    y = tf.nn.relu(bn(p, conv(p, x, f"{prefix}.conv1"), f"{prefix}.bn1"))
    y = tf.nn.relu(bn(p, conv(p, y, f"{prefix}.conv2", stride, first_dilation, groups), f"{prefix}.bn2"))
    return bn(p, conv(p, y, f"{prefix}.conv3"), f"{prefix}.bn3")


def resnet_features(state, x, arch, output_stride=32):
    """Stage outputs of a torchvision / timm ResNet state dict (`arch` as torch_reference's)."""
    p = _Params(state)
    x = stem(p, tf.constant(x, DTYPE), arch.get("stem", "default"))
    inplanes, prev_dilation, features = arch["width"], 1, []
    for stage, ((stride, dilation), count) in enumerate(zip(stage_plan(len(arch["stage_blocks"]), output_stride),
                                                            arch["stage_blocks"])):
        planes = arch["width"] * 2 ** stage * EXPANSION[arch["block"]]
        for index in range(count):
            prefix, block_stride = f"layer{stage + 1}.{index}", stride if index == 0 else 1
            y = branch(p, x, prefix, arch["block"], block_stride, prev_dilation, dilation, arch.get("groups", 1))
            if arch.get("se"):
                y = se(p, y, prefix)
            projects = index == 0 and (stride != 1 or inplanes != planes)
            shortcut = downsample(p, x, prefix, block_stride, dilation,
                                  arch.get("downsample") == "avgpool") if projects else x
            x = tf.nn.relu(y + shortcut)
            prev_dilation, inplanes = dilation, planes
        features.append(x.numpy())
    return features


def resnetv2_features(state, x, arch, output_stride=32):
    """Stage outputs of a timm ResNetV2 (BatchNorm) state dict; the last after `norm` + ReLU."""
    p = _Params(state)
    x = max_pool_3x3_s2_p1(conv(p, tf.constant(x, DTYPE), "stem.conv", stride=2))
    features = []
    for stage, ((stride, dilation), count) in enumerate(zip(stage_plan(len(arch["stage_blocks"]), output_stride),
                                                            arch["stage_blocks"])):
        first_dilation = 1 if dilation in (1, 2) else 2
        for index in range(count):
            prefix, block_stride = f"stages.{stage}.blocks.{index}", stride if index == 0 else 1
            preact = tf.nn.relu(bn(p, x, f"{prefix}.norm1"))
            shortcut = conv(p, preact, f"{prefix}.downsample.conv", block_stride) if index == 0 else x
            y = conv(p, preact, f"{prefix}.conv1")
            y = conv(p, tf.nn.relu(bn(p, y, f"{prefix}.norm2")), f"{prefix}.conv2", block_stride, first_dilation)
            x = conv(p, tf.nn.relu(bn(p, y, f"{prefix}.norm3")), f"{prefix}.conv3") + shortcut
            first_dilation = dilation
        features.append(x.numpy())
    features[-1] = tf.nn.relu(bn(p, tf.constant(features[-1]), "norm")).numpy()
    return features


FORWARDS = {"torchvision": resnet_features, "timm": resnet_features, "timm_v2": resnetv2_features}


def reference_features(state, layout, x, arch, output_stride=32):
    """Stage features (list of NHWC float64 arrays) of `state` in `layout` on images `x`."""
    return FORWARDS[layout](state, np.asarray(x, np.float64), arch, output_stride)
