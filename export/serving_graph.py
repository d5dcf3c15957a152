"""Trace a model once into a SavedModel with a `serving_default` signature (input -> {"output_0": ...}; a model
with several outputs gets `export.outputs.outputs_by_name` keys: output_0, output_1, ... or its dict keys).

Accepts Keras-3 models (`model.export`) and tf_keras models (returned by the prune/QAT/cluster step;
saved with `tf.saved_model.save` and an explicit serving function). Every TFLite precision and the ONNX
conversion read this one SavedModel. The batch dimension is 1 (static shapes for edge runtimes) unless
`dynamic_batch`.

Example:
    >>> import keras, tempfile
    >>> m = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    >>> info = to_saved_model(m, tempfile.mkdtemp() + "/sm")
    >>> info["input_name"], info["output_name"], info["input_shape"]
    ('x', 'output_0', [1, 4])
"""
import os

from export.outputs import SINGLE_OUTPUT as OUTPUT_NAME, outputs_by_name


def is_tf_keras_model(model):
    """True for tf_keras (Keras 2) models, False for Keras-3 models."""
    return type(model).__module__.startswith("tf_keras") or any(
        cls.__module__.startswith("tf_keras") for cls in type(model).__mro__)


def input_name_of(model):
    """The model's (single) input name, used as the signature's input key."""
    name = model.inputs[0].name if hasattr(model.inputs[0], "name") else "input"
    return name.split(":")[0].split("/")[0] or "input"


def _export_keras3(model, directory, shape):
    import keras

    spec = keras.InputSpec(shape=shape, dtype="float32", name=input_name_of(model))
    model.export(directory, format="tf_saved_model", verbose=False, input_signature=[spec])


def _export_tf_keras(model, directory, shape):
    import tensorflow as tf

    name = input_name_of(model)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name=name)])
    def serve(x):
        return outputs_by_name(model(x, training=False))  # the keys model.export gives Keras-3 models

    tf.saved_model.save(model, directory, signatures={"serving_default": serve.get_concrete_function()})


def signature_io(directory):
    """(input_name, input_shape, output_name) of a SavedModel's serving_default signature."""
    import tensorflow as tf

    signature = tf.saved_model.load(directory).signatures["serving_default"]
    (input_name, spec), = signature.structured_input_signature[1].items()
    output_name = next(iter(signature.structured_outputs))
    return input_name, [d if d is not None else -1 for d in spec.shape.as_list()], output_name


def to_saved_model(model, directory, dynamic_batch=False):
    """Write `model` (Keras 3 or tf_keras) as a SavedModel in `directory`; returns its signature facts.

    Returns {"path", "input_name", "input_shape" (batch -1 when dynamic), "output_name"}.
    """
    shape = (None if dynamic_batch else 1, *model.input_shape[1:])
    exporter = _export_tf_keras if is_tf_keras_model(model) else _export_keras3
    exporter(model, os.fspath(directory), shape)
    input_name, input_shape, output_name = signature_io(os.fspath(directory))
    return {"path": os.fspath(directory), "input_name": input_name, "input_shape": input_shape,
            "output_name": output_name}
