"""Pre-activation ResNet v2 (He et al. 2016) in two public layouts (`V2_STYLES`), with the same layer names.

`style="keras"` (resnet50v2/101v2/152v2) is keras.applications' ResNetV2: the stem conv has a bias and no BN;
each block starts with `{block}_preact_bn/_relu`; the first block of a stage has a projection shortcut
(`_0_conv`, with bias) at stride 1, the LAST block of each stage but the final one carries the stride (its
identity shortcut is a 1x1 max-pool subsample); the closing 1x1 conv (`_3_conv`) has a bias; the stem max-pool
pads with zeros; `post_bn`/`post_relu` follow the last stage. Parameter counts therefore equal keras.applications'
(ResNet-50 v2: 25,613,800 including BN moving statistics).

`style="timm"` (resnetv2_50/101) is timm's ResNetV2 with BatchNorm (`resnetv2_50.a1h_in1k`): the FIRST block of
a stage strides (on its 3x3 conv, projecting the pre-activation), no conv has a bias, and the stem max-pool's
padding never wins the max (torch's MaxPool2d(3, 2, padding=1) on un-activated values).

Example:
    >>> from reszoo.models.resnet_v2 import ResNetV2
    >>> ResNetV2((1, 1), width=8, input_shape=(32, 32, 3), num_classes=10).output_shape
    (None, 10)
"""
import dataclasses
import functools

import keras
from keras import layers

from reszoo.models.blocks import (BN_EPSILON, batch_norm, check_choice, check_common_args, check_drop_path_rate,
                                  classifier_head, connection_mode, conv, drop_path_rates,
                                  max_pool_3x3_s2_exclude_pad, merge, with_bn_epsilon)
from reszoo.models.features import StridePlan, check_feature_args, check_output_stride, feature_outputs
from reszoo.models.resnet import check_stage_blocks
from reszoo.models.registry import register_rows
from reszoo.weights.keras_weights import load_weights

PAPER_V2 = "He et al. 2016, Identity Mappings in Deep Residual Networks, arXiv:1603.05027"
EXPANSION = 4

# registered name -> blocks per stage (keras.applications ResNet50V2 / 101V2 / 152V2)
RESNET_V2_DEPTHS = {
    "resnet50v2": (3, 4, 6, 3),
    "resnet101v2": (3, 4, 23, 3),
    "resnet152v2": (3, 8, 36, 3),
}
# registered name -> blocks per stage (timm resnetv2_50 / resnetv2_101, BatchNorm)
TIMM_V2_DEPTHS = {
    "resnetv2_50": (3, 4, 6, 3),
    "resnetv2_101": (3, 4, 23, 3),
}


@dataclasses.dataclass(frozen=True)
class V2Style:
    """What differs between the public pre-activation layouts."""

    stride_in_first_block: bool  # else in the last block of a stage (keras.applications)
    conv_bias: bool  # stem, projection and closing 1x1 convs have a bias
    stem_pool_excludes_pad: bool  # torch MaxPool2d(padding=1) semantics, else zero padding then max pool


V2_STYLES = {
    "keras": V2Style(stride_in_first_block=False, conv_bias=True, stem_pool_excludes_pad=False),
    "timm": V2Style(stride_in_first_block=True, conv_bias=False, stem_pool_excludes_pad=True),
}


def bn_relu(x, name, zero_gamma=False):
    """BN `{name}_bn` then ReLU `{name}_relu`."""
    x = batch_norm(x, f"{name}_bn", zero_gamma)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def preact_shortcut(x, preact, out_channels, strides, name, weight_decay, use_bias=True):
    """v2 shortcut: projection of the pre-activation when channels change, else identity (subsampled by a 1x1
    max-pool `{name}_0_pool` when strided)."""
    if x.shape[-1] != out_channels:
        return conv(preact, out_channels, 1, strides, f"{name}_0", use_bias=use_bias, weight_decay=weight_decay)
    if strides > 1:
        return layers.MaxPooling2D(1, strides=strides, name=f"{name}_0_pool")(x)
    return x


def preact_bottleneck(x, planes, strides, name, mode, zero_init_residual=False, weight_decay=0.0, use_bias=True,
                      drop_path_rate=0.0, dilation=1):
    """BN-ReLU, then 1x1 -> BN-ReLU -> 3x3 (strided, or dilated by `dilation`) -> BN-ReLU -> 1x1 (bias if
    `use_bias`); merged by `mode`.

    zero_init_residual zeroes `{name}_2_bn`'s gamma, which makes the residual branch output its bias (0).
    drop_path_rate: this block's stochastic-depth rate (a `{name}_drop_path` Dropout before the merge when > 0).
    """
    preact = bn_relu(x, f"{name}_preact")
    shortcut = None
    if mode != "plain":
        shortcut = preact_shortcut(x, preact, planes * EXPANSION, strides, name, weight_decay, use_bias)
    y = conv(preact, planes, 1, 1, f"{name}_1", weight_decay=weight_decay)
    y = bn_relu(y, f"{name}_1")
    y = conv(y, planes, 3, strides, f"{name}_2", weight_decay=weight_decay, dilation=dilation)
    y = bn_relu(y, f"{name}_2", zero_gamma=zero_init_residual)
    y = conv(y, planes * EXPANSION, 1, 1, f"{name}_3", use_bias=use_bias, weight_decay=weight_decay)
    return merge(shortcut, y, mode, name, block_input=x, strides=strides, weight_decay=weight_decay,
                 drop_path_rate=drop_path_rate)


def stem(x, width, style, weight_decay):
    """7x7/2 conv `conv1` (no BN), then a 3x3/2 max-pool `pool1` (padding per `style`)."""
    x = conv(x, width, 7, 2, "conv1", use_bias=style.conv_bias, weight_decay=weight_decay)
    if style.stem_pool_excludes_pad:
        return max_pool_3x3_s2_exclude_pad(x, "pool1")
    x = layers.ZeroPadding2D(padding=1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def block_strides(stage, index, blocks, last_stage, style):
    """2 for the block that downsamples stage `stage` (first or last block by `style`; none in stage 0 for
    timm, none in the last stage for keras), else 1."""
    if style.stride_in_first_block:
        return 2 if stage > 0 and index == 0 else 1
    return 2 if index == blocks - 1 and stage < last_stage else 1


def ResNetV2(stage_blocks, *, width=64, skip=True, highway=False, input_shape=None, num_classes=1000,
             include_top=True, pooling=None, classifier_activation="softmax", weights=None, dropout_rate=0.0,
             zero_init_residual=False, weight_decay=0.0, bn_epsilon=BN_EPSILON, style="keras", drop_path_rate=0.0,
             features_only=False, out_indices=None, output_stride=None, name=None):
    """Build a pre-activation bottleneck ResNet v2 (or its plain / highway twin) in a `V2_STYLES` layout.

    Args:
        stage_blocks: blocks per stage, e.g. (3, 4, 6, 3); stage i has width * 2**i planes.
        width: planes of the first stage and stem width (64 in the paper).
        skip: False gives the plain pre-activation net; highway: gated skip T*F(x) + (1-T)*x.
        bn_epsilon: BatchNormalization epsilon (keras.applications' 1.001e-5; 1e-5 for PyTorch weights).
        style: "keras" (keras.applications ResNetV2) or "timm" (timm resnetv2_*: stride in the first block, no
            conv biases, torch max-pool padding; needs a fixed input size).
        drop_path_rate: stochastic depth (Huang et al. 2016): in training each sample skips block i's residual
            branch with probability drop_path_rate * i / (num_blocks - 1) over all blocks of the net (0 for the
            first), kept branches scaled by 1 / (1 - p); identity at inference. A Dropout `{block}_drop_path`
            per block with p > 0; 0 (default) adds no layer. In [0, 1); > 0 needs skip=True. With highway=True
            the gated term T*(F(x) - x) is dropped, so a dropped block is the identity.
        features_only: return the stage outputs `stage1..stageN` (strides 4, 8, 16, 32: each the input of the
            block that strides to the next resolution, the last one after `post` BN-ReLU) instead of the
            classifier; out_indices picks and orders them. See `reszoo.models.features`.
        output_stride: 16 or 8 dilates the last stage(s) instead of striding them (DeepLab); None / 32 = no.

    Example (ResNetV2((3, 4, 6, 3)) is ResNet-50 v2: 25,613,800 parameters, as keras.applications' ResNet50V2):
        >>> ResNetV2((2, 2), width=8, input_shape=(32, 32, 3), num_classes=10).count_params()
        15786
    """
    check_stage_blocks(stage_blocks)
    out_indices = check_feature_args(features_only, out_indices, len(stage_blocks), pooling)
    plan = StridePlan(check_output_stride(output_stride))
    include_top = include_top and not features_only
    check_common_args(input_shape, include_top, num_classes, weights, dropout_rate)
    check_drop_path_rate(drop_path_rate, skip)
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width={width!r} must be a positive integer")
    check_choice("style", style, tuple(V2_STYLES))
    mode, chosen = connection_mode(skip, highway), V2_STYLES[style]
    inputs = keras.Input(shape=input_shape or (224, 224, 3), name="input")
    x = stem(inputs, width, chosen, weight_decay)
    rates = iter(drop_path_rates(drop_path_rate, sum(stage_blocks)))
    stage_outputs = []
    for stage, blocks in enumerate(stage_blocks):
        for index in range(blocks):
            nominal = block_strides(stage, index, blocks, len(stage_blocks) - 1, chosen)
            if nominal > 1:
                stage_outputs.append(x)  # the last tensor at this resolution
            strides, first_dilation, _ = plan.step(nominal)
            x = preact_bottleneck(x, width * 2**stage, strides, f"conv{stage + 2}_block{index + 1}", mode,
                                  zero_init_residual, weight_decay, chosen.conv_bias, next(rates), first_dilation)
    x = bn_relu(x, "post")
    if features_only:
        x = feature_outputs([*stage_outputs, x], out_indices)
    else:
        x = classifier_head(x, include_top, pooling, num_classes, classifier_activation, dropout_rate, weight_decay)
    model = keras.Model(inputs, x, name=name or "resnetv2")
    return load_weights(with_bn_epsilon(model, bn_epsilon), weights)


register_rows(RESNET_V2_DEPTHS, ResNetV2, family="resnet_v2", paper=PAPER_V2,
              describe=lambda name, rows: f"{name}: pre-activation, blocks {rows}. "
                                          f"Example: reszoo.create_model({name!r})")
register_rows(TIMM_V2_DEPTHS, functools.partial(ResNetV2, style="timm"), family="resnet_v2", paper=PAPER_V2,
              describe=lambda name, rows: f"{name}: pre-activation in timm's layout (stride in the first block, "
                                          f"no conv bias), blocks {rows}. Example: reszoo.create_model({name!r})")
