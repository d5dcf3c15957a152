"""Checkpoints for resumable training: `tf.train.CheckpointManager` over model, optimizer and the step counter.

The step counter fixes the data position too (the input pipeline is a pure function of seed, epoch and step),
so a resumed run continues with exactly the batches it would have seen. A `run.json` next to the checkpoints
records what must not change on resume (global batch, steps per epoch, seed); a mismatch is a UserError.

Example:
    >>> ckpt = Checkpointer("runs/r20/checkpoints", model, optimizer, keep=3)  # doctest: +SKIP
    >>> start_step = ckpt.restore(resume=True, fingerprint={"global_batch": 64})  # doctest: +SKIP
"""
import json
import os

import tensorflow as tf

from export.errors import UserError
from export.manifest import write_json

FINGERPRINT_FILE = "run.json"
CHECKPOINT_PREFIX = "ckpt"


class Checkpointer:
    """Save/restore (model, optimizer, step) in `directory`; `read_from` is where restore looks (chief's dir)."""

    def __init__(self, directory, model, optimizer, keep=3, read_from=None):
        self.directory = directory
        self.read_from = read_from or directory
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep,
                                                  checkpoint_name=CHECKPOINT_PREFIX)
        self.saved_step = -1

    def restore(self, resume, fingerprint):
        """Return the step to start from (0 for a fresh run); UserError on a missing/corrupt/mismatched dir."""
        latest = tf.train.latest_checkpoint(self.read_from) if os.path.isdir(self.read_from) else None
        if not resume:
            if latest:
                raise UserError(f"{self.read_from!r} already holds checkpoints; pass --resume to continue that run "
                                "or choose another --output")
            return 0
        if not latest:
            raise UserError(f"cannot resume: no checkpoint in {self.read_from!r} (missing or empty checkpoint folder)")
        check_fingerprint(self.read_from, fingerprint)
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as error:
            first_line = (getattr(error, "message", None) or str(error)).splitlines()[0]
            raise UserError(f"cannot resume from corrupt checkpoint {latest!r}: {first_line}") from None
        self.saved_step = int(self.step.numpy())
        return self.saved_step

    def save(self, step, fingerprint):
        """Write a checkpoint for `step` (once per step) and the run fingerprint."""
        if step == self.saved_step:
            return
        write_json(os.path.join(self.directory, FINGERPRINT_FILE), fingerprint)  # before: a kill in between
        self.step.assign(step)                                                           # leaves no orphan checkpoint
        self.manager.save(checkpoint_number=step)
        self.saved_step = step


def check_fingerprint(directory, fingerprint):
    """UserError when the checkpointed run used other batch/step/seed settings than this one."""
    path = os.path.join(directory, FINGERPRINT_FILE)
    try:
        with open(path) as handle:
            saved = json.load(handle)
    except (OSError, json.JSONDecodeError):
        raise UserError(f"cannot resume: {path!r} is missing or corrupt") from None
    changed = [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in fingerprint.items() if saved.get(k) != v]
    if changed:
        raise UserError(f"cannot resume with changed settings: {'; '.join(changed)}")
