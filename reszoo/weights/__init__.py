"""Pretrained weights from PyTorch, read without torch: torchvision, timm and the classic CIFAR checkpoints.

- `from_torch(source, name, **builder_kwargs)`: a reszoo model with the weights of a .safetensors / .pth /
  .pt / .th / .tar / .npz file or a {name: array} mapping (layouts "torchvision", "timm", "cifar"; "auto").
- `load_state_dict(source)`: the flat {name: numpy array} state dict the import uses.
- `check_import(model, state, layout)`: the largest output difference against a numpy forward pass with
  PyTorch semantics that reads the architecture from the keys alone (`reszoo import --check`).
- Torch pickles go through a restricted unpickler: only tensors and plain data, never code.
- These names are imported on first use, so `reszoo.weights.presets` (the table of pretrained weights that
  `reszoo list --pretrained` prints) loads without numpy.

Example:
    >>> from reszoo.weights import from_torch
    >>> model = from_torch("resnet20-12fca82f.th", "resnet20")  # doctest: +SKIP
"""
import importlib

# public name -> the module that defines it
EXPORTS = {
    "ImportCheck": "reszoo.weights.check",
    "check_import": "reszoo.weights.check",
    "LAYOUTS": "reszoo.weights.layouts",
    "LAYOUT_CHOICES": "reszoo.weights.layouts",
    "load_state_dict": "reszoo.weights.state_dict",
    "ImportReport": "reszoo.weights.torch_import",
    "from_torch": "reszoo.weights.torch_import",
    "import_torch": "reszoo.weights.torch_import",
}
__all__ = sorted(EXPORTS)


def __getattr__(name):
    if name in EXPORTS:
        return getattr(importlib.import_module(EXPORTS[name]), name)
    raise AttributeError(f"module 'reszoo.weights' has no attribute {name!r}")
