"""Weight loading: local `.keras` / `.weights.h5` files, and ports from keras.applications."""
import os

from reszoo.errors import UserError

WEIGHT_SUFFIXES = (".keras", ".weights.h5")


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
        raise UserError(f"weights file {weights!r} does not fit model {model.name!r}: {error}") from None
    return model
