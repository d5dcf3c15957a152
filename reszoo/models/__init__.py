"""Importing this package registers every model family with the registry.

Keras maps a functional graph recursively, so very deep models (resnet1202: ~4,000 layers) need more than
Python's default recursion limit of 1000 to build and to load from .keras; importing the zoo raises it
(never lowers it).
"""
import sys

DEEP_GRAPH_RECURSION_LIMIT = 20_000
sys.setrecursionlimit(max(sys.getrecursionlimit(), DEEP_GRAPH_RECURSION_LIMIT))

from reszoo.models import cifar  # noqa: E402,F401
from reszoo.models import densenet  # noqa: E402,F401
from reszoo.models import resnet  # noqa: E402,F401
from reszoo.models import resnet_v2  # noqa: E402,F401
