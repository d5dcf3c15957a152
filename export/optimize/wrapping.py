"""Clone a tf_keras model with some layers wrapped (pruning, QAT annotation, clustering), keeping weights.

`tf_keras.models.clone_model` re-creates layers without weights; `clone_with` gives every layer clone its
original's weights before a tfmot wrapper goes around it.

Example:
    >>> import tf_keras
    >>> inputs = tf_keras.Input((4,))
    >>> model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, name="fc")(inputs))
    >>> clone = clone_with(model, lambda layer, clone: None)
    >>> bool((clone.get_layer("fc").kernel.numpy() == model.get_layer("fc").kernel.numpy()).all())
    True
"""
from export.optimize.tfmot_loader import legacy_keras_env


def clone_with(model, wrap):
    """Clone `model`; `wrap(original, clone)` returns a wrapper for the clone, or None to keep it.

    The clone is built and given the original's weights before `wrap` sees it (clustering initialises its
    centroids from them).
    """
    import tf_keras

    def clone_layer(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if layer.__class__.__name__ == "InputLayer":
            return clone
        if layer.weights:
            clone.build(layer.input_shape)
            clone.set_weights(layer.get_weights())
        wrapped = wrap(layer, clone)
        return clone if wrapped is None else wrapped

    with legacy_keras_env():
        return tf_keras.models.clone_model(model, clone_function=clone_layer)


def find_layer(model, name):
    """The layer called `name`, or the tfmot wrapper whose inner layer is called `name`."""
    for layer in model.layers:
        if layer.name == name or getattr(getattr(layer, "layer", None), "name", None) == name:
            return layer
    raise KeyError(f"model {model.name!r} has no layer {name!r}")
