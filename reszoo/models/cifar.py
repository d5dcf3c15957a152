"""CIFAR ResNets (He et al. 2015, section 4.2): 3 stages of 16/32/64 filters, 6n+2 layers, and their
plain (no skip) and highway (gated skip) twins used in the degradation study.

Example:
    >>> from reszoo.models.cifar import CifarResNet
    >>> CifarResNet(depth=20, width=4, input_shape=(32, 32, 3)).count_params() < 20_000
    True
"""
import keras
from keras import layers

from reszoo.models.blocks import (BN_EPSILON, check_choice, check_common_args, check_drop_path_rate,
                                  classifier_head, connection_mode, conv_bn, drop_path_rates, merge, with_bn_epsilon,
                                  zero_pad_shortcut)
from reszoo.models.features import check_feature_args, feature_outputs, refuse_output_stride
from reszoo.models.registry import register_model
from reszoo.weights.keras_weights import load_weights

SHORTCUTS = ("A", "B")
PAPER_2015 = "He et al. 2015, Deep Residual Learning for Image Recognition, arXiv:1512.03385 (sec. 4.2)"
PAPER_HIGHWAY = "Srivastava et al. 2015, Highway Networks, arXiv:1505.00387 (on the CIFAR ResNet layout)"
NO_OUTPUT_STRIDE = ("they end at stride 4 (stages at strides 1, 2, 4), there is no stride-32 stage to dilate; "
                    "leave output_stride=None")


def cifar_shortcut(x, filters, strides, shortcut, name, weight_decay):
    """Identity when shapes match; else option A (zero-pad, parameter-free) or B (1x1 projection + BN)."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    if shortcut == "A":
        return zero_pad_shortcut(x, filters, strides, name=f"{name}_0")
    return conv_bn(x, filters, 1, strides, name=f"{name}_0", activation=None, weight_decay=weight_decay)


def cifar_block(x, filters, strides, name, mode, shortcut="A", zero_init_residual=False, weight_decay=0.0,
                drop_path_rate=0.0):
    """Basic 2-layer block: 3x3 conv-BN-ReLU, 3x3 conv-BN, merge with shortcut, ReLU (`{name}_out`).

    drop_path_rate: this block's stochastic-depth rate (a `{name}_drop_path` Dropout before the merge when > 0).
    """
    skip = cifar_shortcut(x, filters, strides, shortcut, name, weight_decay) if mode != "plain" else None
    y = conv_bn(x, filters, 3, strides, name=f"{name}_1", weight_decay=weight_decay)
    y = conv_bn(y, filters, 3, 1, name=f"{name}_2", activation=None, zero_gamma=zero_init_residual,
                weight_decay=weight_decay)
    y = merge(skip, y, mode, name, block_input=x, strides=strides, weight_decay=weight_decay,
              drop_path_rate=drop_path_rate)
    return layers.Activation("relu", name=f"{name}_out")(y)


def CifarResNet(depth=20, *, width=16, shortcut="A", skip=True, highway=False, input_shape=None, num_classes=10,
                include_top=True, pooling=None, classifier_activation="softmax", weights=None, dropout_rate=0.0,
                zero_init_residual=False, weight_decay=0.0, bn_epsilon=BN_EPSILON, drop_path_rate=0.0,
                features_only=False, out_indices=None, output_stride=None, name=None):
    """Build a 6n+2-layer CIFAR ResNet (or its plain/highway twin) as a Keras functional model.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110, 1202, ...).
        width: filters of the first stage (16 in the paper); stages use width, 2*width, 4*width.
        shortcut: "A" zero-padded identity (paper default, no parameters) or "B" projection.
        skip: False gives the plain net (same layers, no shortcut).
        highway: True gates the skip: y = T(x)*F(x) + (1-T(x))*x.
        bn_epsilon: BatchNormalization epsilon (keras.applications' 1.001e-5; 1e-5 for PyTorch weights).
        drop_path_rate: stochastic depth (Huang et al. 2016): in training each sample skips block i's residual
            branch with probability drop_path_rate * i / (num_blocks - 1) over all 3n blocks (0 for the first),
            kept branches scaled by 1 / (1 - p); identity at inference. A Dropout `{block}_drop_path` per block
            with p > 0; 0 (default) adds no layer. In [0, 1); > 0 needs skip=True (plain nets raise
            ValueError). With highway=True the gated term T*(F(x) - x) is dropped, so a dropped block is the
            identity.
        features_only: return the stage outputs `stage1..stage3` (strides 1, 2, 4) instead of the classifier;
            out_indices picks and orders them. See `reszoo.models.features`.
        output_stride: not offered (ValueError unless None): the net already ends at stride 4.

    Example:
        >>> CifarResNet(20, width=4, skip=False).name
        'plain20'
    """
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"depth={depth!r} must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202)")
    check_choice("shortcut", shortcut, SHORTCUTS)
    out_indices = check_feature_args(features_only, out_indices, 3, pooling)
    refuse_output_stride(output_stride, "the CIFAR ResNets", NO_OUTPUT_STRIDE)
    include_top = include_top and not features_only
    check_common_args(input_shape, include_top, num_classes, weights, dropout_rate)
    check_drop_path_rate(drop_path_rate, skip)
    mode = connection_mode(skip, highway)
    name = name or {"residual": "resnet", "plain": "plain", "highway": "highway"}[mode] + str(depth)
    inputs = keras.Input(shape=input_shape or (32, 32, 3), name="input")
    x = conv_bn(inputs, width, 3, 1, name="conv1", weight_decay=weight_decay)
    blocks_per_stage = (depth - 2) // 6
    rates = iter(drop_path_rates(drop_path_rate, 3 * blocks_per_stage))
    stage_outputs = []
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = cifar_block(x, filters, strides, f"conv{stage + 2}_block{block + 1}", mode, shortcut,
                            zero_init_residual, weight_decay, next(rates))
        stage_outputs.append(x)
    if features_only:
        x = feature_outputs(stage_outputs, out_indices)
    else:
        x = classifier_head(x, include_top, pooling, num_classes, classifier_activation, dropout_rate, weight_decay)
    model = keras.Model(inputs, x, name=name)
    return load_weights(with_bn_epsilon(model, bn_epsilon), weights)


def _register(depth, skip=True, highway=False):
    prefix = "highway" if highway else ("resnet" if skip else "plain")
    name = f"{prefix}{depth}"
    paper = PAPER_HIGHWAY if highway else PAPER_2015

    @register_model(name, family=f"cifar_{prefix}", paper=paper, default_input=(32, 32, 3), default_classes=10)
    def build(**kwargs):
        kwargs.setdefault("skip", skip)
        kwargs.setdefault("highway", highway)
        return CifarResNet(depth, **kwargs)

    build.__name__ = name
    build.__doc__ = f"{name}: CIFAR layout, depth {depth} ({prefix}). Example: reszoo.create_model({name!r})"
    return build


CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
for _depth in CIFAR_DEPTHS:
    _register(_depth)
for _depth in (20, 56):
    _register(_depth, skip=False)
    _register(_depth, highway=True)
