"""The zoo: the registry, the building blocks, one module per family, weights, FLOPs and the zoo table.

Importing this package registers every family eagerly (as timm's `models/__init__.py` does); the registry
itself is a leaf that imports no family, so there is no import circle. Add a family: a new module here that
calls `register_model`/`register_rows`, imported below.

Keras maps a functional graph recursively, so very deep models (resnet1202: ~4,000 layers) need more than
Python's default recursion limit of 1000 to build and to load from .keras; importing the zoo raises it
(never lowers it).

Example:
    >>> from reszoo.models import create_model, list_models
    >>> "resnet20" in list_models("resnet2*")
    True
"""
import sys

from export.core.quiet import import_tensorflow_quietly

import_tensorflow_quietly()  # TensorFlow's C++ start-up banner stays off the terminal; real errors still show

DEEP_GRAPH_RECURSION_LIMIT = 20_000
sys.setrecursionlimit(max(sys.getrecursionlimit(), DEEP_GRAPH_RECURSION_LIMIT))

from reszoo.models import cifar, densenet, resnet, resnet_v2  # noqa: E402,F401  (each registers its names)
from reszoo.models.features import feature_info  # noqa: E402
from reszoo.models.factory import create_model  # noqa: E402
from reszoo.models.registry import build_model, get_entry, list_models, model_info, register_model  # noqa: E402

__all__ = ["build_model", "create_model", "feature_info", "get_entry", "list_models", "model_info", "register_model"]
