"""Distributed training on CPU: MirroredStrategy over 2 logical CPU devices, and 2 local multi-worker processes.

Both run in subprocesses: logical devices and the multi-worker collective runtime must be configured before
TensorFlow initializes.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from reszoo.train import fit
    result = fit("resnet20", "digits", epochs=2, batch_size=32, strategy=sys.argv[1], steps_per_epoch=3,
                 model_kwargs={"width": 4}, verbose=False)
    spread = 0.0
    for weight in result.model.weights:
        copies = [v.numpy() for v in weight.value._values]
        assert len(copies) == 2, weight.path
        spread = max(spread, max(float(np.abs(c - copies[0]).max()) for c in copies))
    print(json.dumps({"replicas": result.replicas, "steps": result.steps, "spread": spread,
                      "loss": result.history[-1]["loss"], "strategy": result.strategy}))
""")

WORKER_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from reszoo.train import fit
    output, index = sys.argv[1], sys.argv[2]
    result = fit("resnet20", "digits", epochs=1, batch_size=32, steps_per_epoch=3, model_kwargs={"width": 4},
                 output_dir=output, verbose=False)
    np.savez(os.path.join(output, f"weights{index}.npz"), *result.model.get_weights())
    print("finished", result.strategy, result.replicas, result.steps, flush=True)
""")


def run_python(script, *args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_mirrored_over_two_logical_cpus_keeps_replicas_identical():
    done = run_python(MIRRORED_SCRIPT, "mirrored")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["strategy"] == "mirrored" and report["replicas"] == 2
    assert report["steps"] == 2 * 3
    assert np.isfinite(report["loss"])
    assert report["spread"] == 0.0  # every mirrored variable (BN statistics included) equal on both replicas


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_local_workers_finish_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(tmp_path), str(index)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CONFIG": json.dumps(config)}))
    outputs = [p.communicate(timeout=600) for p in processes]
    for stdout, stderr in outputs:
        assert "finished multi-worker 2 3" in stdout, stderr[-3000:]
    first, second = (np.load(tmp_path / f"weights{i}.npz") for i in range(2))
    assert len(first.files) == len(second.files) > 50
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
    # the chief alone writes the run folder; the other worker's scratch folder is removed
    assert (tmp_path / "final.keras").exists() and not (tmp_path / ".worker-1").exists()
