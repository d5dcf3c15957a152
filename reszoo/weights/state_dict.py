"""The one loader of PyTorch weights: any SOURCE -> a flat {name: numpy array} state dict.

SOURCE is a path (`READERS`: `.safetensors`, torch's `.pth`/`.pt`/`.th`/`.tar`/`.bin`/`.ckpt` in the zip or
the legacy format, `.npz`) or a mapping of name -> array-like (numpy arrays, or anything with `.numpy()`,
such as torch tensors). Real checkpoints wrap the state dict; `unwrap` finds it under `WRAPPER_KEYS` (the EMA
copy only when asked) and strips the `module.` (DataParallel) and `model.` prefixes.

Example:
    >>> import numpy as np
    >>> state = load_state_dict({"module.fc.weight": np.zeros((2, 3))})
    >>> list(state), state["fc.weight"].dtype
    (['fc.weight'], dtype('float64'))
"""
import os
from collections.abc import Mapping

import numpy as np

from reszoo.errors import UserError
from reszoo.weights.torch_pickle import read_torch_file

WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")  # where checkpoints keep the weights
EMA_KEYS = ("state_dict_ema", "model_ema", "ema")
STRIPPED_PREFIXES = ("module.", "model.")
TORCH_SUFFIXES = (".pth", ".pt", ".th", ".tar", ".bin", ".ckpt")


def _read_safetensors(path):
    """A .safetensors file through the `safetensors` package's numpy API (bfloat16 via ml_dtypes)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="np") as file:
            return {key: _safetensors_tensor(file, key, path) for key in file.keys()}
    except SafetensorError as error:
        raise UserError(f"{str(path)!r}: not a readable safetensors file ({error})") from None


def _safetensors_tensor(file, key, path):
    try:
        return file.get_tensor(key)
    except (KeyError, TypeError, ValueError):  # numpy has no bfloat16: read its bytes by the header's offsets
        return _bfloat16_tensor(path, key)


def _bfloat16_tensor(path, key):
    import json

    import ml_dtypes

    with open(path, "rb") as file:
        header_size = int(np.frombuffer(file.read(8), "<u8")[0])
        header = json.loads(file.read(header_size))
        info = header[key]
        if info["dtype"] != "BF16":
            raise UserError(f"{str(path)!r}: tensor {key!r} has dtype {info['dtype']}, which numpy cannot hold")
        start, end = info["data_offsets"]
        file.seek(8 + header_size + start)
        data = np.frombuffer(file.read(end - start), np.dtype(ml_dtypes.bfloat16).newbyteorder("<"))
    return data.reshape(info["shape"])


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as error:  # object arrays need pickle: refused
        raise UserError(f"{str(path)!r}: cannot read this .npz without pickle ({error})") from None
    except (OSError, EOFError) as error:
        raise UserError(f"{str(path)!r}: not a readable .npz file ({error})") from None


# suffix -> reader(path) -> nested object holding the state dict
READERS = {".safetensors": _read_safetensors, ".npz": _read_npz, **{s: read_torch_file for s in TORCH_SUFFIXES}}


def _is_array(value):
    return isinstance(value, np.ndarray) or hasattr(value, "numpy")


def _as_numpy(value):
    """A numpy array from a numpy array or a tensor-like (`.detach().cpu().numpy()` when it has those)."""
    if isinstance(value, np.ndarray):
        return value
    for step in ("detach", "cpu"):
        value = getattr(value, step)() if hasattr(value, step) else value
    return np.asarray(value.numpy())


def _is_state_dict(obj):
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) for k in obj) \
        and sum(map(_is_array, obj.values())) > 0


def unwrap(obj, prefer_ema=False, source="SOURCE"):
    """The state dict inside a checkpoint: `obj` itself, or under WRAPPER_KEYS (EMA_KEYS first when asked).

    Example:
        >>> import numpy as np
        >>> ckpt = {"epoch": 3, "state_dict": {"w": np.ones(1)}, "state_dict_ema": {"w": np.zeros(1)}}
        >>> float(unwrap(ckpt)["w"][0]), float(unwrap(ckpt, prefer_ema=True)["w"][0])
        (1.0, 0.0)
    """
    keys = EMA_KEYS if prefer_ema else WRAPPER_KEYS
    if isinstance(obj, dict):
        for key in keys:
            if key in obj and _is_state_dict(obj[key]):
                return obj[key]
    if prefer_ema:
        raise UserError(f"{source} has no EMA weights (looked for {', '.join(EMA_KEYS)})")
    if _is_state_dict(obj):
        return obj
    found = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
    raise UserError(f"{source} holds no state dict (found: {found}); expected tensors at the top level or "
                    f"under {', '.join(WRAPPER_KEYS + EMA_KEYS)}")


def strip_prefixes(state):
    """Drop `module.`/`model.` while every key carries it (DataParallel, wrapped models).

    Example:
        >>> list(strip_prefixes({"module.model.fc.weight": 1}))
        ['fc.weight']
    """
    while True:
        prefix = next((p for p in STRIPPED_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            return state
        state = {key[len(prefix):]: value for key, value in state.items()}


def check_weights_file(path):
    """The reader suffix of weights file `path`; UserError for an unknown suffix or a missing file.

    Example:
        >>> check_weights_file("weights.h6")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        export.core.errors.UserError: weights file 'weights.h6': unknown suffix; allowed: .safetensors, ...
    """
    path = os.fspath(path)
    suffix = next((s for s in READERS if path.lower().endswith(s)), None)
    if suffix is None:
        raise UserError(f"weights file {path!r}: unknown suffix; allowed: {', '.join(READERS)}")
    if not os.path.isfile(path):
        raise UserError(f"weights file {path!r} does not exist")
    return suffix


def read_source(source):
    """The raw object of SOURCE: a mapping as given, or what the suffix's reader makes of the file."""
    if isinstance(source, Mapping):
        return dict(source)
    return READERS[check_weights_file(source)](os.fspath(source))


def load_state_dict(source, prefer_ema=False):
    """SOURCE (path or mapping) -> {name: numpy array}, unwrapped, prefixes stripped; non-tensors dropped.

    Example:
        >>> load_state_dict({"state_dict": {"module.w": np.ones(2)}, "epoch": 9})["w"].tolist()
        [1.0, 1.0]
    """
    name = "the mapping" if isinstance(source, Mapping) else repr(os.fspath(source))
    state = unwrap(read_source(source), prefer_ema, name)
    return strip_prefixes({key: _as_numpy(value) for key, value in state.items() if _is_array(value)})
