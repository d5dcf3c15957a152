"""Run one exported artifact over a batch, standalone: `python -P worker.py REQUEST.json`.

Started by `export.cpus.run` on the host or under QEMU, so it imports only the standard library, numpy,
`export.core.tensors` (numpy only) and the one runtime it needs (never TensorFlow: far too slow under emulation).
REQUEST.json: {"artifact", "format": "tflite"|"onnx", "inputs": x.npy, "output": y.npy, "facts": facts.json,
"threads"}. Inputs are float32; int8/uint8 input tensors get them quantized with the tensor's scale and zero
point (an unquantized uint8 input: raw pixels, rounded and clipped), int8/uint8 outputs are dequantized, as
`export.runtimes` does. Artifacts with a static batch of 1 run one sample at a time. One-output models only.
The facts file: runtime, numpy, python, machine, "features" (`cpu_features`: what the emulated CPU reports),
"cpuinfo_flags" (/proc/cpuinfo as the process reads it), load_s and predict_s.
"""
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the package root
from export.core.tensors import dequantize, feed_for  # noqa: E402 - numpy only (export.runtimes shares it)

CHUNK = 64  # batch size for artifacts with a dynamic batch dimension (as export.runtimes)

# CPU features that pick int8 kernels: x86 from CPUID, arm from the HWCAP words ((auxv entry, bit)).
# /proc/cpuinfo is reported too: QEMU 7.2 user mode shows the host's file there (arm64 kinds get their own view).
X86_FEATURES = {"avx2": "AVX2", "fma": "FMA3", "avx512f": "AVX512F", "avx512_vnni": "AVX512VNNI"}
ARM_HWCAPS = {"asimddp": (16, 20), "sve": (16, 22), "i8mm": (26, 13)}  # AT_HWCAP=16, AT_HWCAP2=26
CPUINFO_FLAGS = ("avx2", "avx512f", "fma", "asimddp", "i8mm")


def as_float(out, quantization):
    return dequantize(out, quantization) if quantization else out.astype("float32")


class TFLite:
    """A .tflite file in the ai_edge_litert interpreter (XNNPACK, as on devices)."""

    def __init__(self, path, threads):
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        self.version = "ai-edge-litert " + _version("ai-edge-litert", ai_edge_litert)
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        (self.input,), outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        _one_output([o["name"] for o in outputs])
        self.output = outputs[0]
        self.batch = 1 if int(self.input["shape_signature"][0]) == 1 else None
        self.shape = None

    @staticmethod
    def _quantization(detail):
        scale, zero_point = detail["quantization"]
        integer = np.issubdtype(detail["dtype"], np.integer)
        return {"scale": scale, "zero_point": zero_point} if integer and scale else None

    def run(self, x):
        if self.batch is None and self.shape != x.shape:
            self.interpreter.resize_tensor_input(self.input["index"], x.shape)
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        tensor = {"dtype": np.dtype(self.input["dtype"]).name, "quantization": self._quantization(self.input)}
        feed = feed_for(x, tensor)
        self.interpreter.set_tensor(self.input["index"], feed)
        self.interpreter.invoke()
        return as_float(self.interpreter.get_tensor(self.output["index"]), self._quantization(self.output))


class Onnx:
    """An .onnx file in onnxruntime (CPU), default session options (turning the memory arena off changed
    nothing under emulation: 10 convs, 64 samples, 101 s either way on x86-avx2)."""

    def __init__(self, path, threads):
        import onnxruntime as ort

        self.version = "onnxruntime " + ort.__version__
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        (graph_input,), outputs = self.session.get_inputs(), self.session.get_outputs()
        _one_output([o.name for o in outputs])
        self.input_name, self.output_name = graph_input.name, outputs[0].name
        self.dtype = graph_input.type.replace("tensor(", "").replace(")", "")
        self.batch = 1 if graph_input.shape[0] == 1 else None

    def run(self, x):
        feed = feed_for(x, {"dtype": self.dtype, "quantization": None})
        (out,) = self.session.run([self.output_name], {self.input_name: feed})
        return out.astype("float32")


RUNTIMES = {"tflite": TFLite, "onnx": Onnx}


def _one_output(names):
    if len(names) != 1:
        raise SystemExit(f"the worker runs one-output models; this one has {len(names)}: {', '.join(names)}")


def _version(dist, module):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return getattr(module, "__version__", "unknown")


def predict(runtime, x):
    """Float32 outputs of `runtime` over the whole batch `x`, one sample at a time for batch-1 artifacts."""
    step = runtime.batch or CHUNK
    return np.concatenate([runtime.run(x[i:i + step]) for i in range(0, len(x), step)])


def arm_features():
    """HWCAP bits, which QEMU sets from the emulated -cpu model."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    return {name: bool(libc.getauxval(entry) >> bit & 1) for name, (entry, bit) in ARM_HWCAPS.items()}


def x86_features():
    """CPUID as numpy read it at import (QEMU answers CPUID for the emulated -cpu model)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return {name: bool(__cpu_features__.get(key)) for name, key in X86_FEATURES.items()}


FEATURE_READERS = {"aarch64": arm_features, "x86_64": x86_features}


def cpu_features():
    """{feature: bool} as the CPU (or QEMU's model of it) reports them to this process ({} elsewhere)."""
    reader = FEATURE_READERS.get(platform.machine())
    return reader() if reader else {}


def cpuinfo_flags():
    """The int8-relevant flags in /proc/cpuinfo as this process reads it ({} when unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            words = set(handle.read().split())
    except OSError:
        return {}
    return {flag: flag in words for flag in CPUINFO_FLAGS}


def main(request_path):
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    start = time.perf_counter()
    runtime = RUNTIMES[request["format"]](os.fspath(request["artifact"]), int(request.get("threads") or 1))
    loaded = time.perf_counter()
    outputs = predict(runtime, np.load(request["inputs"]).astype("float32"))
    done = time.perf_counter()
    np.save(request["output"], outputs.astype("float32"))
    facts = {"runtime": runtime.version, "numpy": np.__version__, "python": platform.python_version(),
             "machine": platform.machine(), "features": cpu_features(), "cpuinfo_flags": cpuinfo_flags(),
             "load_s": round(loaded - start, 3), "predict_s": round(done - loaded, 3)}
    with open(request["facts"], "w", encoding="utf-8") as handle:
        json.dump(facts, handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
