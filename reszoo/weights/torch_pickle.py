"""Read `torch.save` files without torch, and without running anything the file asks for.

A torch checkpoint is a pickle, and unpickling a stranger's pickle with `pickle.load` (or `torch.load`
without `weights_only=True`) can call any Python function: `os.system` included. `RestrictedUnpickler`
admits only the globals in `ALLOWED_GLOBALS` (tensor rebuilds, storage types, `OrderedDict` and a few plain
data containers); any other global stops the read with a UserError naming it, before it is called.

Both on-disk formats are read:
- the zip format (torch >= 1.6): `<dir>/data.pkl` plus one entry `<dir>/data/<key>` per storage;
- the legacy format (torch < 1.6, e.g. the classic CIFAR `.th` files): a magic number, protocol and
  system-info pickle, the object pickle, the storage-key list, then each storage as an int64 element count
  followed by its bytes.

Tensors come back as numpy arrays (bfloat16 through `ml_dtypes`, which TensorFlow ships).

Example:
    >>> obj = read_torch_file("resnet20-12fca82f.th")  # doctest: +SKIP
    >>> sorted(obj["state_dict"])[:2]  # doctest: +SKIP
    ['module.bn1.bias', 'module.bn1.num_batches_tracked']
"""
import argparse
import collections
import dataclasses
import io
import pickle
import tarfile
import zipfile

import numpy as np

from reszoo.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


def _bfloat16():
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


# torch storage class -> numpy dtype (a callable for bfloat16, whose numpy type comes from ml_dtypes)
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": _bfloat16, "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}


@dataclasses.dataclass(frozen=True)
class StorageType:
    """A torch storage class named in a pickle (`torch.FloatStorage`): stands for its numpy dtype."""

    name: str

    @property
    def dtype(self):
        kind = STORAGE_DTYPES[self.name]
        return np.dtype(kind() if kind is _bfloat16 else kind)


@dataclasses.dataclass
class TensorRef:
    """A tensor as the pickle describes it; `array()` cuts it from its storage once the storages are read."""

    storage: object  # the key the persistent id gave; resolved through `storages`
    offset: int
    size: tuple
    stride: tuple

    def array(self, storages):
        data = storages[self.storage]
        return strided_copy(data, self.offset, self.size, self.stride)


def strided_copy(data, offset, size, stride):
    """`data[offset:]` viewed with torch's `size`/`stride` (in elements), copied; UserError when out of bounds.

    Example:
        >>> strided_copy(np.arange(6, dtype="float32"), 0, (3, 2), (1, 3)).tolist()
        [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    """
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
        raise UserError(f"tensor with size {size}, stride {stride}, offset {offset} is malformed")
    if 0 in size:
        return np.zeros(size, data.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= len(data):
        raise UserError(f"tensor with size {size}, stride {stride}, offset {offset} reads past its storage "
                        f"of {len(data)} elements")
    view = np.lib.stride_tricks.as_strided(data[offset:], shape=size,
                                           strides=[s * data.itemsize for s in stride], writeable=False)
    return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor(_v2) (requires_grad, hooks and metadata do not matter for weights)."""
    return TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    """torch._utils._rebuild_parameter(_with_state): a Parameter is its data."""
    return data


# (module, name) -> what the pickle gets instead; everything else is refused
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,  # torch < 0.4 files (the classic CIFAR .th)
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("argparse", "Namespace"): argparse.Namespace,  # training args saved by timm/classic trainers: plain data
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that admits only ALLOWED_GLOBALS; storages come from `load_storage(persistent_id)`."""

    def __init__(self, file, load_storage, source):
        super().__init__(file)
        self.load_storage, self.source = load_storage, source

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UserError(f"{self.source}: refused to load: the pickle asks for the global {module}.{name}, "
                            f"which is not a tensor or plain data (it could run code); "
                            f"allowed: tensors, storages, OrderedDict, Namespace")
        return ALLOWED_GLOBALS[(module, name)]

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UserError(f"{self.source}: unexpected persistent id {str(pid)[:80]!r} (not a torch storage)")
        return self.load_storage(pid)


def _unpickle(data, load_storage, source):
    try:
        return RestrictedUnpickler(io.BytesIO(data) if isinstance(data, bytes) else data, load_storage,
                                   source).load()
    except UserError:
        raise
    except Exception as error:  # truncated or garbled pickle
        raise UserError(f"{source}: not a readable torch file ({type(error).__name__}: {error})") from None


def _resolve(obj, storages):
    """Replace every TensorRef inside `obj` (dicts, lists, tuples) by its numpy array."""
    if isinstance(obj, TensorRef):
        return obj.array(storages)
    if isinstance(obj, dict):
        return type(obj)((key, _resolve(value, storages)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(value, storages) for value in obj)
    return obj


def _storage_type(pid, source):
    if not isinstance(pid[1], StorageType):
        raise UserError(f"{source}: storage of unknown type {pid[1]!r}")
    return pid[1]


def _read_zip(path, source):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise UserError(f"{source}: a zip file but not a torch checkpoint (no <dir>/data.pkl entry)")
        root = pickles[0][: -len("data.pkl")]
        order = archive.read(root + "byteorder").decode().strip() if root + "byteorder" in names else "little"
        storages = {}

        def load_storage(pid):
            kind, key = _storage_type(pid, source), str(pid[2])
            entry = f"{root}data/{key}"
            if key not in storages:
                if entry not in names:
                    raise UserError(f"{source}: storage {key} is missing from the archive")
                storages[key] = np.frombuffer(archive.read(entry), kind.dtype.newbyteorder("<" if order == "little"
                                                                                            else ">"))
            return key

        obj = _unpickle(archive.read(pickles[0]), load_storage, source)
    return _resolve(obj, {key: data.astype(data.dtype.newbyteorder("=")) for key, data in storages.items()})


def _read_legacy(file, source):
    header = [_unpickle(file, _no_storage(source), source) for _ in range(3)]
    magic, protocol, system = header
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
        raise UserError(f"{source}: not a torch checkpoint (bad magic number or protocol)")
    if isinstance(system, dict) and not system.get("little_endian", True):
        raise UserError(f"{source}: a big-endian legacy torch file; re-save it with torch >= 1.6")
    roots, views = {}, {}

    def load_storage(pid):
        if len(pid) != 6:
            raise UserError(f"{source}: malformed legacy storage id {str(pid)[:80]!r}")
        _, kind, key, _location, numel, view = pid
        roots.setdefault(str(key), (_storage_type(pid, source), int(numel)))
        if view is None:
            return str(key)
        view_key, offset, view_size = view
        views[str(view_key)] = (str(key), int(offset), int(view_size))
        return str(view_key)

    obj = _unpickle(file, load_storage, source)
    keys = _unpickle(file, _no_storage(source), source)
    storages = {}
    for key in keys:
        if str(key) not in roots:
            raise UserError(f"{source}: storage {key} is listed but never used")
        kind, numel = roots[str(key)]
        storages[str(key)] = _read_legacy_storage(file, kind.dtype, numel, source)
    for view_key, (key, offset, view_size) in views.items():
        storages[view_key] = storages[key][offset:offset + view_size]
    missing = set(roots) - set(storages)
    if missing:
        raise UserError(f"{source}: storages {sorted(missing)[:4]} are missing from the file")
    return _resolve(obj, storages)


def _read_legacy_storage(file, dtype, numel, source):
    count = np.frombuffer(file.read(8), "<i8")
    if len(count) != 1 or int(count[0]) != numel:
        raise UserError(f"{source}: storage data is truncated or does not match its header")
    raw = file.read(numel * dtype.itemsize)
    if len(raw) != numel * dtype.itemsize:
        raise UserError(f"{source}: storage data is truncated")
    return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)


def _no_storage(source):
    def refuse(pid):
        raise UserError(f"{source}: storage reference outside the object pickle")

    return refuse


def read_torch_file(path):
    """The object a `torch.save` file holds, tensors as numpy arrays; zip and legacy formats, no torch needed.

    Raises UserError (naming the file and the reason) for refused globals, truncated or non-torch files.

    Example:
        >>> read_torch_file("missing.pth")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        FileNotFoundError: ...
    """
    source = repr(str(path))
    if zipfile.is_zipfile(path):
        return _read_zip(path, source)
    if tarfile.is_tarfile(path):
        raise UserError(f"{source}: a tar-format torch file (torch < 0.4); re-save it with torch >= 1.6")
    with open(path, "rb") as file:
        return _read_legacy(file, source)
