"""Pick and build the tf.distribute strategy: a table of builders and a table of `auto` rules.

`auto`: TF_CONFIG with more than one worker -> multi-worker; more than one GPU -> mirrored; one GPU ->
one-device; otherwise the default strategy. `mirrored` without GPUs mirrors over the logical CPU devices
(that is how the mirrored path is tested on a CPU-only box).

MultiWorkerMirroredStrategy must be created before TensorFlow runs any op, so `fit` resolves the strategy first.

Example:
    >>> strategy, name = resolve_strategy("default")
    >>> name, strategy.num_replicas_in_sync
    ('default', 1)
"""
import json
import os

from export.core.errors import UserError

STRATEGY_NAMES = ("auto", "default", "one-device", "mirrored", "multi-worker")


def tf_config():
    """The parsed TF_CONFIG environment variable ({} when unset); UserError when it is not JSON."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not valid JSON: {error}") from None


def cluster_workers(config=None):
    """Number of workers (chief included) described by TF_CONFIG."""
    cluster = (tf_config() if config is None else config).get("cluster", {})
    return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))


def task():
    """(task_type, task_id) from TF_CONFIG; (None, 0) without one."""
    entry = tf_config().get("task", {})
    return entry.get("type"), int(entry.get("index", 0))


def is_chief():
    """True for the worker that writes logs, checkpoints and models (chief, or worker 0 without a chief)."""
    task_type, task_id = task()
    has_chief = bool(tf_config().get("cluster", {}).get("chief"))
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and not has_chief)


def _gpus():
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def _default():
    import tensorflow as tf

    return tf.distribute.get_strategy()


def _one_device():
    import tensorflow as tf

    return tf.distribute.OneDeviceStrategy("/gpu:0" if _gpus() else "/cpu:0")


def _mirrored():
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def _multi_worker():
    import tensorflow as tf

    if cluster_workers() < 1:
        raise UserError("strategy 'multi-worker' needs TF_CONFIG describing the cluster (see docs/training.md)")
    return tf.distribute.MultiWorkerMirroredStrategy()


BUILDERS = {"default": _default, "one-device": _one_device, "mirrored": _mirrored, "multi-worker": _multi_worker}

# `auto` rules, first match wins: (description, predicate(workers, gpus), strategy name).
AUTO_RULES = (
    ("TF_CONFIG with >1 worker", lambda workers, gpus: workers > 1, "multi-worker"),
    (">1 GPU", lambda workers, gpus: gpus > 1, "mirrored"),
    ("1 GPU", lambda workers, gpus: gpus == 1, "one-device"),
    ("no GPU, no cluster", lambda workers, gpus: True, "default"),
)


def auto_strategy_name():
    """The strategy name `auto` resolves to on this machine/cluster."""
    workers, gpus = cluster_workers(), len(_gpus())
    return next(name for _, rule, name in AUTO_RULES if rule(workers, gpus))


def resolve_strategy(name="auto"):
    """Build the strategy called `name` (one of STRATEGY_NAMES); returns (strategy, resolved name)."""
    if name not in STRATEGY_NAMES:
        raise UserError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGY_NAMES)}")
    resolved = auto_strategy_name() if name == "auto" else name
    return BUILDERS[resolved](), resolved
