"""Preemption: SIGTERM to any worker makes every worker checkpoint at the same step and exit `PREEMPTED_EXIT`.

Cluster schedulers (Kubernetes, Slurm, spot VMs) send SIGTERM before they kill a job. While `fit` trains, a
SIGTERM only raises a flag (`PreemptionWatch`); every step all-reduces (sums) the flags of all replicas
inside the training step, so all workers see it after the same step, save a checkpoint there, write
`preempted.json` in the run folder (chief) and stop with `Preempted`; `reszoo train` then exits 42 (TensorFlow's
PreemptionCheckpointHandler code). Relaunching the same command finds `preempted.json` and resumes from that
checkpoint as if `--resume` were given; the data position follows from the step, so the finished run equals
an uninterrupted one.

Example:
    >>> watch = PreemptionWatch()
    >>> with watch.installed():  # `run_epochs` runs here (`loop.stop_flag` is watch.flag)
    ...     signal.raise_signal(signal.SIGTERM)  # what the scheduler sends
    >>> watch.requested, int(watch.flag())
    (True, 1)
"""
import contextlib
import json
import os
import signal

PREEMPTED_EXIT = 42  # tf.distribute.experimental.PreemptionCheckpointHandler's default exit code
MARKER_FILE = "preempted.json"


class Preempted(Exception):
    """Training stopped after a SIGTERM; a checkpoint at `step` was saved."""

    def __init__(self, step, output_dir):
        super().__init__(f"preempted (SIGTERM): checkpoint saved at step {step} in {output_dir}; run the same "
                         f"command again to continue")
        self.step, self.output_dir = step, output_dir


class PreemptionWatch:
    """A SIGTERM handler that only records the signal, and the flag each training step reduces."""

    def __init__(self):
        self.requested = False

    def _record(self, signum, frame):
        self.requested = True

    def flag(self):
        """1 after a SIGTERM, else 0 (int32 tensor: one trace of the step for both)."""
        import tensorflow as tf

        return tf.constant(int(self.requested), tf.int32)

    @contextlib.contextmanager
    def installed(self):
        """SIGTERM raises the flag inside the block; the previous handler is back after it."""
        previous = signal.signal(signal.SIGTERM, self._record)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)


def write_marker(output_dir, step):
    """Record in the run folder that the run was preempted at `step`."""
    from export.core.files import write_json

    write_json(os.path.join(output_dir, MARKER_FILE), {"step": int(step)})


def preempted_step(output_dir):
    """The step of `preempted.json` in `output_dir`, or None when the last run was not preempted."""
    path = os.path.join(output_dir or "", MARKER_FILE)
    if not output_dir or not os.path.exists(path):
        return None
    with open(path) as handle:
        return int(json.load(handle)["step"])


def clear_marker(output_dir):
    """Forget a preemption once its run has resumed."""
    from export.core.files import remove_created

    remove_created(os.path.join(output_dir, MARKER_FILE))
