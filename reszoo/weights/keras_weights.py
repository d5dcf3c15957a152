"""Weight loading: local `.keras` / `.weights.h5` files, and ports from keras.applications.

Port choice: keras.applications ResNet v1 convolutions carry a bias before their BatchNormalization; reszoo's
v1 convolutions are bias-free (torchvision layout, golden parameter counts). The bias is folded into the BN
exactly: BN(conv(x) + b) uses (conv(x) + b - mean), so the port sets moving_mean' = moving_mean - b. ResNet v2
keeps keras.applications' biases (its biased convs have no BN after them), so those copy one to one.

Example:
    >>> import keras
    >>> ka = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), include_top=False)  # doctest: +SKIP
    >>> model = from_keras_applications(ka, "resnet50")  # doctest: +SKIP
"""
import os
import re

import numpy as np

from reszoo.errors import UserError
from reszoo.weights.preset_table import KERAS_APPLICATIONS  # reszoo name -> constructor, layout (declared once)

WEIGHT_SUFFIXES = (".keras", ".weights.h5")
SHOWN_NAMES = 8  # how many layer names an error message lists


def name_list(names):
    """'a, b, c (+N more)' for an error message."""
    names = sorted(names)
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" (+{len(names) - SHOWN_NAMES} more)" if len(names) > SHOWN_NAMES else "")


def _summarize_load_error(error):
    """Keras' multi-line load error -> one line naming the layers that did not fit."""
    text = str(error)
    names = re.findall(r"name=([\w.]+)", text.split("List of objects", 1)[-1])
    if names:
        return f"{len(set(names))} layer(s) do not fit: {name_list(set(names))}"
    return " ".join(text.split())[:300]


def load_weights(model, weights):
    """Load `weights` (None, or a path to a .keras / .weights.h5 file) into `model`; return the model.

    Example:
        >>> import reszoo
        >>> m = reszoo.create_model("resnet20")
        >>> load_weights(m, None) is m
        True
    """
    if weights is None:
        return model
    if not str(weights).endswith(WEIGHT_SUFFIXES):
        raise UserError(f"weights={weights!r}: expected None or a path ending in {' or '.join(WEIGHT_SUFFIXES)}")
    if not os.path.exists(weights):
        raise UserError(f"weights file {weights!r} does not exist")
    try:
        model.load_weights(weights)
    except Exception as error:  # keras raises ValueError/KeyError/OSError for mismatches and corrupt files
        raise UserError(f"weights file {weights!r} does not fit model {model.name!r}: "
                        f"{_summarize_load_error(error)}") from None
    return model


def _classifier_units(h5_path):
    """Units of the Dense classifier stored in a keras.applications weights file, or None (no top).

    Works for legacy `.h5` and Keras-3 `.weights.h5`: the Dense kernel is the file's only 2-D array.
    """
    import h5py

    found = []

    def visit(_, item):
        if isinstance(item, h5py.Dataset) and item.ndim == 2:
            found.append(item.shape[1])

    with h5py.File(h5_path, "r") as file:
        file.visititems(visit)
    return found[0] if found else None


def _legacy_layer_names(h5_path):
    """Names of the layers that hold weights in a legacy (keras.applications-style) `.h5` file, or None."""
    import h5py

    with h5py.File(h5_path, "r") as file:
        if "layer_names" not in file.attrs:
            return None
        names = [n.decode() if isinstance(n, bytes) else n for n in file.attrs["layer_names"]]
        return {n for n in names if len(file[n].attrs.get("weight_names", ())) > 0}


def _check_legacy_names(h5_path, keras_model, constructor):
    """Raise UserError naming missing/unexpected layers when a legacy .h5 does not match the architecture."""
    stored = _legacy_layer_names(h5_path)
    if stored is None:
        return
    expected = {layer.name for layer in keras_model.layers if layer.weights}
    missing, unexpected = expected - stored, stored - expected
    if missing or unexpected:
        raise UserError(f"weights file {h5_path!r} does not match keras.applications.{constructor}: "
                        f"missing layers: {name_list(missing) or 'none'}; "
                        f"unexpected layers: {name_list(unexpected) or 'none'}")


def load_keras_applications(path, name, input_shape=None):
    """Build the keras.applications model matching reszoo `name` and load the weights file `path` into it.

    `path` is a keras.applications `.h5` (e.g. resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5), a
    `.weights.h5`, or a `.keras` file. Whether the file has the classifier (and its size) is read from it.
    """
    import keras

    if not os.path.exists(path):
        raise UserError(f"weights file {path!r} does not exist")
    if str(path).endswith(".keras"):
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    if not str(path).endswith(".h5"):
        raise UserError(f"weights file {path!r}: expected a keras.applications .h5, .weights.h5 or .keras file")
    constructor = KERAS_APPLICATIONS[name]["constructor"]
    classes = _classifier_units(path)
    kwargs = {"input_shape": input_shape} if input_shape is not None else {}
    model = getattr(keras.applications, constructor)(weights=None, include_top=classes is not None,
                                                      classes=classes or 1000, **kwargs)
    _check_legacy_names(path, model, constructor)
    try:
        model.load_weights(path)
    except Exception as error:  # keras raises ValueError/KeyError for mismatched files
        raise UserError(f"weights file {path!r} does not fit keras.applications.{constructor}: "
                        f"{_summarize_load_error(error)}") from None
    return model


def _head_arguments(keras_model):
    """reszoo builder arguments that reproduce a keras.applications model's input and head."""
    layer_names = {layer.name for layer in keras_model.layers}
    arguments = {"input_shape": tuple(keras_model.input_shape[1:]), "include_top": "predictions" in layer_names}
    if arguments["include_top"]:
        config = keras_model.get_layer("predictions").get_config()
        arguments.update(num_classes=config["units"], classifier_activation=config["activation"])
    else:
        arguments["pooling"] = next((p for p in ("avg", "max") if f"{p}_pool" in layer_names), None)
    return arguments


def _folded_biases(source, target):
    """{bn layer name: conv bias} for biased source convs whose target twin is bias-free."""
    biases = {}
    for name, layer in target.items():
        values = source[name].get_weights()
        if getattr(layer, "use_bias", None) is False and len(values) == 2 and len(layer.weights) == 1:
            biases[re.sub(r"_conv$", "_bn", name)] = values[1]
    return biases


def _shapes(arrays):
    return [tuple(a.shape) for a in arrays]


def _ported_values(name, source_layer, biases):
    """The source layer's weights as the reszoo layer `name` needs them (conv biases moved into the BN)."""
    values = [np.asarray(v) for v in source_layer.get_weights()]
    if name in biases and len(values) == 4:  # this BN absorbs its conv's bias
        gamma, beta, mean, variance = values
        return [gamma, beta, mean - biases[name], variance]
    if name.endswith("_conv") and re.sub(r"_conv$", "_bn", name) in biases:
        return values[:1]  # the bias moved into the BN
    return values


def transfer_weights(keras_model, model, partial=False):
    """Copy weights layer by layer (by name) from `keras_model` into `model`, folding conv biases into BN.

    Raises UserError naming missing, unexpected or shape-mismatched layers; `partial` allows source layers the
    model lacks (a backbone cut at an earlier stage by out_indices).
    """
    source = {layer.name: layer for layer in keras_model.layers if layer.weights}
    target = {layer.name: layer for layer in model.layers if layer.weights}
    missing = set(target) - set(source)
    unexpected = set() if partial else set(source) - set(target)
    if missing or unexpected:
        raise UserError(f"{keras_model.name!r} does not match {model.name!r}: missing layers: "
                        f"{name_list(missing) or 'none'}; unexpected layers: {name_list(unexpected) or 'none'}")
    biases = _folded_biases(source, target)
    orphans = set(biases) - set(target)
    if orphans:
        raise UserError(f"cannot fold conv biases: no BatchNormalization named {name_list(orphans)}")
    assignments = {name: _ported_values(name, source[name], biases) for name in target}
    mismatched = [f"{name} (expected {_shapes(layer.weights)}, got {_shapes(assignments[name])})"
                  for name, layer in target.items() if _shapes(layer.weights) != _shapes(assignments[name])]
    if mismatched:
        raise UserError(f"{len(mismatched)} layer(s) have mismatched shapes: {'; '.join(mismatched[:SHOWN_NAMES])}")
    for name, values in assignments.items():
        target[name].set_weights(values)
    return model


def from_keras_applications(keras_model_or_path, name, input_shape=None, **backbone):
    """Port keras.applications ResNet50/101/152 or ResNet50V2/101V2/152V2 weights into reszoo model `name`.

    `keras_model_or_path` is a keras.applications model or a weights file (`.h5`, `.weights.h5`, `.keras`).
    v1 models are rebuilt with `stride_in_1x1=True` (keras.applications strides the first 1x1 conv) and
    their conv biases are folded into the following BN. Returns the reszoo model, whose outputs equal the
    keras.applications model's (to float rounding). `backbone`: features_only / out_indices / output_stride
    (see `reszoo.models.features`; with features_only the keras.applications model's head is not used).

    Example:
        >>> import keras
        >>> ka = keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3), include_top=False)
        >>> from_keras_applications(ka, "resnet50v2").name
        'resnet50v2'
    """
    import keras

    from reszoo.models.registry import build_model

    if name not in KERAS_APPLICATIONS:
        raise UserError(f"no keras.applications port for {name!r}; supported: {', '.join(KERAS_APPLICATIONS)}")
    if isinstance(keras_model_or_path, keras.Model):
        keras_model = keras_model_or_path
    else:
        keras_model = load_keras_applications(os.fspath(keras_model_or_path), name, input_shape)
    layout = KERAS_APPLICATIONS[name]["layout"]
    head = _head_arguments(keras_model)
    if backbone.get("features_only"):
        head = {"input_shape": head["input_shape"]}
    model = build_model(name, **layout, **head, **backbone)
    return transfer_weights(keras_model, model, partial=bool(backbone.get("features_only")))
