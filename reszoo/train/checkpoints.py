"""Checkpoints for resumable training: `tf.train.CheckpointManager` over model, optimizer and the step counter.

The step counter fixes the data position too (the input pipeline is a pure function of seed, epoch and step),
so a resumed run continues with exactly the batches it would have seen. A `run.json` next to the checkpoints
records every setting that changes the result (see `reszoo.train.fit.run_settings`); a resume with other
settings is a UserError listing each `name old -> new`, unless forced, in which case the change is recorded in
run.json's `overrides` (step + changed settings). Restore tries the checkpoints newest first and skips
unreadable ones (a truncated file), saying which one it used.

Example:
    >>> import keras, tempfile
    >>> model, optimizer = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), keras.optimizers.SGD()
    >>> folder = os.path.join(tempfile.mkdtemp(), "checkpoints")
    >>> Checkpointer(folder, model, optimizer, keep=3).restore(resume=False, settings={"batch_size": 64})
    0
    >>> Checkpointer(folder, model, optimizer).save(100, settings={"batch_size": 64})
    >>> ckpt = Checkpointer(folder, model, optimizer, keep=3)
    >>> ckpt.restore(resume=True, settings={"batch_size": 64})
    100
    >>> ckpt.restore(resume=True, settings={"batch_size": 32})
    Traceback (most recent call last):
    ...
    export.core.errors.UserError: cannot resume with changed settings (...): batch_size 64 -> 32
"""
import glob
import json
import os
import re
import sys

import tensorflow as tf

from export.core.errors import UserError
from export.core.files import write_json

FINGERPRINT_FILE = "run.json"
CHECKPOINT_PREFIX = "ckpt"
RUN_SCHEMA = 2
# run.json before schema 2 was a flat dict of these keys (old name -> today's setting name).
LEGACY_KEYS = {"global_batch": "batch_size", "steps_per_epoch": "steps_per_epoch", "seed": "seed", "model": "model"}
RESTORE_ERRORS = (tf.errors.OpError, ValueError, AssertionError, IndexError, KeyError)  # IndexError: truncated file


class Checkpointer:
    """Save/restore (model, optimizer, step, `extra` trackables such as EMA weights) in `directory`; `read_from`
    is where restore looks (chief's dir)."""

    def __init__(self, directory, model, optimizer, keep=3, read_from=None, warn=None, **extra):
        self.directory = directory
        self.read_from = read_from or directory
        self.warn = warn or (lambda text: print(text, file=sys.stderr, flush=True))
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step, **extra)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep,
                                                  checkpoint_name=CHECKPOINT_PREFIX)
        self.saved_step = -1
        self.settings, self.overrides = {}, []

    def restore(self, resume, settings, force=False):
        """Return the step to start from (0 for a fresh run); UserError on a missing/corrupt/mismatched dir.

        The settings check runs before any checkpoint is read, so a changed width or optimizer is reported as
        a changed setting, not as a corrupt checkpoint.
        """
        self.settings = settings
        candidates = checkpoint_paths(self.read_from)
        if not resume:
            if candidates:
                raise UserError(f"{self.read_from!r} already holds checkpoints; pass --resume to continue that run "
                                "or choose another --output")
            return 0
        if not candidates:
            raise UserError(f"cannot resume: no checkpoint in {self.read_from!r} (missing or empty checkpoint folder)")
        saved, self.overrides = read_run(self.read_from)
        changed = changed_settings(saved, settings)
        if changed and not force:
            raise UserError(f"cannot resume with changed settings (pass --force-settings to override): "
                            f"{describe(changed)}")
        path = self.restore_newest_readable(candidates, changed)
        self.saved_step = int(self.step.numpy())
        if changed:
            self.overrides.append({"step": self.saved_step, "changed": {k: [old, new] for k, old, new in changed}})
            self.warn(f"warning: resuming {path!r} with forced settings: {describe(changed)}")
        return self.saved_step

    def restore_newest_readable(self, candidates, changed=()):
        """Restore the newest checkpoint that reads back; warn about skipped ones; UserError when none does."""
        skipped = []
        for path in candidates:
            reason = try_restore(self.checkpoint, path)
            if reason is None:
                for name, why in skipped:
                    self.warn(f"warning: skipped checkpoint {name!r} ({why}); resuming from {path!r}")
                return path
            skipped.append((path, reason))
        forced = f" (forced settings: {', '.join(k for k, _, _ in changed)})" if changed else ""
        older = f"; the {len(skipped) - 1} older one(s) are unreadable too" if len(skipped) > 1 else ""
        raise UserError(f"cannot resume from corrupt checkpoint {skipped[0][0]!r}{forced}: {skipped[0][1]}{older}")

    def save(self, step, settings=None):
        """Write a checkpoint for `step` (once per step) and run.json (settings + overrides)."""
        if step == self.saved_step:
            return
        self.settings = settings if settings is not None else self.settings
        run = {"schema": RUN_SCHEMA, "settings": self.settings, "overrides": self.overrides}
        write_json(os.path.join(self.directory, FINGERPRINT_FILE), run)  # before: a kill in between
        self.step.assign(step)                                           # leaves no orphan checkpoint
        try:
            self.manager.save(checkpoint_number=step)
        except tf.errors.OpError as error:  # disk full, folder gone: one line via the CLI's OSError boundary
            raise OSError(5, first_line(error), self.directory) from None
        self.saved_step = step


def checkpoint_paths(directory):
    """Checkpoint prefixes in `directory`, newest (highest step) first.

    Example:
        >>> checkpoint_paths("/no/such/folder")
        []
    """
    pattern = re.compile(re.escape(CHECKPOINT_PREFIX) + r"-(\d+)\.index$")
    found = [(int(m.group(1)), path[:-len(".index")]) for path in glob.glob(os.path.join(directory, "*.index"))
             if (m := pattern.search(os.path.basename(path)))]
    return [path for _, path in sorted(found, reverse=True)]


def try_restore(checkpoint, path):
    """None when `path` restored every existing object, else the first line of why not."""
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except RESTORE_ERRORS as error:
        return first_line(error)
    return None


def first_line(error):
    """First line of a (TF) error's message."""
    return ((getattr(error, "message", None) or str(error)).splitlines() or [type(error).__name__])[0]


def read_run(directory):
    """(settings, overrides) recorded in `directory`/run.json; a pre-schema-2 file maps through LEGACY_KEYS."""
    path = os.path.join(directory, FINGERPRINT_FILE)
    try:
        with open(path) as handle:
            run = json.load(handle)
    except (OSError, json.JSONDecodeError):
        raise UserError(f"cannot resume: {path!r} is missing or corrupt") from None
    if not isinstance(run, dict):
        raise UserError(f"cannot resume: {path!r} is not a run record")
    if "settings" not in run:
        return {LEGACY_KEYS[k]: v for k, v in run.items() if k in LEGACY_KEYS}, []
    return dict(run["settings"]), list(run.get("overrides") or [])


def changed_settings(saved, current):
    """[(name, old, new)] for every recorded setting whose value differs now (in recorded order).

    Example:
        >>> changed_settings({"lr": 0.1, "epochs": 3}, {"lr": 0.5, "epochs": 3})
        [('lr', 0.1, 0.5)]
    """
    current = json.loads(json.dumps(current))  # tuples -> lists, as recorded
    return [(name, old, current.get(name)) for name, old in saved.items() if current.get(name) != old]


def describe(changed):
    """`name old -> new; ...` for a list of changes.

    Example:
        >>> describe([("lr", 0.1, 0.5), ("data", "digits", "x.npz")])
        "lr 0.1 -> 0.5; data 'digits' -> 'x.npz'"
    """
    return "; ".join(f"{name} {old!r} -> {new!r}" for name, old, new in changed)
