"""Fine-tune a tf_keras (twin) model on (x, y) numpy data: the step pruning, QAT and clustering share.

Loss is sparse categorical cross-entropy on the model output; `from_logits` follows the last layer (a
softmax output means probabilities). `progress(description, completed, total)` is called once per batch.

Example:
    >>> import numpy as np, tf_keras
    >>> inputs = tf_keras.Input((4,))
    >>> model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, activation="softmax")(inputs))
    >>> x, y = np.random.rand(8, 4).astype("float32"), np.array([0, 1] * 4)
    >>> sorted(fine_tune(model, x, y, epochs=1, batch_size=4, learning_rate=1e-3))
    ['accuracy', 'loss']
"""
import math

import numpy as np

from export.core.errors import UserError

PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")
BATCH_NORM_CLASSES = ("BatchNormalization", "SyncBatchNormalization")


def outputs_probabilities(model):
    """True when the model's output layer ends in softmax/sigmoid (so the loss must not apply it again).

    Looks through tfmot wrappers (`.layer`) and QAT's quantize-aware activations (`.activation`).
    """
    last = model.layers[-1]
    last = getattr(last, "layer", last)
    if last.__class__.__name__ == "Softmax":
        return True
    activation = getattr(last, "activation", None)
    activation = getattr(activation, "activation", activation)
    return getattr(activation, "__name__", str(activation)) in PROBABILITY_ACTIVATIONS


def progress_callback(progress, description, total):
    """A tf_keras callback calling `progress(description, completed, total)` after every batch."""
    import tf_keras

    class ProgressCallback(tf_keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.completed = 0

        def on_train_batch_end(self, batch, logs=None):
            self.completed += 1
            progress(description, self.completed, total)

    return ProgressCallback()


def freeze_batch_norm(model):
    """Put every BatchNormalization of a tf_keras model (also inside a tfmot wrapper) in inference mode
    (trainable=False): fine-tuning on a few hundred images must not replace the statistics the model was
    trained with (measured: docs/optimization.md "QAT that helps"). Returns the frozen layers' names."""
    frozen = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if inner.__class__.__name__ in BATCH_NORM_CLASSES:
            inner.trainable = False
            frozen.append(inner.name)
    return frozen


def steps_per_epoch(num_samples, batch_size):
    return max(1, math.ceil(num_samples / batch_size))


def fine_tune(model, x, y, epochs, batch_size, learning_rate, callbacks=(), progress=None, description="fine-tune"):
    """Compile and fit `model` (in place); returns the last epoch's {"loss", "accuracy"}."""
    import tf_keras

    if len(model.outputs) != 1:
        raise UserError(f"fine-tuning needs a single-output classifier; {model.name!r} has {len(model.outputs)}")
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])
    all_callbacks = list(callbacks)
    if progress is not None:
        all_callbacks.append(progress_callback(progress, description, epochs * steps_per_epoch(len(x), batch_size)))
    history = model.fit(np.asarray(x, "float32"), np.asarray(y, "int64"), batch_size=batch_size, epochs=epochs,
                        callbacks=all_callbacks, shuffle=True, verbose=0)
    return {"loss": float(history.history["loss"][-1]), "accuracy": float(history.history["accuracy"][-1])}
