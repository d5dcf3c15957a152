"""DenseNet (Huang et al. 2017): dense skips — every layer sees the concatenation of all earlier outputs of
its block. keras.applications layout and layer names (`conv2_block1_0_bn`, `..._concat`, `pool2_conv`, `bn`).

`skip=False` gives the plain twin: the same stem, transitions and layer widths, but each layer sees only its
predecessor's output (no concatenation), so the block output has `growth_rate` channels.

Example:
    >>> from reszoo.models.densenet import DenseNet
    >>> DenseNet((1, 1), growth_rate=4, input_shape=(32, 32, 3), num_classes=10).output_shape
    (None, 10)
"""
import keras
from keras import layers

from reszoo.models.blocks import (BN_EPSILON, batch_norm, check_common_args, classifier_head, conv,
                                  with_bn_epsilon)
from reszoo.models.features import check_feature_args, feature_outputs, refuse_output_stride
from reszoo.models.registry import register_rows
from reszoo.weights.keras_weights import load_weights

PAPER_DENSENET = "Huang et al. 2017, Densely Connected Convolutional Networks, arXiv:1608.06993"
BOTTLENECK_FACTOR = 4  # DenseNet-B: 1x1 conv to 4k channels before each 3x3
COMPRESSION = 0.5  # DenseNet-C: transitions halve the channels
NO_OUTPUT_STRIDE = ("its transitions downsample by a 2x2 average pool, which has no dilated (a trous) form in "
                    "stock Keras layers, and timm / torchvision / keras-hub define no dilated DenseNet; use a "
                    "resnet or resnet_v2 backbone")

# registered name -> layers per dense block
DENSENET_DEPTHS = {"densenet121": (6, 12, 24, 16)}


def bn_relu(x, name):
    """BN `{name}_bn` then ReLU `{name}_relu`."""
    return layers.Activation("relu", name=f"{name}_relu")(batch_norm(x, f"{name}_bn"))


def dense_layer(x, growth_rate, name, skip, weight_decay):
    """BN-ReLU-1x1(4k)-BN-ReLU-3x3(k); concatenated onto the input (`{name}_concat`) when `skip`."""
    y = bn_relu(x, f"{name}_0")
    y = conv(y, BOTTLENECK_FACTOR * growth_rate, 1, 1, f"{name}_1", weight_decay=weight_decay)
    y = bn_relu(y, f"{name}_1")
    y = conv(y, growth_rate, 3, 1, f"{name}_2", weight_decay=weight_decay)
    return layers.Concatenate(name=f"{name}_concat")([x, y]) if skip else y


def transition(x, name, weight_decay):
    """BN-ReLU, 1x1 conv to half the channels, 2x2 average pool (`{name}_pool`)."""
    x = bn_relu(x, name)
    x = conv(x, max(1, int(x.shape[-1] * COMPRESSION)), 1, 1, name, weight_decay=weight_decay)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def DenseNet(block_layers, *, growth_rate=32, width=64, skip=True, highway=False, input_shape=None,
             num_classes=1000, include_top=True, pooling=None, classifier_activation="softmax", weights=None,
             dropout_rate=0.0, zero_init_residual=False, weight_decay=0.0, bn_epsilon=BN_EPSILON, features_only=False,
             out_indices=None, output_stride=None, name=None):
    """Build a DenseNet-BC as a Keras functional model.

    Args:
        block_layers: layers per dense block, e.g. (6, 12, 24, 16) for DenseNet-121.
        growth_rate: k, channels each layer adds (32 in the paper).
        width: stem channels (64 in the paper).
        skip: False removes the dense concatenations (plain twin). highway is not defined for dense
            connections and raises ValueError; zero_init_residual has no residual to zero and is ignored.
        bn_epsilon: BatchNormalization epsilon (keras.applications' 1.001e-5; 1e-5 for PyTorch weights).
        features_only: return the stage outputs `stage1..stageN` (strides 4, 8, 16, 32; each dense block's
            output as it enters the transition, the last one after the final BN-ReLU, as timm's densenet
            features) instead of the classifier; out_indices picks and orders them.
        output_stride: not offered (ValueError unless None), see NO_OUTPUT_STRIDE.

    Example (DenseNet((6, 12, 24, 16)) is DenseNet-121: 8,062,504 parameters, as keras.applications' DenseNet121):
        >>> DenseNet((2, 2), growth_rate=4, width=8, input_shape=(32, 32, 3), num_classes=10).count_params()
        4994
    """
    if not block_layers or not all(isinstance(n, int) and n > 0 for n in block_layers):
        raise ValueError(f"block_layers={block_layers!r} must be a non-empty sequence of positive layer counts")
    if highway:
        raise ValueError("highway=True is not defined for DenseNet (dense skips concatenate); use skip=True/False")
    if not isinstance(growth_rate, int) or growth_rate < 1:
        raise ValueError(f"growth_rate={growth_rate!r} must be a positive integer")
    out_indices = check_feature_args(features_only, out_indices, len(block_layers), pooling)
    refuse_output_stride(output_stride, "DenseNet", NO_OUTPUT_STRIDE)
    include_top = include_top and not features_only
    check_common_args(input_shape, include_top, num_classes, weights, dropout_rate)
    inputs = keras.Input(shape=input_shape or (224, 224, 3), name="input")
    x = conv(inputs, width, 7, 2, "conv1", weight_decay=weight_decay)
    x = bn_relu(x, "conv1")
    x = layers.ZeroPadding2D(padding=1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    stage_outputs = []
    for block, count in enumerate(block_layers):
        for index in range(count):
            x = dense_layer(x, growth_rate, f"conv{block + 2}_block{index + 1}", skip, weight_decay)
        if block < len(block_layers) - 1:
            stage_outputs.append(x)
            x = transition(x, f"pool{block + 2}", weight_decay)
    x = layers.Activation("relu", name="relu")(batch_norm(x, "bn"))
    if features_only:
        x = feature_outputs([*stage_outputs, x], out_indices)
    else:
        x = classifier_head(x, include_top, pooling, num_classes, classifier_activation, dropout_rate, weight_decay)
    model = keras.Model(inputs, x, name=name or "densenet")
    return load_weights(with_bn_epsilon(model, bn_epsilon), weights)


register_rows(DENSENET_DEPTHS, DenseNet, family="densenet", paper=PAPER_DENSENET,
              describe=lambda name, rows: f"{name}: dense blocks {rows}. Example: reszoo.create_model({name!r})")
