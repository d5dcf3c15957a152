"""Building blocks shared by every family: conv-BN-ReLU units, shortcuts, merges, squeeze-excitation.

Layer names follow keras.applications (`conv2_block1_1_conv`, `conv2_block1_0_bn`, `..._add`, `..._out`)
so weights port by name. Every builder uses stock Keras layers only (option A included: `zero_pad_shortcut`),
so saved models load anywhere with `safe_mode=True`. `ZeroPadShortcut`, the custom layer older reszoo files
used for option A, stays registered (with its tf_keras twin for tfmot) so those files still load.

Example:
    >>> import keras
    >>> x = keras.Input((32, 32, 16))
    >>> y = conv_bn(x, 32, 3, strides=2, name="demo")
    >>> tuple(y.shape)
    (None, 16, 16, 32)
"""
import numbers

import keras
from keras import layers

from export.twin_registry import register_twin_layer

BN_EPSILON = 1.001e-5  # keras.applications' value, so ported weights match exactly
BN_MOMENTUM = 0.9
CONNECTIONS = ("residual", "plain", "highway")
HIGHWAY_GATE_BIAS = -2.0  # Srivastava et al. 2015: negative bias makes blocks carry x at init


def regularizer(weight_decay):
    """An L2 kernel regularizer, or None when weight_decay is 0/None."""
    return keras.regularizers.L2(weight_decay) if weight_decay else None


def batch_norm(x, name, zero_gamma=False):
    """BatchNormalization with the zoo's epsilon/momentum; `zero_gamma` for zero-init residual."""
    return layers.BatchNormalization(
        axis=-1,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=name,
    )(x)


def conv(x, filters, kernel_size, strides=1, name="conv", groups=1, use_bias=False, weight_decay=0.0, dilation=1):
    """Conv2D with torch-style symmetric padding: 'same' at stride 1 (dilation d pads d * (k - 1) / 2 on each
    side, as torch's padding=d for a 3x3), explicit ZeroPadding2D otherwise (dilation must then be 1)."""
    if strides > 1 and dilation > 1:
        raise ValueError(f"{name}: a conv has either strides={strides} or dilation={dilation}, not both")
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(padding=(kernel_size - 1) // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        dilation_rate=dilation,
        use_bias=use_bias,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer(weight_decay),
        name=f"{name}_conv",
    )(x)


def conv_bn(x, filters, kernel_size, strides=1, name="conv", activation="relu", groups=1,
            zero_gamma=False, weight_decay=0.0, use_bias=False, dilation=1):
    """conv -> BN -> activation (None for no activation). Layers: `{name}_conv`, `{name}_bn`, `{name}_relu`."""
    x = conv(x, filters, kernel_size, strides, name, groups, use_bias, weight_decay, dilation)
    x = batch_norm(x, f"{name}_bn", zero_gamma)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def check_choice(argument, value, allowed):
    """Raise ValueError naming `argument` when `value` is not one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{argument}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


def connection_mode(skip, highway):
    """Map the builders' `skip`/`highway` flags to one of CONNECTIONS."""
    if highway and not skip:
        raise ValueError("highway=True needs skip=True (a highway gate is a gated skip connection)")
    return "highway" if highway else ("residual" if skip else "plain")


def highway_gate(block_input, channels, strides, name, weight_decay=0.0):
    """T(x) = sigmoid(conv1x1(x) + b) with b initialised negative; layer `{name}_gate` outputs T."""
    t = layers.Conv2D(
        channels, 1, strides=strides, use_bias=True,
        bias_initializer=keras.initializers.Constant(HIGHWAY_GATE_BIAS),
        kernel_initializer="he_normal", kernel_regularizer=regularizer(weight_decay),
        name=f"{name}_gate_conv",
    )(block_input)
    return layers.Activation("sigmoid", name=f"{name}_gate")(t)


def merge(shortcut, residual, mode, name, block_input=None, strides=1, weight_decay=0.0, drop_path_rate=0.0):
    """Join a block's shortcut and residual branch.

    residual: shortcut + F(x); plain: F(x) alone (no skip); highway: T*F(x) + (1-T)*shortcut,
    computed as shortcut + T*(F(x) - shortcut) with standard layers only.

    drop_path_rate > 0 adds stochastic depth (`drop_path`, layer `{name}_drop_path`) to what is added to the
    shortcut: F(x) in residual mode, the gated term T*(F(x) - shortcut) in highway mode, so a dropped block is
    the identity in both (highway: y = shortcut, not (1-T)*shortcut). Plain mode has no shortcut to fall
    back on and raises ValueError.
    """
    if mode == "plain":
        if drop_path_rate:
            raise ValueError(f"drop_path_rate={drop_path_rate!r} needs a skip connection (skip=True): stochastic "
                             "depth on a plain net would zero the whole block output")
        return residual
    if mode == "residual":
        residual = drop_path(residual, drop_path_rate, name)
        return layers.Add(name=f"{name}_add")([shortcut, residual])
    gate = highway_gate(block_input, residual.shape[-1], strides, name, weight_decay)
    diff = layers.Subtract(name=f"{name}_diff")([residual, shortcut])
    gated = layers.Multiply(name=f"{name}_gated")([gate, diff])
    gated = drop_path(gated, drop_path_rate, name)
    return layers.Add(name=f"{name}_add")([shortcut, gated])


def drop_path(x, rate, name):
    """Stochastic depth (Huang et al. 2016; timm's DropPath with scale_by_keep) from a stock layer.

    A Dropout `{name}_drop_path` whose mask has one value per sample (noise_shape (None, 1, ..., 1)): in
    training each sample's tensor is zeroed with probability `rate`, else scaled by 1 / (1 - rate); in
    inference it is the identity. Rate 0 adds no layer (the model keeps its default layer list).

    Example:
        >>> import keras
        >>> drop_path(keras.Input((4, 4, 8)), 0.1, "demo")._keras_history.operation.noise_shape
        (None, 1, 1, 1)
    """
    if not rate:
        return x
    noise_shape = (None,) + (1,) * (len(x.shape) - 1)
    return layers.Dropout(float(rate), noise_shape=noise_shape, name=f"{name}_drop_path")(x)


def drop_path_rates(drop_path_rate, num_blocks):
    """Per-block stochastic-depth rates rising linearly from 0 (first block) to `drop_path_rate` (last).

    p_i = drop_path_rate * i / (num_blocks - 1), timm's rule; a single block gets 0.

    Example:
        >>> drop_path_rates(0.2, 3)
        [0.0, 0.1, 0.2]
    """
    if num_blocks < 2:
        return [0.0] * num_blocks
    return [drop_path_rate * i / (num_blocks - 1) for i in range(num_blocks)]


def check_drop_path_rate(drop_path_rate, skip=True):
    """Raise ValueError naming `drop_path_rate` unless it is a number in [0, 1), and when it is > 0 on a plain
    net (skip=False: no shortcut for a dropped block to fall back on)."""
    if (not isinstance(drop_path_rate, numbers.Real) or isinstance(drop_path_rate, bool)
            or not 0.0 <= drop_path_rate < 1.0):
        raise ValueError(f"drop_path_rate={drop_path_rate!r} must be a number in [0, 1)")
    if drop_path_rate and not skip:
        raise ValueError(f"drop_path_rate={drop_path_rate!r} needs skip=True: stochastic depth drops a block's "
                         "residual branch and keeps its shortcut, and a plain net (skip=False) has no shortcut")


def squeeze_excite(x, name, ratio=0.25, weight_decay=0.0):
    """Squeeze-and-excitation (Hu et al. 2018) with 1x1 convs; layers `{name}_se_*`."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    s = layers.Conv2D(max(1, int(channels * ratio)), 1, activation="relu", kernel_regularizer=regularizer(weight_decay),
                      name=f"{name}_se_reduce")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", kernel_regularizer=regularizer(weight_decay),
                      name=f"{name}_se_expand")(s)
    return layers.Multiply(name=f"{name}_se_excite")([x, s])


def subsample_and_pad_channels(x, strides, out_channels, pad):
    """Option-A shortcut math: keep every `strides`-th pixel, zero-pad channels symmetrically with `pad`."""
    if strides > 1:
        x = x[:, ::strides, ::strides, :]
    extra = out_channels - x.shape[-1]
    before = extra // 2
    return pad(x, [[0, 0], [0, 0], [0, 0], [before, extra - before]])


def zero_pad_shortcut(x, out_channels, strides, name):
    """Option-A shortcut (He et al. 2015) from stock layers, so a saved model loads without reszoo.

    Subsample: a 1x1 max-pool with stride `strides` (= ``x[:, ::s, ::s]``). Channel zero-pad, split equally
    before and after as in the classic PyTorch CIFAR code: channels are moved to axis 1, padded there by a
    ZeroPadding2D, and moved back. Layers: `{name}_subsample`, `{name}_pad_in`, `{name}_pad`, `{name}_pad_out`.

    Example:
        >>> import numpy as np
        >>> x = keras.Input((4, 4, 4))
        >>> tuple(zero_pad_shortcut(x, 8, 2, "demo").shape)
        (None, 2, 2, 8)
    """
    if strides > 1:
        x = layers.MaxPooling2D(pool_size=1, strides=strides, name=f"{name}_subsample")(x)
    extra = out_channels - x.shape[-1]
    if extra == 0:
        return x
    x = layers.Permute((3, 1, 2), name=f"{name}_pad_in")(x)
    x = layers.ZeroPadding2D(((extra // 2, extra - extra // 2), (0, 0)), name=f"{name}_pad")(x)
    return layers.Permute((2, 3, 1), name=f"{name}_pad_out")(x)


@keras.saving.register_keras_serializable(package="reszoo")
class ZeroPadShortcut(layers.Layer):
    """Parameter-free shortcut (He et al. 2015, option A): subsample by `strides`, zero-pad channels.

    Example:
        >>> import numpy as np
        >>> ZeroPadShortcut(8, 2)(np.ones((1, 4, 4, 4), "float32")).shape
        TensorShape([1, 2, 2, 8])
    """

    def __init__(self, out_channels, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = int(out_channels)
        self.strides = int(strides)

    def call(self, x):
        return subsample_and_pad_channels(x, self.strides, self.out_channels, keras.ops.pad)

    def compute_output_shape(self, input_shape):
        def shrink(d):
            return None if d is None else -(-d // self.strides)

        return (input_shape[0], shrink(input_shape[1]), shrink(input_shape[2]), self.out_channels)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels, "strides": self.strides}


def _tf_keras_zero_pad_shortcut():
    """tf_keras twin of ZeroPadShortcut (same math, same config), for tfmot."""
    import tensorflow as tf
    import tf_keras

    @tf_keras.saving.register_keras_serializable(package="reszoo")
    class ZeroPadShortcut(tf_keras.layers.Layer):  # noqa: D401 - twin of the Keras-3 class above
        def __init__(self, out_channels, strides=1, **kwargs):
            super().__init__(**kwargs)
            self.out_channels = int(out_channels)
            self.strides = int(strides)

        def call(self, x):
            return subsample_and_pad_channels(x, self.strides, self.out_channels, tf.pad)

        def get_config(self):
            return {**super().get_config(), "out_channels": self.out_channels, "strides": self.strides}

    return ZeroPadShortcut


register_twin_layer("reszoo>ZeroPadShortcut", _tf_keras_zero_pad_shortcut)


def max_pool_3x3_s2_exclude_pad(x, name):
    """torch's `MaxPool2d(3, 2, padding=1)`, where padding never wins the max, from stock layers.

    Keras' 'same' max pool also ignores padding but pads 0 before / 1 after an even side, torch 1 / 1. One zero
    row/column appended to an even side makes 'same' pad 1 / 1; the output row that sees it is cropped.
    Layers `{name}_pad` (when a side is even), `{name}_pool`, `{name}_crop`. Needs a known height and width.

    Example:
        >>> import keras
        >>> tuple(max_pool_3x3_s2_exclude_pad(keras.Input((112, 113, 8)), "pool1").shape)
        (None, 56, 57, 8)
    """
    height, width = x.shape[1:3]
    if height is None or width is None:
        raise ValueError("a max pool that excludes padding (torch semantics) needs a fixed input height and width")
    extra = (1 - height % 2, 1 - width % 2)  # one row / column after each even side
    if any(extra):
        x = layers.ZeroPadding2D(((0, extra[0]), (0, extra[1])), name=f"{name}_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    if any(extra):
        x = layers.Cropping2D(((0, extra[0]), (0, extra[1])), name=f"{name}_crop")(x)
    return x


def classifier_head(x, include_top, pooling, num_classes, classifier_activation, dropout_rate, weight_decay):
    """keras.applications head: global pool (`avg_pool`/`max_pool`), optional dropout, Dense `predictions`."""
    check_choice("pooling", pooling, ("avg", "max", None))
    if include_top:
        pooling = pooling or "avg"
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    if include_top:
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(num_classes, activation=classifier_activation, kernel_regularizer=regularizer(weight_decay),
                         name="predictions")(x)
    return x


def with_bn_epsilon(model, epsilon):
    """Set every BatchNormalization's epsilon to `epsilon` (the builders' `bn_epsilon=`); returns `model`.

    The epsilon is only read when a layer runs and is saved in its config, so one pass after the graph is
    built covers every family (and the tf_keras twin, which is rebuilt from that config).

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization()])
        >>> with_bn_epsilon(m, 1e-5).layers[0].epsilon
        1e-05
    """
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not epsilon > 0:
        raise ValueError(f"bn_epsilon={epsilon!r} must be a positive number (1e-5 for PyTorch weights)")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.epsilon = float(epsilon)
    return model


def check_common_args(input_shape, include_top, num_classes, weights, dropout_rate):
    """Validate the keras.applications-style arguments every builder takes."""
    if input_shape is not None and len(input_shape) != 3:
        raise ValueError(f"input_shape={input_shape!r} must be (height, width, channels)")
    if include_top and input_shape is not None and None in tuple(input_shape)[:2]:
        raise ValueError(f"input_shape={input_shape!r}: include_top=True needs a fixed height and width")
    if include_top and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes={num_classes!r} must be a positive integer")
    if not 0.0 <= float(dropout_rate or 0.0) < 1.0:
        raise ValueError(f"dropout_rate={dropout_rate!r} must be in [0, 1)")
    if weights is not None and not isinstance(weights, str):
        raise ValueError(f"weights={weights!r} must be None or a path to a .keras / .weights.h5 file")
