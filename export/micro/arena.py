"""The tensor arena a model needs in TensorFlow Lite Micro (TFLM), estimated from its flatbuffer.

A TFLM arena has two parts (tflite-micro `micro_allocator.cc`, commit 90b983c):

- head (`planned_bytes`): the activations, placed by TFLM's `GreedyMemoryPlanner`. Replicated here exactly:
  every tensor that has no constant data (model inputs, op outputs) gets a buffer of its byte size aligned up
  to 16, alive from the scope it is created in to the scope of its last reader (`micro_allocation_info.cc`:
  inputs are created at scope 0, op k runs at scope k + 1, model outputs stay alive to the end), plus the
  scratch buffers the reference kernels request (`SCRATCH_REQUESTS`). Buffers are placed largest first (ties:
  the later one first, as TFLM's reverse fill and stable sort order them), each at the lowest offset where
  no buffer alive at the same time overlaps it; the head is the highest end.
- tail (`persistent_bytes`): what TFLM keeps for the model's lifetime, an allowance (`PERSISTENT`) with the
  struct sizes of a 64-bit host, where pointers are twice as large as on a 32-bit microcontroller, so it
  bounds the microcontroller's need from above: a TfLiteEvalTensor per tensor, a NodeAndRegistration plus
  kernel op data per op, a per-channel multiplier and shift (int32 each) per output channel of every
  per-channel quantized op, a TfLiteTensor with its quantization per model input and output, and the
  allocator's own objects.

Measured with the TFLM Python interpreter (`tflite-micro` 0.dev20261023, RecordingMicroAllocator, x86-64) on
9 int8 models (resnet20 at widths 4/8/16, plain20, resnet18 at 64 px, a depthwise-separable net, an MLP, two
single-layer nets): the head equals TFLM's to the byte on every one, and `arena_bytes` runs each of them,
1 % to 33 % above TFLM's smallest working arena (saved_models/resnet20_digits.keras: 47,856 vs 45,488 bytes).
Not included: scratch buffers of optimized kernels (CMSIS-NN, ESP-NN and Xtensa convolutions request
im2col buffers), so check `arena_used_bytes()` on the device.

Example:
    >>> graph = {"ops": [{"op_name": "RELU", "inputs": [0], "outputs": [1]}], "inputs": {0}, "outputs": {1},
    ...          "tensors": {0: {"shape": [1, 10], "dtype": "int8"}, 1: {"shape": [1, 10], "dtype": "int8"}}}
    >>> estimate = estimate_arena(graph)
    >>> estimate["planned_bytes"], estimate["largest_live_bytes"]
    (32, 32)
"""
import dataclasses

import numpy as np

ALIGNMENT = 16  # MicroArenaBufferAlignment(): every planned buffer's size is aligned up to this
# Persistent (tail) allowance in bytes, with 64-bit host struct sizes (RecordingMicroAllocator's categories):
PERSISTENT = {
    "fixed": 1024,  # the allocator, its planner, subgraph tables, scratch handles (measured 516 to 1,236)
    "per_tensor": 24,  # TfLiteEvalTensor (every tensor, constants included)
    "per_op": 64 + 128,  # NodeAndRegistration (64) + kernel op data (measured 57 to 124 per op, model averages)
    "per_channel": 8,  # int32 multiplier + int32 shift per output channel of per-channel quantized ops
    "per_io_tensor": 64 + 32,  # persistent TfLiteTensor (64) + its TfLiteAffineQuantization and arrays
}
# While planning, TFLM holds temporary tables where the head will be: an AllocationInfo per tensor (32 bytes)
# and the planner's per-buffer records (40 bytes); the head must fit them (it matters for tiny activations).
PLANNING = {"fixed": 256, "per_tensor": 32, "per_buffer": 40}
PER_CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def _reduce_scratch(op, tensors):
    """MEAN/SUM on int8/int16 (`reduce_common.cc`): an int32 accumulator per output element, an input index
    iterator and the resolved axes."""
    input_, axis = (tensors[i] for i in op["inputs"][:2])
    accumulator = [4 * _elements(tensors[op["outputs"][0]])] if np.dtype(input_["dtype"]).itemsize <= 2 else []
    return accumulator + [4 * len(input_["shape"]), 4 * _elements(axis)]


SCRATCH_REQUESTS = {"MEAN": _reduce_scratch, "SUM": _reduce_scratch}  # op -> bytes of each scratch request


@dataclasses.dataclass(frozen=True)
class Buffer:
    """One planned buffer: aligned size and its lifetime in allocation scopes (inclusive)."""

    size: int
    first: int
    last: int

    def overlaps(self, other):
        """True when both are alive in some common scope."""
        return self.first <= other.last and other.first <= self.last


def _elements(tensor):
    return int(np.prod(tensor["shape"], dtype=np.int64))


def _bytes(tensor):
    return _elements(tensor) * np.dtype(tensor["dtype"]).itemsize


def aligned(size):
    """`size` rounded up to `ALIGNMENT`. Example: aligned(1) == 16."""
    return -(-int(size) // ALIGNMENT) * ALIGNMENT


def lifetimes(graph):
    """{tensor index: [first, last]} of every tensor TFLM plans: model inputs (scope 0) and op outputs."""
    spans = {index: [0, 0] for index in graph["inputs"]}
    for scope, op in enumerate(graph["ops"], start=1):
        for index in op["outputs"]:
            spans.setdefault(index, [scope, scope])
        for index in [*op["inputs"], *op["outputs"]]:
            if index in spans:
                spans[index][1] = scope
    for index in graph["outputs"]:
        spans.setdefault(index, [len(graph["ops"])] * 2)[1] = len(graph["ops"])
    return spans


def planned_buffers(graph):
    """The head's buffers in TFLM's order: tensors by index, then the kernels' scratch requests."""
    tensors = graph["tensors"]
    buffers = [Buffer(aligned(_bytes(tensors[i])), first, last)
               for i, (first, last) in sorted(lifetimes(graph).items()) if _bytes(tensors[i])]
    for scope, op in enumerate(graph["ops"], start=1):
        requests = SCRATCH_REQUESTS.get(op["op_name"], lambda op, tensors: [])(op, tensors)
        buffers += [Buffer(aligned(size), scope, scope) for size in requests if size]
    return buffers


def greedy_offsets(buffers):
    """[(offset, Buffer)] as TFLM's GreedyMemoryPlanner places them (see the module docstring)."""
    order = sorted(reversed(range(len(buffers))), key=lambda i: -buffers[i].size)
    placed = []
    for i in order:
        wanted, offset = buffers[i], 0
        for start, other in sorted(placed, key=lambda entry: entry[0]):
            if not other.overlaps(wanted):
                continue
            if start - offset >= wanted.size:
                break
            offset = max(offset, start + other.size)
        placed.append((offset, wanted))
    return placed


def largest_live_bytes(buffers):
    """The most bytes alive in one scope: the lower bound of any planner's head."""
    scopes = range(max((b.last for b in buffers), default=-1) + 1)
    return max((sum(b.size for b in buffers if b.first <= s <= b.last) for s in scopes), default=0)


def persistent_bytes(graph):
    """The tail allowance (`PERSISTENT`) for `graph`."""
    tensors, ops = graph["tensors"], graph["ops"]
    channels = sum(len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"]) for op in ops
                   if op["op_name"] in PER_CHANNEL_OPS and _per_channel(tensors[op["inputs"][1]]))
    return (PERSISTENT["fixed"] + PERSISTENT["per_tensor"] * len(tensors) + PERSISTENT["per_op"] * len(ops)
            + PERSISTENT["per_channel"] * channels
            + PERSISTENT["per_io_tensor"] * len(graph["inputs"] | graph["outputs"]))


def _per_channel(weights):
    return len((weights.get("quantization_parameters") or {}).get("scales", ())) > 1


def planning_bytes(graph, buffers):
    """The temporary tables TFLM builds while planning (`PLANNING`): the head must hold them too."""
    return PLANNING["fixed"] + PLANNING["per_tensor"] * len(graph["tensors"]) + PLANNING["per_buffer"] * len(buffers)


def estimate_arena(graph):
    """{"planned_bytes", "largest_live_bytes", "planning_bytes", "persistent_bytes", "arena_bytes"} for a graph
    read by `export.targets.read_graph`; `arena_bytes` = max(planned, planning) + persistent, aligned: the
    arena size to give the TFLM interpreter."""
    buffers = planned_buffers(graph)
    planned = max((offset + b.size for offset, b in greedy_offsets(buffers)), default=0)
    planning, persistent = planning_bytes(graph, buffers), persistent_bytes(graph)
    return {"planned_bytes": planned, "largest_live_bytes": largest_live_bytes(buffers), "planning_bytes": planning,
            "persistent_bytes": persistent, "arena_bytes": aligned(max(planned, planning) + persistent)}
