"""PyTorch checkpoint files written from numpy arrays without torch, laid out byte for byte as `torch.save` does.

Test support for the PyTorch-checkpoint importer. The layouts follow the torch sources:

* `torch/serialization.py` `_save` (zip format, torch >= 1.6) and `_legacy_save` (the older stream of pickles);
* `torch/_tensor.py` `Tensor._reduce_ex_internal`: a plain CPU tensor pickles as
  `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, OrderedDict())`;
* `caffe2/serialize/inline_container.cc` `PyTorchStreamWriter` and miniz's `mz_zip_writer_add_mem_ex_v2`
  (the zip container: stored entries whose data start on 64-byte boundaries thanks to an "FB" extra field in
  the local header only, zero sizes in the local header plus a data descriptor, ZIP64 end records);
* `torch.nn.Module.state_dict`: an `OrderedDict` carrying a `_metadata` attribute, pickled with BUILD.

Pickling uses the pure-Python `pickle._Pickler` (protocol 2, as torch's DEFAULT_PROTOCOL), which emits the same
opcodes as the C pickler torch uses, and writes the torch globals (`torch FloatStorage`,
`torch._utils _rebuild_tensor_v2`) verbatim without importing torch.

The one field not reproduced bit for bit is the first half of `.data/serialization_id`: torch hashes the record
names with `std::hash` over an `unordered_set`, both implementation-defined; the second half (combined CRC-32 of
the records, c10::hash_combine) is exact. torch only logs this id.
"""
import collections
import functools
import hashlib
import io
import os
import pickle
import random
import shlex
import struct
import sys
import time
import zlib

import ml_dtypes
import numpy as np

# torch.serialization constants
PICKLE_PROTOCOL = 2  # DEFAULT_PROTOCOL
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# `dict(short=SHORT_SIZE, int=INT_SIZE, long=LONG_SIZE)` with struct '=' (standard) sizes: long is 4, not 8
LEGACY_SYS_INFO = dict(
    protocol_version=PROTOCOL_VERSION,
    little_endian=sys.byteorder == "little",
    type_sizes=dict(short=struct.Struct("=h").size, int=struct.Struct("=i").size, long=struct.Struct("=l").size),
)
ZIP_FILE_FORMAT_VERSION = "3\n"  # kMinProducedFileFormatVersion, the `version` record of torch.save archives
ZIP_FORMAT_VERSION = "1"  # `.format_version`: storages written in numeric key order
STORAGE_ALIGNMENT = 64  # kFieldAlignment and `.storage_alignment`
LOCATION = "cpu"

# numpy dtype name -> torch storage class pickled in the persistent id (`torch.<name>`)
STORAGE_TYPES = {
    "float64": "DoubleStorage",
    "float32": "FloatStorage",
    "float16": "HalfStorage",
    np.dtype(ml_dtypes.bfloat16).name: "BFloat16Storage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
}
SHARED_STORAGE_TYPE = "FloatStorage"  # what `share_storage=True` packs into one storage

__all__ = ["STORAGE_TYPES", "save_torch_zip", "save_torch_legacy", "write_malicious_pickle",
           "write_pickle_with_global"]


# ---------------------------------------------------------------------------------------------------------------
# Stand-ins that pickle as torch objects do


class _Global:
    """A `module.name` reference pickled verbatim as GLOBAL (memoized), whether or not the module exists here."""

    __slots__ = ("module", "name")

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __reduce_ex__(self, protocol):
        return self.name  # a string routes pickle to save_global, which _TorchPickler handles

    def __call__(self, *args):  # pickle's save_reduce insists that the function be callable
        raise RuntimeError(f"{self.module}.{self.name} is a pickling stand-in")

    def __repr__(self):
        return f"<global {self.module}.{self.name}>"


@functools.lru_cache(maxsize=None)
def _global(module, name):
    """One `_Global` per name, so repeats become BINGETs as they do for torch's class objects."""
    return _Global(module, name)


REBUILD_TENSOR_V2 = ("torch._utils", "_rebuild_tensor_v2")
REBUILD_TENSOR_V1 = ("torch._utils", "_rebuild_tensor")  # torch 0.3: (storage, offset, size, stride)


class _Reduce:
    """GLOBAL func, args, REDUCE: a call made when the pickle is loaded."""

    def __init__(self, func, args):
        self.func, self.args = func, tuple(args)

    def __reduce_ex__(self, protocol):
        return self.func, self.args


class _Storage:
    """A typed storage: raw little-endian bytes of `numel` elements (hashable by identity)."""

    def __init__(self, type_name):
        self.type_name, self.chunks, self.numel = type_name, [], 0

    def append(self, data, numel):
        """Add elements at the end; returns their storage offset (in elements)."""
        offset = self.numel
        self.chunks.append(data)
        self.numel += numel
        return offset

    @property
    def data(self):
        return b"".join(self.chunks)


class _Tensor:
    """A CPU tensor: `Tensor._reduce_ex_internal` returns `(_rebuild_tensor_v2, args)` for it."""

    def __init__(self, storage, offset, size, stride, torch03=False):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.torch03 = torch03

    def __reduce_ex__(self, protocol):
        # fresh size/stride tuples and backward_hooks per call, as torch builds them
        args = (self.storage, self.offset, tuple(self.size), tuple(self.stride))
        if self.torch03:
            return _global(*REBUILD_TENSOR_V1), args
        return _global(*REBUILD_TENSOR_V2), (*args, False, collections.OrderedDict())


# ---------------------------------------------------------------------------------------------------------------
# numpy arrays -> tensors over storages


def _contiguous_strides(shape):
    """torch's contiguous strides in elements (sizes of 0 count as 1, like c10::contiguous_strides)."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _little_endian(array):
    """The array with little-endian elements (this and torch's readers assume a little-endian host)."""
    return array.astype(array.dtype.newbyteorder("<")) if array.dtype.byteorder == ">" else array


class _TensorTable:
    """Makes one tensor per numpy array (by identity, like torch's memo), placing its data in storages."""

    def __init__(self, share_storage, transpose_views, torch03=False):
        self.share_storage, self.transpose_views, self.torch03 = share_storage, transpose_views, torch03
        self._tensors = {}  # id(array) -> (array, _Tensor); the array is kept so its id stays unique
        self._shared = None

    def tensor(self, array):
        known = self._tensors.get(id(array))
        if known is not None:
            return known[1]
        type_name = STORAGE_TYPES.get(array.dtype.name)
        if type_name is None:
            raise TypeError(f"no torch storage for numpy dtype {array.dtype} (known: {sorted(STORAGE_TYPES)})")
        data, stride = self._layout(_little_endian(array))
        storage = self._storage_for(type_name)
        tensor = _Tensor(storage, storage.append(data, array.size), tuple(array.shape), stride, self.torch03)
        self._tensors[id(array)] = (array, tensor)
        return tensor

    def _layout(self, array):
        """(storage bytes, stride): C order, or with `transpose_views` a 2-D array stored as its transpose."""
        if self.transpose_views and array.ndim == 2 and array.size:
            return np.ascontiguousarray(array.T).tobytes(), (1, array.shape[0])
        return np.ascontiguousarray(array).tobytes(), _contiguous_strides(array.shape)

    def _storage_for(self, type_name):
        if not (self.share_storage and type_name == SHARED_STORAGE_TYPE):
            return _Storage(type_name)
        if self._shared is None:
            self._shared = _Storage(type_name)
        return self._shared


def _module_metadata(keys):
    """`state_dict()._metadata`: one entry per module, parents first; BatchNorm (which has running stats) is
    version 2, others version 1. Only modules that own entries (and their parents) are known here."""
    metadata = collections.OrderedDict([("", {"version": 1})])
    for key in keys:
        parts = key.split(".")
        for depth in range(1, len(parts)):
            metadata.setdefault(".".join(parts[:depth]), {"version": 1})
        if parts[-1] == "running_mean":
            metadata[".".join(parts[:-1])] = {"version": 2}
    return metadata


def _is_state_dict(obj):
    return bool(obj) and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def _convert_dict(obj, table):
    """A state dict (all values arrays) -> OrderedDict with `_metadata`; else dict / OrderedDict as given."""
    items = [(key, _convert(value, table)) for key, value in obj.items()]
    metadata = getattr(obj, "_metadata", None)
    if _is_state_dict(obj) and not table.torch03:  # torch 0.3 state dicts had no _metadata
        metadata = metadata if metadata is not None else _module_metadata(obj)
    if metadata is None and not isinstance(obj, collections.OrderedDict):
        return dict(items)
    out = collections.OrderedDict(items)
    if metadata is not None:
        out._metadata = metadata
    return out


_PASS_THROUGH = (str, bytes, bool, int, float, type(None), _Global, _Reduce)
_CONVERTERS = (  # first match wins
    (np.ndarray, lambda obj, table: table.tensor(obj)),
    (dict, _convert_dict),
    (list, lambda obj, table: [_convert(item, table) for item in obj]),
    (tuple, lambda obj, table: tuple(_convert(item, table) for item in obj)),
    (_PASS_THROUGH, lambda obj, table: obj),
)


def _convert(obj, table):
    """The object torch.save would pickle for `obj`, numpy arrays replaced by tensors."""
    for types, convert in _CONVERTERS:
        if isinstance(obj, types):
            return convert(obj, table)
    raise TypeError(f"cannot write {type(obj).__name__} into a torch checkpoint")


# ---------------------------------------------------------------------------------------------------------------
# Pickling


class _TorchPickler(pickle._Pickler):
    """Protocol-2 pickler with torch's persistent ids; `_Global`s are written as GLOBAL without an import."""

    def __init__(self, file, persistent_id):
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._persistent_id = persistent_id

    def persistent_id(self, obj):
        return self._persistent_id(obj)

    def save_global(self, obj, name=None):
        if not isinstance(obj, _Global):
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
        self.memoize(obj)
        return None


def _pickle(obj, persistent_id=lambda obj: None):
    buffer = io.BytesIO()
    _TorchPickler(buffer, persistent_id).dump(obj)
    return buffer.getvalue()


def _prepare(obj, share_storage, transpose_views, torch03=False):
    return _convert(obj, _TensorTable(share_storage, transpose_views, torch03))


def _write(target, data):
    """Write bytes to a path or a binary file object."""
    if hasattr(target, "write"):
        target.write(data)
        return
    with open(target, "wb") as handle:
        handle.write(data)


# ---------------------------------------------------------------------------------------------------------------
# The zip container of PyTorchStreamWriter (miniz)

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_DATA_DESCRIPTOR = struct.Struct("<IIII")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")
_UTF8_NAMES = 0x0800  # miniz sets it unless MZ_ZIP_FLAG_ASCII_FILENAME
_HAS_DATA_DESCRIPTOR = 0x0008  # set for every non-empty record written from memory
_UINT64 = (1 << 64) - 1


def _hash_combine(seed, value):
    """c10::hash_combine on 64-bit size_t."""
    return (seed ^ ((value + 0x9E3779B9 + (seed << 6) + (seed >> 2)) & _UINT64)) & _UINT64


def _name_hash(name):
    """Stands in for std::hash<std::string> (implementation-defined) in the serialization id."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def _dos_now():
    """(time, date) in DOS format, from local time as miniz's mz_zip_time_t_to_dos_time."""
    now = time.localtime()
    return ((now.tm_hour << 11) | (now.tm_min << 5) | (now.tm_sec // 2),
            ((now.tm_year - 1980) << 9) | (now.tm_mon << 5) | now.tm_mday)


def _alignment_extra(cursor, name_size):
    """PyTorchStreamWriter's getPadding: an "FB" extra field that puts the record data on a 64-byte boundary."""
    start = cursor + _LOCAL_HEADER.size + name_size + 4
    padding = -start % STORAGE_ALIGNMENT
    return b"FB" + struct.pack("<H", padding) + b"Z" * padding


class _TorchZip:
    """Records of one archive, in writing order; `finish()` adds version, serialization id and directory."""

    def __init__(self, archive_name):
        self._prefix = archive_name + "/"
        self._out = bytearray()
        self._central = bytearray()
        self._names = []
        self._crc_combined = 0
        self._dos_time, self._dos_date = _dos_now()

    def write_record(self, name, data):
        """mz_zip_writer_add_mem_ex_v2 with level 0: local header (sizes 0), padding extra, data, descriptor."""
        if isinstance(data, str):
            data = data.encode()
        if len(data) >= 0xFFFFFFFF or len(self._out) >= 0xFFFFFFFF:
            raise ValueError("records or archives of 4 GiB and more need ZIP64 extra fields, not written here")
        full_name = (self._prefix + name).encode()
        extra = _alignment_extra(len(self._out), len(full_name))
        flags = _UTF8_NAMES | (_HAS_DATA_DESCRIPTOR if data else 0)
        crc = zlib.crc32(data)
        offset = len(self._out)
        self._out += _LOCAL_HEADER.pack(0x04034B50, 0, flags, 0, self._dos_time, self._dos_date, 0, 0, 0,
                                        len(full_name), len(extra))
        self._out += full_name + extra + data
        if data:
            self._out += _DATA_DESCRIPTOR.pack(0x08074B50, crc, len(data), len(data))
            self._crc_combined = _hash_combine(self._crc_combined, crc)
        self._central += _CENTRAL_HEADER.pack(0x02014B50, 0, 0, flags, 0, self._dos_time, self._dos_date, crc,
                                              len(data), len(data), len(full_name), 0, 0, 0, 0, 0, offset)
        self._central += full_name
        self._names.append(name)

    def finish(self):
        """writeEndOfFile: `version`, `.data/serialization_id`, then central directory and ZIP64 end records."""
        self.write_record("version", ZIP_FILE_FORMAT_VERSION)
        self.write_record(".data/serialization_id", self._serialization_id())
        count, directory_offset = len(self._names), len(self._out)
        self._out += self._central
        zip64_end_offset = len(self._out)
        self._out += _ZIP64_END.pack(0x06064B50, _ZIP64_END.size - 12, 0x031E, 0x002D, 0, 0, count, count,
                                     len(self._central), directory_offset)
        self._out += _ZIP64_LOCATOR.pack(0x07064B50, 0, zip64_end_offset, 1)
        self._out += _END.pack(0x06054B50, 0, 0, count, count, len(self._central), directory_offset, 0)
        return bytes(self._out)

    def _serialization_id(self):
        name_hash = 0
        for name in self._names:
            name_hash = _hash_combine(name_hash, _name_hash(name))
        return f"{name_hash:020d}{self._crc_combined:020d}"


def _archive_name_for(path):
    """PyTorchStreamWriter's basename(): the file name without folder and last extension ("archive" for
    buffers)."""
    if hasattr(path, "write"):
        return "archive"
    stem = os.path.basename(os.fspath(path))
    return stem.rsplit(".", 1)[0] if "." in stem else stem


def save_torch_zip(obj, path, archive_name="archive", *, share_storage=False, transpose_views=False):
    """Write `obj` (dicts, lists, scalars, strings and numpy arrays) as `torch.save(obj, path)` does (zip format).

    Records in torch's order: data.pkl, .format_version, .storage_alignment, byteorder, data/0.., version,
    .data/serialization_id, all under `archive_name/` (None: derived from `path` as torch.save(path) does).
    `share_storage` puts every float32 array in one storage at increasing offsets; `transpose_views` stores 2-D
    arrays transposed and rebuilds them with stride (1, rows). `path` may also be a binary file object.
    """
    converted = _prepare(obj, share_storage, transpose_views)
    keys = {}  # storage -> key, in the order the pickler meets them (torch's id_map)

    def persistent_id(candidate):
        if not isinstance(candidate, _Storage):
            return None
        key = keys.setdefault(candidate, str(len(keys)))
        return "storage", _global("torch", candidate.type_name), key, LOCATION, candidate.numel

    archive = _TorchZip(archive_name if archive_name is not None else _archive_name_for(path))
    archive.write_record("data.pkl", _pickle(converted, persistent_id))
    archive.write_record(".format_version", ZIP_FORMAT_VERSION)
    archive.write_record(".storage_alignment", str(STORAGE_ALIGNMENT))
    archive.write_record("byteorder", "little")
    for storage, key in keys.items():
        archive.write_record(f"data/{key}", storage.data)
    _write(path, archive.finish())


def _legacy_keys(seed=0x7041):
    """Storage keys of the legacy format: str(storage._cdata), i.e. heap addresses; their sorted (file) order
    differs from the order the pickle meets them."""
    rng, used = random.Random(seed), set()
    while True:
        address = 0x5500_0000_0000 + 16 * rng.randrange(1 << 36)
        if address not in used:
            used.add(address)
            yield address


def save_torch_legacy(obj, path, *, share_storage=False, transpose_views=False, torch03=False):
    """Write `obj` as `torch.save(obj, path, _use_new_zipfile_serialization=False)` does (pre-1.6 format).

    Pickles of MAGIC_NUMBER, PROTOCOL_VERSION and sys_info, the object pickle (persistent ids
    `('storage', torch.<Type>Storage, key, 'cpu', numel, None)`), the sorted key list, then per key the
    int64 little-endian element count and the raw bytes. Options as for `save_torch_zip`; `torch03=True` writes
    what torch 0.3 wrote on a GPU (the classic CIFAR checkpoints): tensors rebuilt by `_rebuild_tensor(storage,
    offset, size, stride)`, storages located on 'cuda:0', state dicts without `_metadata`.
    """
    converted = _prepare(obj, share_storage, transpose_views, torch03)
    location = "cuda:0" if torch03 else LOCATION
    addresses, new_address = {}, _legacy_keys()

    def persistent_id(candidate):
        if not isinstance(candidate, _Storage):
            return None
        address = addresses.setdefault(candidate, next(new_address))
        # torch builds the key string anew for every tensor, so it is never memoized
        return "storage", _global("torch", candidate.type_name), str(address), location, candidate.numel, None

    out = io.BytesIO()
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION, LEGACY_SYS_INFO):
        pickle.dump(header, out, protocol=PICKLE_PROTOCOL)
    out.write(_pickle(converted, persistent_id))
    by_key = {str(address): storage for storage, address in addresses.items()}
    keys = sorted(by_key)
    pickle.dump(keys, out, protocol=PICKLE_PROTOCOL)
    for key in keys:
        out.write(struct.pack("<q", by_key[key].numel))
        out.write(by_key[key].data)
    _write(path, out.getvalue())


# ---------------------------------------------------------------------------------------------------------------
# Hostile files


def _save_raw_pickle(obj, path, **_):
    """A bare protocol-2 pickle (no torch container); `obj` must not hold arrays."""
    _write(path, _pickle(_prepare(obj, False, False)))


_HOSTILE_WRITERS = {"zip": save_torch_zip, "legacy": save_torch_legacy, "raw": _save_raw_pickle}


def _write_hostile(path, fmt, value):
    """A checkpoint whose first entry is `value`; zip and legacy files also hold one genuine tensor."""
    writer = _HOSTILE_WRITERS.get(fmt)
    if writer is None:
        raise ValueError(f"format {fmt!r} is not one of {sorted(_HOSTILE_WRITERS)}")
    obj = collections.OrderedDict(payload=value)
    if fmt != "raw":
        obj["weight"] = np.arange(4, dtype=np.float32).reshape(2, 2)
    writer(obj, path)


def write_malicious_pickle(path, fmt="zip", module=None):
    """Write a file in format `fmt` ("zip", "legacy" or "raw") whose pickle, loaded by plain `pickle`, runs
    `os.system("touch <marker>")` (GLOBAL `posix system` -- `os.system.__module__` -- or `module`, then REDUCE).

    Returns the marker path (removed here first), so a test can assert that loading did NOT create it.
    """
    marker = os.fspath(path) + ".pwned"
    if os.path.exists(marker):
        os.remove(marker)
    call = _Reduce(_global(module or os.system.__module__, "system"), (f"touch {shlex.quote(marker)}",))
    _write_hostile(path, fmt, call)
    return marker


def write_pickle_with_global(path, module, name, args=None, fmt="zip"):
    """Write a file in format `fmt` whose pickle references GLOBAL `module name` (e.g. `builtins eval`,
    `__builtin__ getattr`): the bare reference, or called with `args` via REDUCE when `args` is given."""
    target = _global(module, name)
    _write_hostile(path, fmt, target if args is None else _Reduce(target, args))
    return path


# ---------------------------------------------------------------------------------------------------------------
# Self-check: an independent minimal reader (restricted unpickler) and round trips; run this file to execute it.


def _check_dtypes():
    """{storage class name: numpy dtype} for the check reader."""
    return {type_name: (np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name))
            for name, type_name in STORAGE_TYPES.items()}


class _CheckStorage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = dtype, numel, None


class _CheckTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialize(self):
        flat = self.storage.array
        assert flat is not None and flat.size == self.storage.numel
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=[s * flat.itemsize for s in self.stride])
        return np.array(view, copy=True)


def _check_rebuild(storage, offset, size, stride, requires_grad, hooks):
    assert requires_grad is False and isinstance(hooks, collections.OrderedDict) and not hooks
    return _CheckTensor(storage, offset, size, stride)


class _CheckUnpickler(pickle.Unpickler):
    """Refuses every global but OrderedDict, _rebuild_tensor_v2 and torch storage classes."""

    DTYPES = _check_dtypes()
    GLOBALS = {("collections", "OrderedDict"): collections.OrderedDict, REBUILD_TENSOR_V2: _check_rebuild}

    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages  # key -> _CheckStorage (shared by all tensors of that key)

    def find_class(self, module, name):
        if module == "torch" and name in self.DTYPES:
            return self.DTYPES[name]
        if (module, name) in self.GLOBALS:
            return self.GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        assert pid[0] == "storage" and pid[3] == LOCATION and len(pid) in (5, 6), pid
        dtype, key, numel = pid[1], pid[2], pid[4]
        assert len(pid) == 5 or pid[5] is None
        storage = self.storages.setdefault(key, _CheckStorage(dtype, numel))
        assert storage.dtype == dtype and storage.numel == numel
        return storage


def _materialize(obj):
    if isinstance(obj, _CheckTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        out = type(obj)((key, _materialize(value)) for key, value in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(item) for item in obj)
    return obj


def _check_read_zip(path):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/", 1)[0]
        storages = {}
        obj = _CheckUnpickler(io.BytesIO(archive.read(f"{root}/data.pkl")), storages).load()
        for key, storage in storages.items():
            storage.array = np.frombuffer(archive.read(f"{root}/data/{key}"), dtype=storage.dtype)
        return _materialize(obj), names


def _check_read_legacy(path):
    with open(path, "rb") as handle:
        assert pickle.load(handle) == MAGIC_NUMBER
        assert pickle.load(handle) == PROTOCOL_VERSION
        assert pickle.load(handle) == LEGACY_SYS_INFO
        storages = {}
        obj = _CheckUnpickler(handle, storages).load()
        keys = pickle.load(handle)
        assert keys == sorted(storages), (keys, sorted(storages))
        for key in keys:
            storage = storages[key]
            (numel,) = struct.unpack("<q", handle.read(8))
            assert numel == storage.numel
            storage.array = np.frombuffer(handle.read(numel * storage.dtype.itemsize), dtype=storage.dtype)
        assert handle.read() == b""
    return _materialize(obj)


def _assert_same(expected, actual, where="obj"):
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), where
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, (where, actual.dtype, actual.shape)
        assert actual.tobytes() == np.ascontiguousarray(expected).tobytes(), where
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), where
        for key in expected:
            _assert_same(expected[key], actual[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), where
        for index, (want, got) in enumerate(zip(expected, actual)):
            _assert_same(want, got, f"{where}[{index}]")
    else:
        assert actual == expected and type(actual) is type(expected), (where, expected, actual)


def _check_sample():
    rng = np.random.default_rng(0)
    state = collections.OrderedDict([
        ("conv1.weight", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        ("bn1.weight", rng.random(4).astype(np.float32)),
        ("bn1.bias", rng.random(4).astype(np.float32)),
        ("bn1.running_mean", rng.random(4).astype(np.float32)),
        ("bn1.running_var", rng.random(4).astype(np.float32)),
        ("bn1.num_batches_tracked", np.array(7, dtype=np.int64)),
        ("fc.weight", rng.standard_normal((5, 4)).astype(np.float32)),
        ("fc.bias", np.zeros(5, dtype=np.float32)),
        ("half", rng.standard_normal((2, 3)).astype(np.float16)),
        ("bf16", rng.standard_normal((3, 2)).astype(ml_dtypes.bfloat16)),
        ("double", rng.standard_normal(3)),
        ("ints", np.arange(6, dtype=np.int32).reshape(2, 3)),
        ("bytes", np.arange(3, dtype=np.uint8)),
        ("mask", np.array([True, False, True])),
        ("empty", np.zeros((0, 3), dtype=np.float32)),
        ("wide.weight", rng.standard_normal((1, 7)).astype(np.float32)),
    ])
    return {"state_dict": state, "epoch": 3, "arch": "tiny", "lr": 0.1, "history": [1.5, None, (True, "x")]}


def _check_zip_layout(path):
    """Records 64-byte aligned, stored, in torch's order; `unzip -t` agrees when present."""
    import shutil
    import subprocess
    import zipfile

    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        raw = handle.read()
        names = [info.filename.split("/", 1)[1] for info in archive.infolist()]
        assert names[:4] == ["data.pkl", ".format_version", ".storage_alignment", "byteorder"], names
        assert names[-2:] == ["version", ".data/serialization_id"], names
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            fields = _LOCAL_HEADER.unpack_from(raw, info.header_offset)
            start = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
            assert start % STORAGE_ALIGNMENT == 0, info.filename
            assert raw[start:start + info.file_size] == archive.read(info)
        assert archive.read(f"{archive.namelist()[0].split('/')[0]}/version") == b"3\n"
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-tq", str(path)], check=True, capture_output=True)


def _check_torch_bytes():
    """The start of a real torchvision data.pkl (conv1.weight of 64x3x7x7), opcode for opcode."""
    weight = np.zeros((64, 3, 7, 7), dtype=np.float32)
    buffer = io.BytesIO()
    save_torch_zip(collections.OrderedDict([("conv1.weight", weight)]), buffer)
    import zipfile

    pkl = zipfile.ZipFile(io.BytesIO(buffer.getvalue())).read("archive/data.pkl")
    expected = (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x0c\x00\x00\x00conv1.weightq\x02"
                b"ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05"
                b"X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07M\xc0$tq\x08QK\x00(K@K\x03K\x07K\x07tq\t"
                b"(K\x93K1K\x07K\x01tq\n\x89h\x00)Rq\x0btq\x0cRq\r")
    assert pkl.startswith(expected), pkl[:200]


def _self_check():
    import subprocess
    import tempfile

    sample = _check_sample()
    plain = collections.OrderedDict(a=[1, 2.5, "s", None, True, (1, 2, 3, 4)], b={"c": 1 << 40})
    plain._metadata = collections.OrderedDict([("", {"version": 1})])
    assert _pickle(plain) == pickle.dumps(plain, protocol=PICKLE_PROTOCOL), "pure-Python pickler != C pickler"
    _check_torch_bytes()
    with tempfile.TemporaryDirectory() as folder:
        for options in ({}, {"share_storage": True}, {"transpose_views": True},
                        {"share_storage": True, "transpose_views": True}):
            zip_path, legacy_path = os.path.join(folder, "m.pth"), os.path.join(folder, "m.legacy")
            save_torch_zip(sample, zip_path, **options)
            save_torch_legacy(sample, legacy_path, **options)
            loaded, names = _check_read_zip(zip_path)
            storages = [name for name in names if "/data/" in name]
            expected_storages = 8 if options.get("share_storage") else 16
            assert len(storages) == expected_storages, (options, storages)
            _check_zip_layout(zip_path)
            for got in (loaded, _check_read_legacy(legacy_path)):
                _assert_same(sample, got)
                assert isinstance(got["state_dict"], collections.OrderedDict) and type(got) is dict
                assert got["state_dict"]._metadata["bn1"] == {"version": 2}
                assert got["state_dict"]._metadata["conv1"] == {"version": 1}
        save_torch_zip(sample, os.path.join(folder, "resnet18-abc.pth"), archive_name=None)
        assert _check_read_zip(os.path.join(folder, "resnet18-abc.pth"))[1][0] == "resnet18-abc/data.pkl"
        for fmt in _HOSTILE_WRITERS:
            path = os.path.join(folder, f"evil.{fmt}")
            marker = write_malicious_pickle(path, fmt)
            read = {"zip": _check_read_zip, "legacy": _check_read_legacy,
                    "raw": lambda p: _CheckUnpickler(open(p, "rb"), {}).load()}[fmt]
            try:
                read(path)
                raise AssertionError("hostile global accepted")
            except pickle.UnpicklingError as error:
                assert "posix.system" in str(error) or "nt.system" in str(error), error
            assert not os.path.exists(marker)
            write_pickle_with_global(path, "builtins", "eval", args=("1+1",), fmt=fmt)
            write_pickle_with_global(path, "__builtin__", "getattr", fmt=fmt)
        # the payload is live: plain pickle (in a child process) does run it
        marker = write_malicious_pickle(os.path.join(folder, "evil.raw"), "raw")
        subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({folder + '/evil.raw'!r}, 'rb'))"],
                       check=True)
        assert os.path.exists(marker)
    print("torch_writers self-check passed")


if __name__ == "__main__":
    _self_check()
