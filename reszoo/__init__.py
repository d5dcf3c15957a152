"""reszoo: residual networks for Keras 3, with an edge-export toolkit (see the `export` package).

Example:
    >>> import reszoo
    >>> model = reszoo.create_model("resnet50", weights=None)
    >>> reszoo.list_models("resnet5*")[:2]
    ['resnet50', 'resnet50c']
"""
from reszoo.registry import create_model, list_models, model_info, register_model

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "model_info", "register_model", "__version__"]
