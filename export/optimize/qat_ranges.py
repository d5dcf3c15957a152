"""Start QAT from measured activation ranges, not tfmot's [-6, 6].

tfmot's MovingAverageQuantizer creates every activation range at [-6, 6] and moves it with an EMA of decay
0.999 per training step, so a short fine-tuning (50-300 steps) leaves the ranges 75-95 % where they started:
a ReLU output that lives in [0, 1.5] gets a quarter of the int8 grid, one above 6 stays clipped, and the
logits before the softmax are clipped at +-6. `calibrate_ranges` sets each range variable (a wrapper's
`output_min/max`, `post_activation_min/max`, `pre_activation_min/max`; the QuantizeLayer's
`<its name>_min/max`) to the min/max the float model produces for that tensor on calibration samples
(with 0 inside the range, as tfmot's own update keeps it), before the first fine-tuning step.

Example:
    >>> import tf_keras
    >>> from export.optimize.tfmot_loader import load_tfmot
    >>> inputs = tf_keras.Input((2,))
    >>> fc = tf_keras.layers.Dense(1, activation="relu", kernel_initializer="ones", name="fc")
    >>> float_model = tf_keras.Model(inputs, fc(inputs))
    >>> quantized = load_tfmot().quantization.keras.quantize_model(float_model)
    >>> calibrate_ranges(quantized, float_model, np.array([[-1.0, 0.5], [1.0, 2.0]]))
    {'quantize_layer.../input': (-1.0, 2.0), 'quant_fc/post_activation': (0.0, 3.0)}
"""
import numpy as np

RANGE_SUFFIXES = {"output": "output", "post_activation": "output", "pre_activation": "pre_activation"}
CALIBRATION_BATCH = 64


def range_variables(quantized):
    """{(wrapper name, kind): (min variable, max variable, inner layer name)} of activation ranges."""
    found = {}
    for wrapper in quantized.layers:
        inner = getattr(wrapper, "layer", None)
        for variable in wrapper.non_trainable_weights:
            base = variable.name.split("/")[-1].split(":")[0]
            for kind in RANGE_SUFFIXES:
                for end, slot in (("_min", 0), ("_max", 1)):
                    if base == kind + end and inner is not None:
                        found.setdefault((wrapper.name, kind), [None, None, inner.name])[slot] = variable
            if wrapper.__class__.__name__ == "QuantizeLayer" and base.endswith(("_min", "_max")):
                # named after the layer: quantize_layer_min, or quantize_layer_2_min in a later model
                found.setdefault((wrapper.name, "input"), [None, None, None])[base.endswith("_max")] = variable
    return found


def _pre_activation_layer(layer):
    """A copy of `layer` without its activation, with its weights (for the logits before a softmax)."""
    config = {**layer.get_config(), "activation": "linear"}
    copy = layer.__class__.from_config(config)
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    return copy


def tensor_ranges(float_model, wanted, x):
    """{(layer name, kind): (min, max)} over `x` of the float model's layer outputs (kind "output") or the
    layer's output before its activation (kind "pre_activation"); kind "input" is the model input."""
    import tf_keras

    from export.optimize.wrapping import clone_with

    # a fresh graph: after strip_pruning/strip_clustering a layer's .output may still be its wrapper's tensor
    float_model = clone_with(float_model, lambda original, clone: None)
    names = sorted({name for name, kind in wanted if kind != "input"})
    taps = [float_model.get_layer(n).output for n in names] + [float_model.get_layer(n).input for n in names]
    probe = tf_keras.Model(float_model.inputs, taps)
    linear = {n: _pre_activation_layer(float_model.get_layer(n)) for n, kind in wanted if kind == "pre_activation"}
    ranges = {}
    for start in range(0, len(x), CALIBRATION_BATCH):
        batch = x[start:start + CALIBRATION_BATCH]
        values = probe(batch, training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        observed = {("", "input"): batch}
        for i, name in enumerate(names):
            observed[(name, "output")] = values[i]
            if name in linear:
                observed[(name, "pre_activation")] = linear[name](values[len(names) + i])
        for key in wanted:
            tensor = np.asarray(observed[("", "input") if key[1] == "input" else key])
            low, high = ranges.get(key, (0.0, 0.0))  # 0 stays inside the range (tfmot's rule)
            ranges[key] = (min(low, float(tensor.min())), max(high, float(tensor.max())))
    return ranges


def calibrate_ranges(quantized, float_model, x):
    """Set every activation range of the QAT model `quantized` from `float_model` on `x`; returns
    {"<wrapper>/<kind>": (min, max)} of what was set."""
    variables = range_variables(quantized)
    wanted = {(inner or "", RANGE_SUFFIXES.get(kind, "input")) for (_, kind), (_, _, inner) in variables.items()}
    ranges = tensor_ranges(float_model, wanted, np.asarray(x, "float32"))
    applied = {}
    for (wrapper, kind), (low_var, high_var, inner) in variables.items():
        low, high = ranges[(inner or "", RANGE_SUFFIXES.get(kind, "input"))]
        low_var.assign(np.full(low_var.shape, low, "float32"))
        high_var.assign(np.full(high_var.shape, high, "float32"))
        applied[f"{wrapper}/{kind}"] = (round(low, 4), round(high, 4))
    return applied
