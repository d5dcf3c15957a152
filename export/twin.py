"""Rebuild any Keras-3 functional or Sequential model as a tf_keras model with the same weights.

tfmot (pruning, QAT, clustering) only accepts tf_keras models, so the optimizations run on this "twin".
The rebuild reads the Keras-3 config (layers, their `inbound_nodes`, input/output layers), creates each
layer with the tf_keras class of the same name (custom layers: the class declared with
`export.twin_registry.register_twin_layer`), drops config keys tf_keras does not know (dtype-policy dicts
become their name, Keras-3-only keys such as `optional` or `quantization_config` are dropped), reconnects
the graph node by node, copies weights by layer name and checks that both models agree on random input.

Example:
    >>> import keras, numpy as np
    >>> inputs = keras.Input((8,))
    >>> model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="fc")(inputs))
    >>> twin = to_tf_keras(model)
    >>> x = np.ones((1, 8), "float32")
    >>> bool(np.allclose(twin(x).numpy(), model(x).numpy(), atol=1e-6))
    True
"""
import inspect

import numpy as np

from export.core.errors import UserError
from export.twin_registry import twin_factory

MODEL_CLASSES = ("Functional", "Sequential", "Model")
OPS_MODULE_PREFIX = "keras.src.ops"  # keras.ops calls recorded in a functional graph
LAYER_BASE_KWARGS = ("input_dim", "input_shape", "batch_input_shape", "batch_size", "weights",
                     "activity_regularizer", "autocast", "implementation")
INITIALIZER_SUFFIX = "_initializer"
TWIN_TOLERANCE = 1e-5  # max |twin - model| relative to the output range; float32 re-association stays ~1e-7
CHECK_BATCH = 4
CHECK_SPATIAL = 32  # size used for unknown (None) input dimensions in the exactness check


def to_tf_keras(model, check=True):
    """Return a tf_keras model computing the same function as the Keras-3 `model` (same layer names).

    Raises UserError naming the layer when a custom layer has no declared tf_keras twin, and when
    `check` finds the twin's outputs differ from the model's on random input.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc")])
        >>> [layer.name for layer in to_tf_keras(model).layers]
        ['fc']
    """
    import keras

    if isinstance(model, keras.Sequential):
        twin = build_sequential(model.get_config())
    else:
        twin = build_functional(model.get_config())
    copy_weights(model, twin)
    if check:
        check_twin(model, twin)
    return twin


def tf_keras_module():
    """tf_keras, imported lazily (importing it never touches os.environ)."""
    import tf_keras

    return tf_keras


def build_functional(config):
    """A tf_keras functional model from a Keras-3 functional config."""
    tf_keras = tf_keras_module()
    layer_specs = config["layers"]
    outputs_by_node = {}
    layers_by_name = {spec["name"]: make_layer(spec) for spec in layer_specs if spec["class_name"] != "InputLayer"}
    for spec in layer_specs:
        if spec["class_name"] == "InputLayer":
            outputs_by_node[(spec["name"], 0)] = make_input(spec["config"])
    pending = [(spec["name"], index, node) for spec in layer_specs if spec["class_name"] != "InputLayer"
               for index, node in enumerate(spec["inbound_nodes"])]
    while pending:
        ready = [item for item in pending if node_inputs_ready(item[2], outputs_by_node)]
        if not ready:
            raise UserError(f"cannot rebuild model {config.get('name')!r}: layer {pending[0][0]!r} has inputs "
                            "that are never produced")
        for name, index, node in ready:
            args = resolve_tensors(node["args"], outputs_by_node)
            kwargs = {k: v for k, v in resolve_tensors(node["kwargs"], outputs_by_node).items() if v is not None}
            outputs_by_node[(name, index)] = layers_by_name[name](*args, **kwargs)
        pending = [item for item in pending if item not in ready]
    inputs = [node_output(ref, outputs_by_node) for ref in as_refs(config["input_layers"])]
    outputs = [node_output(ref, outputs_by_node) for ref in as_refs(config["output_layers"])]
    single_output = not isinstance(config["output_layers"][0], list)
    return tf_keras.Model(inputs, outputs[0] if single_output else outputs, name=config.get("name"))


def build_sequential(config):
    """A tf_keras Sequential model from a Keras-3 Sequential config (must contain its InputLayer)."""
    tf_keras = tf_keras_module()
    specs = config["layers"]
    if not specs or specs[0]["class_name"] != "InputLayer":
        raise UserError(f"Sequential model {config.get('name')!r} is not built; give it a keras.Input first")
    layers = [tf_keras.Input(**input_kwargs(specs[0]["config"]))]
    layers += [make_layer(spec) for spec in specs[1:]]
    return tf_keras.Sequential(layers, name=config.get("name"))


def as_refs(layer_refs):
    """[[name, node, tensor], ...] whether the config holds one reference or a list of them."""
    return [layer_refs] if not isinstance(layer_refs[0], list) else layer_refs


def node_output(ref, outputs_by_node):
    """The tf_keras tensor for a Keras-3 history reference [layer_name, node_index, tensor_index]."""
    name, node_index, tensor_index = ref
    outputs = outputs_by_node[(name, node_index)]
    return outputs[tensor_index] if isinstance(outputs, (list, tuple)) else outputs


def is_tensor_ref(value):
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def node_inputs_ready(node, outputs_by_node):
    """True when every tensor a call node consumes has been produced."""
    refs = []
    collect_refs(node, refs)
    return all((name, index) in outputs_by_node for name, index, _ in refs)


def collect_refs(value, refs):
    if is_tensor_ref(value):
        refs.append(value["config"]["keras_history"])
    elif isinstance(value, dict):
        for item in value.values():
            collect_refs(item, refs)
    elif isinstance(value, (list, tuple)):
        for item in value:
            collect_refs(item, refs)


def resolve_tensors(value, outputs_by_node):
    """Replace every serialized Keras tensor in call args/kwargs by the matching tf_keras tensor."""
    if is_tensor_ref(value):
        return node_output(value["config"]["keras_history"], outputs_by_node)
    if isinstance(value, dict):
        return {key: resolve_tensors(item, outputs_by_node) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve_tensors(item, outputs_by_node) for item in value]
    return value


def input_kwargs(config):
    """tf_keras.Input kwargs for a Keras-3 InputLayer config."""
    shape = config.get("batch_shape") or [None, *config.get("shape", [])]
    return {"batch_size": shape[0], "shape": tuple(shape[1:]), "dtype": policy_name(config.get("dtype")),
            "name": config["name"], "sparse": bool(config.get("sparse")), "ragged": bool(config.get("ragged"))}


def make_input(config):
    kwargs = input_kwargs(config)
    if kwargs["batch_size"] is None:
        kwargs.pop("batch_size")
    return tf_keras_module().Input(**kwargs)


def make_layer(spec):
    """One tf_keras layer (or nested model) from a Keras-3 layer entry of a model config."""
    if spec["class_name"] in MODEL_CLASSES:
        nested = spec["config"]
        return build_sequential(nested) if spec["class_name"] == "Sequential" else build_functional(nested)
    cls = twin_class(spec)
    return cls.from_config(clean_config(cls, spec["config"]))


def twin_class(spec):
    """The tf_keras class for a layer entry: declared twin for custom layers, same-named class otherwise."""
    module = spec.get("module") or ""
    if module.startswith(OPS_MODULE_PREFIX):
        raise UserError(f"layer {spec.get('name')!r} is a raw keras.ops call ({module}.{spec['class_name']}); "
                        "tfmot needs layers: use the keras.layers equivalent (e.g. layers.Add, layers.Concatenate)")
    registered_name = spec.get("registered_name")
    if registered_name:
        factory = twin_factory(registered_name)
        if factory is None:
            raise UserError(f"layer {spec.get('name')!r} is the custom class {registered_name!r}, which has no "
                            "tf_keras twin; declare one with export.twin_registry.register_twin_layer")
        return factory()
    cls = getattr(tf_keras_module().layers, spec["class_name"], None)
    if cls is None:
        raise UserError(f"layer {spec.get('name')!r}: tf_keras has no layer class {spec['class_name']!r}")
    return cls


def policy_name(dtype):
    """'float32' for either a dtype string or a Keras-3 DTypePolicy dict."""
    if isinstance(dtype, dict):
        return dtype.get("config", {}).get("name", "float32")
    return dtype


def accepted_keys(cls):
    """Constructor arguments `cls` (a tf_keras layer class) accepts, following **kwargs up its bases."""
    keys = set(LAYER_BASE_KWARGS)
    for base in cls.__mro__:
        init = base.__dict__.get("__init__")
        if init is not None:
            keys.update(name for name, p in inspect.signature(init).parameters.items()
                        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name != "self")
    return keys


def clean_config(cls, config):
    """A Keras-3 layer config made acceptable to the tf_keras class `cls`.

    Keeps only keys `cls` accepts, turns dtype policies into names, and drops initializers tf_keras
    cannot read (they do not matter: weights are copied from the Keras-3 model).
    """
    allowed = accepted_keys(cls)
    cleaned = {key: value for key, value in config.items() if key in allowed}
    if "dtype" in cleaned:
        cleaned["dtype"] = policy_name(cleaned["dtype"])
    for key in [k for k in cleaned if k.endswith(INITIALIZER_SUFFIX)]:
        if not readable_initializer(cleaned[key]):
            cleaned.pop(key)
    return cleaned


def readable_initializer(value):
    try:
        tf_keras_module().initializers.get(value)
        return True
    except (TypeError, ValueError):
        return False


def copy_weights(source, twin):
    """Copy every layer's weights from the Keras-3 `source` to the same-named layer of `twin`."""
    for layer in source.layers:
        if not layer.weights:
            continue
        target = twin.get_layer(layer.name)
        if hasattr(layer, "layers") and hasattr(target, "layers"):
            copy_weights(layer, target)
            continue
        values = [np.asarray(w) for w in layer.get_weights()]
        shapes = [tuple(w.shape) for w in target.get_weights()]
        if shapes != [v.shape for v in values]:
            raise UserError(f"layer {layer.name!r}: tf_keras twin weights {shapes} differ from the model's "
                            f"{[v.shape for v in values]}")
        target.set_weights(values)


def random_inputs(model, seed=0):
    """Random float inputs matching the model's input shapes (unknown dimensions become 32)."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(t.shape) for t in model.inputs]
    arrays = [rng.standard_normal((CHECK_BATCH, *[d or CHECK_SPATIAL for d in s[1:]])).astype("float32")
              for s in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def max_twin_error(model, twin, inputs):
    """(max abs difference, output range) between the two models on `inputs` over all outputs."""
    expected = model(inputs, training=False)
    actual = twin(inputs, training=False)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    error = max(float(np.max(np.abs(np.asarray(a) - np.asarray(e)))) for a, e in zip(actual, expected))
    spread = max(float(np.ptp(np.asarray(e))) for e in expected)
    return error, spread


def check_twin(model, twin):
    """Raise UserError when the twin's outputs differ from the model's beyond float32 round-off."""
    error, spread = max_twin_error(model, twin, random_inputs(model))
    if error > TWIN_TOLERANCE * max(1.0, spread):
        raise UserError(f"tf_keras twin of {model.name!r} differs from the model by {error:.3g} "
                        f"(output range {spread:.3g}); a custom layer's twin computes something else")
    return error
