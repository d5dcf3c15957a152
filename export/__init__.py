"""reszoo's edge-export toolkit: any Keras model -> TFLite / ONNX / SavedModel with verified accuracy parity.

`export` never imports `reszoo`; it takes any Keras model. The main entry point is `export_model`
(lazily loaded from `export.pipeline`); runners for every artifact format are in `export.runtimes`.

Example:
    >>> import export
    >>> callable(export.export_model)
    True
"""

_LAZY = {"export_model": "export.pipeline", "ExportResult": "export.pipeline", "load_runner": "export.runtimes"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
