"""Import tensorflow_model_optimization without leaving TF_USE_LEGACY_KERAS set in the user's process.

tfmot sets ``os.environ["TF_USE_LEGACY_KERAS"] = "1"`` when imported (and again inside some calls); that
would silently switch later ``tf.keras`` users to Keras 2. `legacy_keras_env` restores the variable.

Example:
    >>> import os
    >>> before = os.environ.get("TF_USE_LEGACY_KERAS")
    >>> tfmot = load_tfmot()
    >>> os.environ.get("TF_USE_LEGACY_KERAS") == before
    True
"""
import contextlib
import os

ENV_VAR = "TF_USE_LEGACY_KERAS"


@contextlib.contextmanager
def legacy_keras_env():
    """Run the block, then put TF_USE_LEGACY_KERAS back to what it was (unset stays unset)."""
    before = os.environ.get(ENV_VAR)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before


def load_tfmot():
    """The `tensorflow_model_optimization` module, imported lazily with the env var restored."""
    with legacy_keras_env():
        import tensorflow_model_optimization as tfmot
    return tfmot
