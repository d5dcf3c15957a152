"""Run an exported TFLite/ONNX artifact on a CPU kind: natively (`host`) or under QEMU user mode.

Each call starts `worker.py` in a fresh process on that CPU (host: this venv's python; x86 kinds: the same
python under `qemu-x86_64-static -cpu MODEL`; arm64 kinds: Debian's python3.11 under `qemu-aarch64-static
-cpu MODEL -L VIEW` with the aarch64 wheels on PYTHONPATH), passing the batch through .npy files in a
temporary folder. Its output (QEMU warnings, runtime INFO lines) stays in a log whose tail a failure shows.
Emulation costs seconds of start-up (tiny int8 model: 0.4 s host, 3-4 s x86 kinds, 5-7 s arm64 kinds) and
compute runs some 300-500x slower than natively (10 fp32 3x3 convs, 32 channels, 64 samples of 32x32: host 0.19 s,
x86-avx2 101 s, arm64-v8 65 s): keep the batches small.

Example:
    >>> from export.cpus.kinds import expand
    >>> y = run_on(expand(["arm64-v8"])[0], "model_int8.tflite", "tflite", x)  # doctest: +SKIP
"""
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

from export.core.errors import UserError
from export.cpus import kinds as cpu_kinds

WORKER = pathlib.Path(__file__).with_name("worker.py")
FORMATS = ("tflite", "onnx")
TIMEOUT = 900  # seconds for one worker run
LOG_TAIL = 20  # lines of the worker's output shown in an error
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")  # the host's must not reach another python


def emulation(kind):
    """The emulator prefix of `kind`'s command ([] natively)."""
    return [kind.emulator, "-cpu", kind.cpu_model] if kind.emulator else []


def venv_python(kind):
    return [*emulation(kind), sys.executable], {}


def arm64_python(kind):
    view = cpu_kinds.kind_root(kind)
    return ([*emulation(kind), "-L", str(view), str(view / cpu_kinds.ROOT_PYTHON)],
            {"PYTHONPATH": str(cpu_kinds.arm64_site()), "PYTHONNOUSERSITE": "1"})


PYTHONS = {"venv": venv_python, "arm64": arm64_python}  # CpuKind.python -> (kind) -> (argv prefix, env)


def worker_command(kind, request_path):
    """(argv, environment) that run the worker on `kind` for the request file at `request_path`."""
    prefix, extra = PYTHONS[kind.python](kind)
    env = {key: value for key, value in os.environ.items() if key not in DROPPED_ENV}
    return [*prefix, "-P", str(WORKER), str(request_path)], {**env, **extra}  # -P: export/cpus not on sys.path


def run_worker(kind, artifact_path, fmt, x, threads=1, timeout=TIMEOUT):
    """(float32 outputs, facts) of the artifact over the float32 batch `x` on `kind`; facts: the worker's
    runtime version, the CPU features the process saw, load/predict seconds, plus `wall_s`."""
    if fmt not in FORMATS:
        raise UserError(f"cannot run format {fmt!r} on an emulated CPU; allowed: {', '.join(FORMATS)}")
    problem = cpu_kinds.missing(kind)
    if problem:
        raise UserError(problem)
    with tempfile.TemporaryDirectory(prefix="reszoo-cpu-") as folder:
        files = {name: os.path.join(folder, name) for name in ("x.npy", "y.npy", "facts.json", "request.json")}
        np.save(files["x.npy"], np.asarray(x, dtype="float32"))
        request = {"artifact": os.path.abspath(artifact_path), "format": fmt, "inputs": files["x.npy"],
                   "output": files["y.npy"], "facts": files["facts.json"], "threads": int(threads)}
        pathlib.Path(files["request.json"]).write_text(json.dumps(request))
        argv, env = worker_command(kind, files["request.json"])
        log = pathlib.Path(folder) / "worker.log"
        wall = _run(argv, env, log, timeout, kind)
        facts = json.loads(pathlib.Path(files["facts.json"]).read_text())
        return np.load(files["y.npy"]), {**facts, "wall_s": round(wall, 3)}


def _run(argv, env, log, timeout, kind):
    """Seconds `argv` took; RuntimeError with the command, its ending and the log's tail when it fails."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        try:
            code = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, timeout=timeout).returncode
            ending = None if code == 0 else f"exit code {code}"
        except subprocess.TimeoutExpired:
            ending = f"timed out after {timeout} s"
    if ending:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL:])
        raise RuntimeError(f"{kind.name}: `{shlex.join(argv)}` failed ({ending}); last lines:\n{tail}")
    return time.perf_counter() - start


def run_on(kind, artifact_path, fmt, x, threads=1, timeout=TIMEOUT):
    """Float32 outputs of the artifact (`fmt`: tflite or onnx) over the float32 batch `x`, run on the CPU kind
    `kind` (a `kinds.CpuKind` row); UserError when the kind is not set up here (`kinds.missing`)."""
    return run_worker(kind, artifact_path, fmt, x, threads, timeout)[0]
