"""The zoo catalog: every registered model's facts (family, paper, default input, classes, params, MACs and FLOPs)
as data, read from `reszoo/models/zoo_table.json` without TensorFlow, so `reszoo list` and `reszoo info` start at once.

`tools/make_zoo_table.py` writes the file from the live registry (`reszoo.models.zoo_table.build_table`); a test
checks that it holds exactly the registered models, each with its `model_info`.

Example:
    >>> model_names("resnet5*")[:2]
    ['resnet50', 'resnet50c']
    >>> model_facts("resnet50")["macs"]
    4089184256
"""
import fnmatch
import json
from functools import lru_cache
from pathlib import Path

from reszoo.errors import UnknownModelError

TABLE_PATH = Path(__file__).parent / "models" / "zoo_table.json"


@lru_cache(maxsize=1)
def load_table():
    """{name: facts} from the JSON table ({} when the file is absent)."""
    if not TABLE_PATH.exists():
        return {}
    return json.loads(TABLE_PATH.read_text())


def model_names(pattern=None):
    """Sorted names in the table, optionally filtered by a glob such as ``"resnet5*"`` (as `list_models` does)."""
    return [name for name in sorted(load_table()) if pattern is None or fnmatch.fnmatch(name, pattern)]


def model_facts(name):
    """The table's facts of `name`: UnknownModelError (suggesting close names) when it has none.

    Example:
        >>> model_facts("resnet51")
        Traceback (most recent call last):
        ...
        reszoo.errors.UnknownModelError: unknown model 'resnet51'; did you mean resnet56, resnet50, resnet18?
    """
    table = load_table()
    if name not in table:
        raise UnknownModelError(name, sorted(table))
    return table[name]
