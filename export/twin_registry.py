"""Where libraries declare the tf_keras twin of each custom Keras-3 layer they define.

tfmot only accepts tf_keras models, so `export` rebuilds any Keras-3 model in tf_keras. Standard layers
map by class name; a custom layer needs its tf_keras class, registered here by its Keras registered name.
The factory is called lazily, so declaring a twin never imports tf_keras.

Example:
    >>> register_twin_layer("mylib>MyLayer", lambda: object)
    >>> twin_factory("mylib>MyLayer")() is object
    True
"""
from typing import Callable

_TWIN_FACTORIES: dict[str, Callable[[], type]] = {}


def register_twin_layer(registered_name: str, factory: Callable[[], type]) -> None:
    """Declare `factory()` as the tf_keras class for the Keras-3 layer `registered_name` ("pkg>Class")."""
    _TWIN_FACTORIES[registered_name] = factory


def twin_factory(registered_name: str):
    """The factory declared for `registered_name`, or None."""
    return _TWIN_FACTORIES.get(registered_name)
