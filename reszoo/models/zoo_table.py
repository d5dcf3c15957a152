"""The zoo table: `model_info` facts for every registered model, cached in `reszoo/models/zoo_table.json`.

Building ~30 models (ResNet-1202, ResNeXt-101) to count parameters and FLOPs takes minutes, so `reszoo list`
reads the cached table as data (`reszoo.catalog`, no TensorFlow); `tools/make_zoo_table.py` regenerates it
(`build_table`) and a test checks it against `model_info`. `facts` measures models missing from the table
(e.g. registered by a user) on the fly.

Example:
    >>> facts("resnet50")["macs"]
    4089184256
"""
from reszoo.catalog import load_table
from reszoo.models.registry import get_entry, list_models, model_info


def normalize(info):
    """model_info facts in JSON-stable form (tuples become lists)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in info.items()}


def facts(name):
    """model_info(name) from the cached table, measured when the table lacks `name` (unknown -> error)."""
    get_entry(name)  # raises UnknownModelError with suggestions
    cached = load_table().get(name)
    return cached if cached is not None else normalize(model_info(name))


def build_table(names=None):
    """Measure model_info for `names` (default: every registered model); returns {name: facts}."""
    return {name: normalize(model_info(name)) for name in (names or list_models())}
