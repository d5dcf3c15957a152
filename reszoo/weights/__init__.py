"""Pretrained weights from PyTorch, read without torch: torchvision, timm and the classic CIFAR checkpoints.

- `from_torch(source, name, **builder_kwargs)`: a reszoo model with the weights of a .safetensors / .pth /
  .pt / .th / .tar / .npz file or a {name: array} mapping (layouts "torchvision", "timm", "cifar"; "auto").
- `load_state_dict(source)`: the flat {name: numpy array} state dict the import uses.
- `check_import(model, state, layout)`: the largest output difference against a numpy forward pass with
  PyTorch semantics that reads the architecture from the keys alone (`reszoo import --check`).
- Torch pickles go through a restricted unpickler: only tensors and plain data, never code.

Example:
    >>> from reszoo.weights import from_torch
    >>> model = from_torch("resnet20-12fca82f.th", "resnet20")  # doctest: +SKIP
"""
from reszoo.weights.check import ImportCheck, check_import
from reszoo.weights.layouts import LAYOUT_CHOICES, LAYOUTS
from reszoo.weights.state_dict import load_state_dict
from reszoo.weights.torch_import import ImportReport, from_torch, import_torch

__all__ = ["LAYOUTS", "LAYOUT_CHOICES", "ImportCheck", "ImportReport", "check_import", "from_torch", "import_torch",
           "load_state_dict"]
