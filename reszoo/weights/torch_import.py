"""PyTorch weights into a reszoo model: every tensor used, every weight filled, or one error naming them.

`import_torch` reads SOURCE (see `reszoo.weights.state_dict`), picks the layout (`reszoo.weights.layouts`),
builds the named model with what the keys say (classes, width, shortcut option, torch's BN epsilon) plus the
caller's builder arguments, and copies each tensor into its layer, converted to Keras' layout (`PARAMETERS`).
A tensor no layer takes, a weight no tensor fills, and a shape that does not fit all fail the import; BN's
`num_batches_tracked` is training bookkeeping and is the only key skipped.

Example:
    >>> model = from_torch("resnet20-12fca82f.th", "resnet20")  # doctest: +SKIP
    >>> model.output_shape  # doctest: +SKIP
    (None, 10)
"""
import dataclasses

import numpy as np

from reszoo.errors import UserError
from reszoo.weights.keras_weights import SHOWN_NAMES, name_list
from reszoo.weights.layouts import choose_layout
from reszoo.weights.state_dict import load_state_dict

BOOKKEEPING = ("num_batches_tracked",)


def conv_kernel(weight):
    """torch (out, in/groups, kh, kw) -> Keras (kh, kw, in/groups, out)."""
    return weight.transpose(2, 3, 1, 0)


def dense_kernel(weight):
    """torch Linear (out, in) or 1x1 Conv2d classifier (out, in, 1, 1) -> Keras Dense (in, out)."""
    return weight.reshape(weight.shape[0], -1).T


def same(value):
    return value


# Keras layer class -> torch parameter names in the order of `layer.weights`, each with its converter
PARAMETERS = {
    "Conv2D": (("weight", conv_kernel), ("bias", same)),
    "Dense": (("weight", dense_kernel), ("bias", same)),
    "BatchNormalization": (("weight", same), ("bias", same), ("running_mean", same), ("running_var", same)),
}


@dataclasses.dataclass
class ImportReport:
    """What an import did: layout, tensors and numbers copied, keys deliberately dropped, builder arguments."""

    layout: str
    tensors: int
    parameters: int
    dropped: list
    builder_kwargs: dict


def _shape(array):
    return tuple(int(d) for d in array.shape)


def plan(model, state, module_names):
    """{layer name: [arrays in layer.weights order]} and the state keys used; UserError for any misfit."""
    layer_modules = {layer: module for module, layer in module_names.items()}
    assignments, used, missing, mismatched = {}, set(), [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        parameters = PARAMETERS.get(type(layer).__name__)
        if parameters is None:
            raise UserError(f"layer {layer.name!r} ({type(layer).__name__}) has weights no PyTorch layout fills")
        module = layer_modules.get(layer.name)
        if module is None:
            missing.append(f"{layer.name} (no tensors)")
            continue
        values = []
        for (parameter, convert), weight in zip(parameters, layer.weights):
            key = f"{module}.{parameter}"
            if key not in state:
                missing.append(f"{key} (for {layer.name})")
                continue
            used.add(key)
            value = convert(np.asarray(state[key], dtype="float32"))
            if _shape(value) != tuple(weight.shape):
                mismatched.append(f"{layer.name} <- {key}: expected {tuple(weight.shape)}, got {_shape(value)} "
                                  f"(torch shape {_shape(state[key])})")
            values.append(value)
        assignments[layer.name] = values
    return assignments, used, missing, mismatched


def assign_state_dict(model, state, layout, drop=()):
    """Copy `state` into `model` through `layout`; keys under a module in `drop` are skipped and reported.

    Raises UserError naming the unused keys, the missing weights, or each shape mismatch with both shapes.
    """
    module_names = layout.module_names(state)
    assignments, used, missing, mismatched = plan(model, state, module_names)
    dropped = sorted(k for k in state if k.rsplit(".", 1)[0] in drop)
    unused = set(state) - used - set(dropped) - {k for k in state if k.rsplit(".", 1)[-1] in BOOKKEEPING}
    if unused or missing:
        raise UserError(f"the {layout.name} weights do not fit {model.name!r}: unused tensors: "
                        f"{name_list(unused) or 'none'}; missing: {name_list(missing) or 'none'}")
    if mismatched:
        raise UserError(f"{len(mismatched)} shape mismatch(es) importing into {model.name!r}: "
                        f"{'; '.join(mismatched[:SHOWN_NAMES])}")
    layers = {layer.name: layer for layer in model.layers}
    for name, values in assignments.items():
        layers[name].set_weights(values)
    return used, dropped


def import_torch(source, name, /, layout="auto", prefer_ema=False, **builder_kwargs):
    """Build reszoo model `name` with the weights of SOURCE; returns (model, ImportReport).

    Builder arguments read from the weights (num_classes, width, shortcut, bn_epsilon=1e-5) are overridden by
    `builder_kwargs`. With `include_top=False` or `features_only=True` (a backbone) the classifier's tensors are
    dropped (and reported); `output_stride` changes no weight.

    Example:
        >>> import numpy as np
        >>> model, report = import_torch({"linear.weight": np.zeros((3, 64))}, "resnet20", layout="cifar")
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: the cifar weights do not fit 'resnet20': unused tensors: none; missing: ...
    """
    from reszoo.models.registry import build_model

    state = load_state_dict(source, prefer_ema)
    chosen = choose_layout(state, layout)
    kwargs = {**chosen.builder_kwargs(state), **builder_kwargs}
    headless = kwargs.get("include_top") is False or bool(kwargs.get("features_only"))
    if headless:
        kwargs.pop("num_classes", None)
    try:
        model = build_model(name, **kwargs)
    except (TypeError, ValueError) as error:
        raise UserError(f"cannot build {name!r} with {kwargs}: {error}") from None
    drop = chosen.classifiers if headless else ()
    used, dropped = assign_state_dict(model, state, chosen, drop)
    report = ImportReport(chosen.name, len(used), int(sum(state[k].size for k in used)), dropped, kwargs)
    return model, report


def from_torch(source, name, /, layout="auto", prefer_ema=False, **builder_kwargs):
    """`reszoo.create_model(name)` with PyTorch weights: SOURCE is a .safetensors/.pth/.pt/.th/.tar/.npz path
    or a {name: array} mapping; layout "auto", "torchvision", "timm" or "cifar". Needs no torch.

    Example:
        >>> from reszoo.weights import from_torch
        >>> model = from_torch("resnet50-11ad3fa6.pth", "resnet50")  # doctest: +SKIP
    """
    return import_torch(source, name, layout, prefer_ema, **builder_kwargs)[0]
