"""reszoo: residual networks for Keras 3, with an edge-export toolkit (see the `export` package).

`import reszoo` is light (no TensorFlow), so the `reszoo` command starts fast and answers Ctrl-C at once.
The zoo functions below come from `reszoo.models`, whose import registers every family at once: the first
use of any of them, or any import of `reszoo.models`, sees the complete registry.

Example:
    >>> import reszoo
    >>> model = reszoo.create_model("resnet20", num_classes=10)
    >>> reszoo.list_models("resnet5*")[:2]
    ['resnet50', 'resnet50c']
"""
import importlib

__version__ = "0.1.0"
ZOO_FUNCTIONS = ("create_model", "feature_info", "list_models", "model_info", "register_model")
__all__ = [*ZOO_FUNCTIONS, "__version__"]


def __getattr__(name):
    if name in ZOO_FUNCTIONS:
        return getattr(importlib.import_module("reszoo.models"), name)
    raise AttributeError(f"module 'reszoo' has no attribute {name!r}")
