"""An exponential moving average of a model's weights (Polyak averaging), evaluated and saved instead of them.

`EmaWeights(model, decay)` keeps a float32 shadow of every trainable variable and every float non-trainable one
(BatchNorm moving statistics), updated after each optimizer step as shadow = decay * shadow + (1 - decay) * w
in the cross-replica context (all replicas hold the same weights, so one update serves them all). The shadow is
checkpointed with the run (`trackable`), and `swapped()` puts it into the model for evaluation and saving.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
    >>> ema = EmaWeights(model, decay=0.5)
    >>> _ = model.layers[0].kernel.assign([[3.0], [3.0]])  # what an optimizer step does
    >>> ema.update()
    >>> with ema.swapped():
    ...     print(model.layers[0].kernel.numpy().ravel())  # evaluate or save here
    [2. 2.]
    >>> print(model.layers[0].kernel.numpy().ravel())
    [3. 3.]
"""
import contextlib

import tensorflow as tf


class EmaWeights:
    """Shadow weights of `model` (create inside the strategy's scope)."""

    def __init__(self, model, decay):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay {decay} must be in (0, 1)")
        self.decay = float(decay)
        self.weights = list(model.trainable_variables) + [
            v for v in model.non_trainable_variables if "float" in str(v.dtype)]
        self.shadow = [tf.Variable(tf.cast(v.value, tf.float32), trainable=False, name=f"ema_{i}")
                       for i, v in enumerate(self.weights)]
        self.trackable = tf.Module(name="ema")
        self.trackable.shadow = self.shadow

    def update(self):
        """shadow <- decay * shadow + (1 - decay) * weights (call in a tf.function, cross-replica context)."""
        for shadow, weight in zip(self.shadow, self.weights):
            shadow.assign(self.decay * shadow + (1.0 - self.decay) * tf.cast(weight.value, tf.float32))

    @contextlib.contextmanager
    def swapped(self):
        """The model holds the averaged weights inside the block, its own ones again after it."""
        saved = [tf.identity(w.value) for w in self.weights]
        for weight, shadow in zip(self.weights, self.shadow):
            weight.assign(tf.cast(shadow, weight.dtype))
        try:
            yield
        finally:
            for weight, value in zip(self.weights, saved):
                weight.assign(value)
