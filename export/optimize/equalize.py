"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"): exact in float, kinder to int8.

In a chain producer -> [BatchNormalization] -> positive-homogeneous activation -> [pass-through layers] ->
consumer, output channel i of the producer can be divided by s_i > 0 and input channel i of the consumer
multiplied by s_i without changing the function: relu(x / s) = relu(x) / s, zero padding, max/avg pooling and
dropout commute with a positive per-channel scale. Choosing s_i = sqrt(r1_i / r2_i) (r1: the producer's
BN-folded weight range of channel i, r2: the consumer's weight range of input channel i) gives both the same
range, so one outlier channel no longer stretches a per-tensor int8 range over the others; a channel that a
previous layer scaled up (e.g. x1000 after a BN+ReLU) is scaled back. Pairs are equalized in graph order and
the sweep is repeated until the scales settle (a conv can be the consumer of one pair and producer of the next).

Chains never cross a join (Add, Multiply, Concatenate...), a layer with several consumers (every branch would
need the same scale) or a model output (a multi-output backbone's stage maps keep their values). A grouped conv can be a consumer (each input channel scales its group's
weights); depthwise convs take no part.
Works on functional Keras-3 and tf_keras models; returns a new model, the given one is untouched.

Example:
    >>> import reszoo
    >>> equalized, record = equalize(reszoo.create_model("resnet20", width=4, num_classes=10))
    >>> record["pairs"][0]["producer"], record["pairs"][0]["consumer"]  # conv1's output also feeds a shortcut
    ('conv2_block1_1_conv', 'conv2_block1_2_conv')
"""
import numpy as np

PRODUCERS = ("Conv2D", "Dense")
CONSUMERS = ("Conv2D", "Dense")
# layers a positive per-channel scale passes through unchanged (class name -> True when always allowed)
PASS_THROUGH = ("ZeroPadding2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                "GlobalMaxPooling2D", "Dropout", "SpatialDropout2D", "Identity")
HOMOGENEOUS_ACTIVATIONS = ("relu", "linear", "leaky_relu")  # f(x / s) = f(x) / s for s > 0
MAX_SWEEPS = 20
SETTLED = 1e-4  # stop when no scale of a sweep differs from 1 by more than this
MIN_RANGE = 1e-12  # a channel whose weights are all ~0 is left alone (nothing to balance)


def _class(layer):
    return type(layer).__name__


def _consumers(layer, members):
    """Layers of the model that read `layer`'s output (several nodes: a shared layer, treated as several)."""
    return [node.operation if hasattr(node, "operation") else node.outbound_layer
            for node in layer._outbound_nodes
            if (node.operation if hasattr(node, "operation") else node.outbound_layer) in members]


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation)) if activation is not None else "linear"


def _is_homogeneous(layer):
    """True for an activation layer (or a layer's fused activation) with f(x / s) = f(x) / s for s > 0."""
    name = _class(layer)
    if name == "ReLU":
        return layer.max_value is None and float(np.asarray(layer.threshold)) == 0.0
    if name == "LeakyReLU":
        return True
    if name == "Activation":
        return _activation_name(layer) in HOMOGENEOUS_ACTIVATIONS
    return False


def _single_next(layer, members, outputs=frozenset()):
    """The one layer that reads `layer`'s output; None when several do, or when it is a model output too."""
    consumers = _consumers(layer, members)
    if len(consumers) != 1 or len(layer._inbound_nodes) != 1 or layer.name in outputs:
        return None
    return consumers[0]


def _chain_from(producer, members, outputs):
    """(producer, batch norm or None, consumer) when `producer` starts an equalizable chain, else None."""
    if _class(producer) not in PRODUCERS or not _is_homogeneous_fused(producer):
        return None
    layer, norm, activated = _single_next(producer, members, outputs), None, _activation_name(producer) != "linear"
    if (layer is not None and _class(layer) == "BatchNormalization" and not activated and layer.scale
            and _last_axis(layer)):
        norm, layer = layer, _single_next(layer, members, outputs)
    while layer is not None and (_class(layer) in PASS_THROUGH or _is_homogeneous(layer)):
        layer = _single_next(layer, members, outputs)
    if layer is None or _class(layer) not in CONSUMERS or len(layer._inbound_nodes) != 1:
        return None
    return producer, norm, layer


def _last_axis(norm):
    axis = norm.axis if isinstance(norm.axis, (list, tuple)) else [norm.axis]
    return len(axis) == 1 and axis[0] in (-1, len(norm.input.shape) - 1)


def _is_homogeneous_fused(layer):
    return _activation_name(layer) in HOMOGENEOUS_ACTIVATIONS


def find_chains(model):
    """[(producer, batch norm or None, consumer)] of every equalizable chain of `model`, in layer order."""
    members = set(model.layers)
    outputs = frozenset(_output_layer_names(model))
    return [chain for chain in (_chain_from(layer, members, outputs) for layer in model.layers) if chain]


def _output_layer_names(model):
    """Names of the layers whose outputs are model outputs: their values must keep their scale."""
    return [tensor._keras_history[0].name for tensor in model.outputs]


def _norm_factor(norm):
    """Per-channel multiplier the batch norm applies: gamma / sqrt(var + eps)."""
    return np.asarray(norm.gamma) / np.sqrt(np.asarray(norm.moving_variance) + norm.epsilon)


def _output_ranges(producer, norm):
    kernel = np.asarray(producer.kernel)
    per_channel = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
    return per_channel * (np.abs(_norm_factor(norm)) if norm is not None else 1.0)


def _grouped_view(kernel, groups):
    """The kernel as (..., groups, inputs per group, outputs per group): input channel i = (i // n, i % n)."""
    *spatial, per_group_in, outputs = kernel.shape
    return kernel.reshape(*spatial, per_group_in, groups, outputs // groups)


def _input_ranges(consumer):
    """Max |weight| per input channel of the consumer (a grouped conv's channel sees its group's outputs)."""
    groups = getattr(consumer, "groups", 1)
    view = np.abs(_grouped_view(np.asarray(consumer.kernel), groups))  # (..., in/g, g, out/g)
    per_channel = view.reshape(-1, *view.shape[-3:]).max(axis=(0, 3))  # (in/g, g)
    return per_channel.T.reshape(-1)


def _scales(producer, norm, consumer):
    r1, r2 = _output_ranges(producer, norm), _input_ranges(consumer)
    if r1.shape != r2.shape:  # e.g. a Flatten-free Dense after pooling of another width: not a pair
        return None
    usable = (r1 > MIN_RANGE) & (r2 > MIN_RANGE)
    return np.where(usable, np.sqrt(np.where(usable, r1 / np.maximum(r2, MIN_RANGE), 1.0)), 1.0)


def _divide_outputs(producer, norm, scales):
    """Output channel i of the chain's first half divided by scales[i] (the BN's affine part, else the kernel)."""
    if norm is not None:
        norm.gamma.assign(np.asarray(norm.gamma) / scales)
        if norm.center:
            norm.beta.assign(np.asarray(norm.beta) / scales)
        return
    producer.kernel.assign(np.asarray(producer.kernel) / scales)
    if getattr(producer, "use_bias", False):
        producer.bias.assign(np.asarray(producer.bias) / scales)


def _multiply_inputs(consumer, scales):
    kernel = np.asarray(consumer.kernel)
    groups = getattr(consumer, "groups", 1)
    view = _grouped_view(kernel, groups)
    per_group = scales.reshape(groups, -1).T  # (in/g, g): scale of input channel (group, local index)
    consumer.kernel.assign((view * per_group[..., None]).reshape(kernel.shape))


def _copy(model):
    import importlib

    keras = importlib.import_module(type(model).__module__.split(".")[0])  # keras or tf_keras
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def equalize(model, max_sweeps=MAX_SWEEPS):
    """(equalized copy of `model`, record) with record = {"pairs": [{"producer", "batch_norm", "consumer",
    "scale_min", "scale_max"}], "sweeps"}: the scales are the products over all sweeps.

    Example:
        >>> import keras
        >>> inputs = keras.Input((8, 8, 3))
        >>> x = keras.layers.Conv2D(4, 3, activation="relu", name="a")(inputs)
        >>> model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="b")(x))
        >>> [pair["consumer"] for pair in equalize(model)[1]["pairs"]]
        ['b']
    """
    copy = _copy(model)
    chains = find_chains(copy)
    totals = [np.ones(int(np.asarray(p.kernel).shape[-1])) for p, _, _ in chains]
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):
        largest_change = 0.0
        for index, (producer, norm, consumer) in enumerate(chains):
            scales = _scales(producer, norm, consumer)
            if scales is None:
                continue
            _divide_outputs(producer, norm, scales)
            _multiply_inputs(consumer, scales)
            totals[index] *= scales
            largest_change = max(largest_change, float(np.max(np.abs(np.log(scales)))))
        if largest_change < SETTLED:
            break
    pairs = [{"producer": p.name, "batch_norm": n.name if n is not None else None, "consumer": c.name,
              "scale_min": float(t.min()), "scale_max": float(t.max())} for (p, n, c), t in zip(chains, totals)]
    return copy, {"pairs": pairs, "sweeps": sweeps}
