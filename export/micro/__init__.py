"""TensorFlow Lite Micro deployment: the op table, the tensor-arena estimate and the C++ model source.

- `export.micro.ops`: TFLM builtin op -> `MicroMutableOpResolver` method (`RESOLVER_METHODS`, `MICRO_OPS`).
- `export.micro.arena`: the arena a model needs in TFLM, from its flatbuffer (`estimate_arena`).
- `export.micro.source`: `<name>_model_data.cc/.h` rendered from a flatbuffer, and the array read back.
The converter `export.converters.micro` ties them together for the `micro` row of `export.formats`.

Example:
    >>> from export.micro.ops import RESOLVER_METHODS
    >>> RESOLVER_METHODS["FULLY_CONNECTED"]
    'AddFullyConnected'
"""
