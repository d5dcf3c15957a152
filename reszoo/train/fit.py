"""`fit`: train a zoo model (or any Keras classifier) with tf.distribute and one custom loop.

`fit` orchestrates small steps: its keywords become one `TrainConfig` (checked once) -> strategy (first:
multi-worker must exist before any TF op) -> `prepare_run` (model plan, data split, model + optimizer in the
strategy's scope, run settings) -> checkpointer and resume point -> `loop.run_epochs` (seeded tf.data batches,
held-out evaluation each epoch, checkpoints every N steps and at epoch end, best.keras) -> final.keras. Saved
models carry the metadata `reszoo export` reads (builder, preprocessing spec, labels, data source, split,
recipe, metrics).

Example:
    >>> import keras
    >>> from reszoo.train import fit
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    >>> result = fit(model, "digits", epochs=1, batch_size=64, steps_per_epoch=2, verbose=False)  # or a zoo name
    >>> sorted(result.history[0])[:3]
    ['accuracy', 'epoch', 'images_per_second']
"""
import contextlib
import dataclasses
import json
import os
import sys

from export.data import sources as export_datasets
from export.core.errors import UserError
from export.core.files import remove_created
from reszoo.train import strategies
from reszoo.train.config import TrainConfig
from reszoo.train.streams import Stream

BUILTIN_DATA = ("digits",)  # data names that are not paths (export.data.sources.load)
EVAL_CROP_PCT = 0.875  # ImageNet evaluation: resize to size / 0.875, center crop (torchvision, Model Garden)


@dataclasses.dataclass
class TrainResult:
    """What `fit` returns: per-epoch history, the trained model (in the strategy's scope) and saved paths."""

    history: list
    model: object
    best_path: str | None
    final_path: str | None
    strategy: str
    replicas: int
    steps: int
    metadata: dict


@dataclasses.dataclass
class ModelPlan:
    """How to (re)build the model: registered name + builder kwargs, or a given model instance."""

    name: str
    builder: str | None
    kwargs: dict
    instance: object = None


@dataclasses.dataclass
class TrainInputs:
    """The loaded data and what follows from it: split, class count, preprocessing spec, augmentation, steps."""

    train: object
    held_out: object
    source_name: str
    num_classes: int
    spec: dict
    augment: str
    steps_per_epoch: int


@dataclasses.dataclass
class Run:
    """One run's parts, built once by `prepare_run` and read by the steps after it."""

    config: TrainConfig
    plan: ModelPlan
    inputs: TrainInputs
    distribution: object
    model: object
    optimizer: object
    settings: dict  # what run.json records and a resume compares (`run_settings`)
    recipe: dict  # settings + strategy, replicas, xla, overrides: the saved models' "training" metadata
    metadata: dict  # `base_metadata`
    chief: bool
    ema: object = None  # EmaWeights when config.ema

    def averaged(self):
        """Context in which the model holds the weights to evaluate and save (EMA when on)."""
        return self.ema.swapped() if self.ema else contextlib.nullcontext()


def fit(model_or_name, data, **options) -> TrainResult:
    """Train `model_or_name` (registered name or keras.Model) on `data` (any export.data.sources source).

    options: the `TrainConfig` fields: epochs and batch_size (required; the global batch, split over
    replicas), strategy, lr, optimizer, schedule, warmup_epochs, label_smoothing, weight_decay, mixed_precision,
    xla, output_dir, resume, seed, steps_per_epoch, model_kwargs, augment, image_size, checkpoint_every,
    keep_checkpoints, deterministic, verbose, force_settings. `output_dir=None` trains in memory only (no
    checkpoints, no saved models). A model instance is cloned (weights copied) into the strategy's scope, so
    the trained model is `result.model`, not the instance passed in. `deterministic` fixes tf.data's element
    order (the data order and augmentation seeds are always seeded). Returns a TrainResult; history entries hold
    epoch, step, loss, accuracy, val_loss, val_accuracy, images_per_second and lr.

    `resume` refuses other settings than the run's (`run_settings`) unless `force_settings`, which records the
    change. A run that fails before its first checkpoint removes what it created in the output folder; a
    non-finite training loss raises `TrainingDiverged` (no final.keras).

    Example:
        >>> fit("resnet20", "digits", epochs=30, batch_size=128, output_dir="runs/r20")  # doctest: +SKIP
    """
    from reszoo.train.logs import RunLog, SilentLog
    from reszoo.train.loop import run_epochs

    config = resume_after_preemption(TrainConfig(**options))
    distribution, strategy_name = start_strategy(config)  # first: multi-worker must exist before any TF op
    run = prepare_run(model_or_name, data, config, distribution, strategy_name)
    work_dir = worker_dir(config.output_dir, run.chief)
    checkpointer = None
    with removed_on_failure(work_dir, lambda: checkpointer is not None and checkpointer.saved_step >= 0):
        checkpointer = make_checkpointer(run, work_dir)
        start_step, history = resume_point(run, checkpointer)
        best_path = os.path.join(config.output_dir, "best.keras") if config.output_dir and run.chief else None
        log = RunLog(work_dir, config.verbose) if run.chief else SilentLog()
        with watching_preemption(run, checkpointer) as loop_options:
            step = run_epochs(epoch_loop(run, log, checkpointer, best_path, **loop_options), config.epochs,
                              start_step, history)
        final_path = save_as(run, "final", history) if config.output_dir and run.chief else None
    if config.output_dir and not run.chief:
        remove_created(work_dir)
    say_done(run, step, history, final_path)
    return TrainResult(history, run.model, best_path if best_path and os.path.exists(best_path) else None, final_path,
                       strategy_name, distribution.num_replicas_in_sync, step,
                       {**run.metadata, "training": training_metadata(run.recipe, history)})


def say(config, text):
    """Print `text` (flushed) on the chief when `config.verbose`: say(config, "strategy: default (1 replica)")."""
    if config.verbose and strategies.is_chief():
        print(text, flush=True)


def start_strategy(config):
    """(tf.distribute strategy, resolved name) for `config.strategy`, announced; the batch must split over replicas."""
    distribution, name = strategies.resolve_strategy(config.strategy)
    replicas = distribution.num_replicas_in_sync
    say(config, f"strategy: {name} ({replicas} replica{'s' * (replicas != 1)})")
    if config.batch_size % replicas:
        raise UserError(f"batch size {config.batch_size} is not divisible by the {replicas} replicas of strategy "
                        f"{name!r}")
    return distribution, name


def prepare_run(model_or_name, data, config, distribution, strategy_name):
    """Seed, hyperparameters, model plan, data, then model + optimizer in the strategy's scope: one `Run`."""
    import keras

    from reszoo.train.optim import resolve_hyperparameters

    keras.utils.set_random_seed(config.seed)
    lr, weight_decay = resolve_hyperparameters(config.optimizer, config.lr, config.weight_decay)
    plan = plan_model(model_or_name, config.image_size, config.model_kwargs)
    inputs = prepare_inputs(plan, data, config)
    plan.kwargs.setdefault("num_classes", inputs.num_classes)
    model, optimizer, ema = build_in_scope(distribution, plan, inputs, config, lr, weight_decay)
    settings = run_settings(plan, data, inputs.train, **recipe_settings(config, inputs, lr, weight_decay))
    if config.val_data is not None:
        settings["val_data"] = str(config.val_data)
    recipe = {"strategy": strategy_name, "replicas": distribution.num_replicas_in_sync, **settings,
              "xla": bool(config.xla)}
    metadata = base_metadata(plan, inputs.spec, inputs.train, inputs.held_out, inputs.source_name)
    return Run(config, plan, inputs, distribution, model, optimizer, settings, recipe, metadata, strategies.is_chief(),
               ema)


def prepare_inputs(plan, data, config):
    """Open `data` (streamed: folders, TFRecord; else loaded) and its held-out part (`config.val_data`, else the
    fixed split) at the planned input size; derive classes, spec, augmentation and steps per epoch.

    The recorded source is the opened one ("digits", or an absolute path / glob), so `reszoo export` finds it
    from any folder. Example: prepare_inputs(plan, "digits", config).num_classes -> 10.
    """
    from reszoo.train import data as pipelines

    input_size, channels = plan.kwargs["input_shape"][:2], plan.kwargs["input_shape"][2]
    train, held_out = open_train_and_held_out(data, config, input_size, channels, planned_classes(plan))
    steps = int(config.steps_per_epoch or train.count // config.batch_size)
    if steps < 1:
        raise UserError(f"batch size {config.batch_size} is larger than the {train.count} training images")
    augment = pipelines.resolve_augment(config.augment, train.source, input_size)
    spec = pipelines.default_spec(train.source, input_size, channels)
    if augment.startswith("imagenet") and isinstance(held_out, Stream):
        spec["crop_pct"] = EVAL_CROP_PCT
    return TrainInputs(train, held_out, train.source, len(train.class_names) or int(train.y.max()) + 1, spec,
                       augment, steps)


def planned_classes(plan):
    """The class count the plan asks for (num_classes), else the registered model's default (1000 for ImageNet
    models), else the given model's output size: what shards without dataset.json are taken to hold."""
    if plan.kwargs.get("num_classes"):
        return plan.kwargs["num_classes"]
    if plan.instance is not None:
        return plan.instance.output_shape[-1]
    from reszoo.models.registry import get_entry

    return get_entry(plan.builder).default_classes


def open_data(source, config, input_size, channels, num_classes):
    """A Stream for what training streams (`streams.is_streamed`), else the loaded LabeledImages."""
    from reszoo.train import data as pipelines
    from reszoo.train.streams import is_streamed, open_stream

    if is_streamed(source, config.val_data is not None):
        return open_stream(source, config.label_offset, num_classes)
    return pipelines.load_data(source, input_size, channels)


def open_train_and_held_out(data, config, input_size, channels, num_classes):
    """(train, held_out): `data` and `config.val_data` when given, else the project's fixed split of `data`."""
    from export.data.sources import split
    from reszoo.train.streams import split_stream

    train = open_data(data, config, input_size, channels, num_classes)
    if config.val_data is not None:
        return train, open_data(config.val_data, config, input_size, channels, num_classes)
    return split_stream(train) if isinstance(train, Stream) else split(train)


def build_in_scope(distribution, plan, inputs, config, lr, weight_decay):
    """(model, built optimizer, EmaWeights or None) created in the strategy's scope under the mixed-precision
    policy. A loss on logits (bce) trains the model without its softmax (saved models keep it)."""
    from reszoo.train.ema import EmaWeights
    from reszoo.train.loop import LOSSES
    from reszoo.train.optim import make_optimizer

    with distribution.scope():
        model = build_model(plan, config.policy, logits=LOSSES[config.loss][1])
        if config.sync_bn:
            synchronize_batch_norm(model)
        optimizer = make_optimizer(config.optimizer, lr=lr, schedule=config.schedule,
                                   total_steps=config.epochs * inputs.steps_per_epoch,
                                   warmup_steps=round(config.warmup_epochs * inputs.steps_per_epoch),
                                   weight_decay=weight_decay, mixed_float16=config.policy == "mixed_float16",
                                   momentum=config.momentum, nesterov=config.nesterov)
        optimizer.build(model.trainable_variables)
        ema = EmaWeights(model, config.ema) if config.ema else None
    return model, optimizer, ema


def synchronize_batch_norm(model):
    """Batch statistics over the global batch (all replicas) in every BatchNormalization (`--sync-bn`): for small
    per-replica batches. Saved models are rebuilt without it (inference uses the moving statistics)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
    return model


def recipe_settings(config, inputs, lr, weight_decay):
    """The recipe part of `run_settings` (resolved values: lr, weight decay, policy, augmentation, steps)."""
    return dict(epochs=config.epochs, batch_size=config.batch_size, steps_per_epoch=inputs.steps_per_epoch,
                optimizer=config.optimizer, lr=lr, schedule=config.schedule, warmup_epochs=config.warmup_epochs,
                label_smoothing=config.label_smoothing, weight_decay=weight_decay, mixed_precision=config.policy,
                augment=inputs.augment, seed=config.seed, deterministic=bool(config.deterministic),
                label_offset=config.label_offset, synthetic=bool(config.synthetic), momentum=config.momentum,
                nesterov=bool(config.nesterov), loss=config.loss, bce_threshold=config.bce_threshold,
                mixup=config.mixup, cutmix=config.cutmix, ema=config.ema, recipe=config.recipe,
                sync_bn=bool(config.sync_bn))


def worker_dir(output_dir, chief):
    """Where this worker writes: the run folder (chief), its own `.worker-N` inside it (others), None in memory."""
    return output_dir if chief or not output_dir else os.path.join(output_dir, f".worker-{strategies.task()[1]}")


def make_checkpointer(run, work_dir):
    """A Checkpointer writing under `work_dir` and restoring from the chief's folder; None without an output dir."""
    if not run.config.output_dir:
        return None
    from reszoo.train.checkpoints import Checkpointer

    extra = {"ema": run.ema.trackable} if run.ema else {}
    return Checkpointer(os.path.join(work_dir, "checkpoints"), run.model, run.optimizer, run.config.keep_checkpoints,
                        read_from=os.path.join(run.config.output_dir, "checkpoints"),
                        warn=warn if run.chief else (lambda text: None), **extra)


def resume_point(run, checkpointer):
    """(start step, history so far): restore a resumed run (settings checked, overrides recorded), else (0, [])."""
    config = run.config
    start_step = checkpointer.restore(config.resume, run.settings, config.force_settings) if checkpointer else 0
    run.recipe["overrides"] = checkpointer.overrides if checkpointer else []
    if not start_step:
        return 0, []
    epochs_done = start_step // run.inputs.steps_per_epoch
    say(config, f"resuming at step {start_step} (epoch {epochs_done + 1})")
    return start_step, load_history(config.output_dir, epochs_done)


def resume_after_preemption(config):
    """`config` with resume on when the run folder says its last run was preempted (same command relaunched)."""
    from reszoo.train.preemption import preempted_step

    step = preempted_step(config.output_dir)
    if step is None or config.resume:
        return config
    say(config, f"the last run was preempted at step {step}: resuming")
    return dataclasses.replace(config, resume=True)


@contextlib.contextmanager
def watching_preemption(run, checkpointer):
    """While training with checkpoints, SIGTERM saves one at the next step on every worker and raises Preempted
    (`reszoo.train.preemption`); yields the EpochLoop options that wire it (none without an output folder)."""
    from reszoo.train.preemption import Preempted, PreemptionWatch, clear_marker, write_marker

    if checkpointer is None:
        yield {}
        return

    def on_preempted(step):
        checkpointer.save(step, run.settings)
        if run.chief:
            write_marker(run.config.output_dir, step)
        raise Preempted(step, run.config.output_dir)

    if run.chief:
        clear_marker(run.config.output_dir)
    watch = PreemptionWatch()
    with watch.installed():
        if run.config.verbose:  # every worker: its SIGTERM handler is in place from here on
            print("preemption: a SIGTERM to any worker checkpoints every worker at the same step, exit 42", flush=True)
        yield {"stop_flag": watch.flag, "on_preempted": on_preempted}


def epoch_loop(run, log, checkpointer, best_path, **preemption):
    """The `loop.EpochLoop` of `run`: train/eval steps, eval data, batches, checkpoints and best.keras saving."""
    from reszoo.train import batches
    from reszoo.train.loop import EpochLoop, make_eval_step, make_train_step

    config, inputs = run.config, run.inputs
    train_step = make_train_step(run.distribution, run.model, run.optimizer, num_classes=inputs.num_classes,
                                 global_batch=config.batch_size, label_smoothing=config.label_smoothing, xla=config.xla,
                                 loss=config.loss, bce_threshold=config.bce_threshold, ema=run.ema)
    return EpochLoop(
        train_step, make_eval_step(run.model, inputs.num_classes, config.loss),
        batches.eval_batches(inputs.held_out, inputs.spec, batch_size=max(config.batch_size, 256)),
        epoch_batches(run), run.optimizer, log, inputs.steps_per_epoch, config.batch_size,
        checkpoint=(lambda step: checkpointer.save(step, run.settings)) if checkpointer else None,
        checkpoint_every=config.checkpoint_every,
        on_best=(lambda history: save_as(run, "best", history)) if best_path else None,
        replicas=run.distribution.num_replicas_in_sync, eval_weights=run.averaged, **preemption)


def epoch_batches(run):
    """`batches(epoch, skip)`: the distributed training batches of `epoch` from step `skip` on (seeded, sharded)."""
    from reszoo.train import data as pipelines
    from reszoo.train.batches import train_batches
    from reszoo.train.mixing import Mixing

    config, inputs = run.config, run.inputs
    mixing = Mixing(config.mixup, config.cutmix)

    def batches(epoch, skip):
        def dataset_fn(input_context):
            if config.synthetic:
                return pipelines.synthetic_batches(inputs.spec, config.batch_size, inputs.steps_per_epoch - skip,
                                                   inputs.num_classes, input_context)
            return train_batches(inputs.train, inputs.spec, global_batch=config.batch_size, epoch=epoch,
                                 seed=config.seed, augment=inputs.augment, steps=inputs.steps_per_epoch,
                                 skip_steps=skip, input_context=input_context,
                                 deterministic=config.deterministic, mixing=mixing,
                                 num_classes=inputs.num_classes)

        return run.distribution.distribute_datasets_from_function(dataset_fn)

    return batches


def save_as(run, kind, history):
    """Save the model as OUTPUT/<kind>.keras ("best" or "final") with metadata; returns the path."""
    path = os.path.join(run.config.output_dir, f"{kind}.keras")
    with run.averaged():
        save_with_metadata(run.model, run.plan, path, run.metadata, run.recipe, history, kind)
    return path


def say_done(run, step, history, final_path):
    """The closing line: steps, last and best val_accuracy, and the final model's path."""
    if history:
        best = max(h["val_accuracy"] for h in history)
        say(run.config, f"done: {step} steps, val_accuracy {history[-1]['val_accuracy']:.4f} (best {best:.4f})"
            + (f"; saved {final_path}" if final_path else ""))


def run_settings(plan, data, train, **recipe):
    """Every setting that changes a run's result, flat, in one dict: what run.json records and resume compares.

    Model name, builder kwargs (as `model.<kwarg>`: width, input_shape, num_classes...), the data source (an
    existing path made absolute) and its train-split size, then `recipe` (epochs, batch size, optimizer, lr...).

    Example:
        >>> from types import SimpleNamespace
        >>> plan = ModelPlan("resnet20", "resnet20", {"width": 4})
        >>> sorted(run_settings(plan, "digits", SimpleNamespace(count=8), lr=0.1))
        ['data', 'lr', 'model', 'model.width', 'train_images']
    """
    source = str(data if isinstance(data, str) else getattr(data, "source", type(data).__name__))
    source = os.path.abspath(source) if source not in BUILTIN_DATA and os.path.exists(source) else source
    kwargs = {f"model.{name}": value for name, value in sorted(plan.kwargs.items())}
    settings = {"model": plan.name, **kwargs, "data": source, "train_images": train.count, **recipe}
    return json.loads(json.dumps(settings))


def warn(text):
    """A warning line on stderr (also when not verbose: a skipped checkpoint or forced setting must be seen)."""
    print(text, file=sys.stderr, flush=True)


def existing_names(folder):
    """What exists before a run: (first missing folder on the way to `folder`, names already in `folder`).

    Example:
        >>> existing_names("/no/such/run")
        ('/no', None)
    """
    if not folder:
        return None, None
    path = os.path.abspath(folder)
    if os.path.isdir(path):
        return None, set(os.listdir(path))
    while not os.path.exists(os.path.dirname(path)):
        path = os.path.dirname(path)
    return path, None


def remove_run_leftovers(folder, existed):
    """Remove what a run added under `folder`: the top folder it created, else only names new since `existed`."""
    created_root, names = existed
    if created_root:
        remove_created(created_root)
        return
    for name in set(os.listdir(folder)) - names if names is not None and os.path.isdir(folder) else ():
        with contextlib.suppress(OSError):
            remove_created(os.path.join(folder, name))


@contextlib.contextmanager
def removed_on_failure(folder, has_checkpoint):
    """On any failure (Ctrl-C too) before `has_checkpoint()`, remove what the run created under `folder`."""
    existed = existing_names(folder)
    try:
        yield
    except BaseException:
        if folder and not has_checkpoint():
            remove_run_leftovers(folder, existed)
        raise


def plan_model(model_or_name, image_size, model_kwargs):
    """A ModelPlan: builder kwargs with input_shape resolved (registry default, `image_size` or the model's)."""
    if isinstance(model_or_name, str):
        from reszoo.models.resolve import resolve_model

        entry = resolve_model(model_or_name, allowed=("name",)).entry
        kwargs = dict(model_kwargs or {})
        height, width, channels = entry.default_input
        if image_size:
            height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        kwargs.setdefault("input_shape", (int(height), int(width), int(kwargs.pop("channels", channels))))
        kwargs["input_shape"] = list(kwargs["input_shape"])
        return ModelPlan(model_or_name, model_or_name, kwargs)
    shape = list(model_or_name.input_shape[1:])
    if None in shape[:2]:
        raise UserError(f"model {model_or_name.name!r} needs a fixed input height and width to train")
    return ModelPlan(model_or_name.name, None, {"input_shape": shape}, model_or_name)


@contextlib.contextmanager
def dtype_policy(policy):
    """Temporarily set Keras' global dtype policy (restored afterwards, so callers are unaffected)."""
    import keras

    previous = keras.config.dtype_policy()
    if policy:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(plan, policy=None, logits=False):
    """Build the planned model (in the current strategy scope); a given instance is cloned with its weights.
    `logits` builds it without the classifier's softmax (registered models only)."""
    import keras

    from reszoo.models.factory import create_model

    with dtype_policy(policy):
        if plan.instance is None:
            head = {"classifier_activation": None} if logits else {}
            try:
                return create_model(plan.builder, **{**plan.kwargs, **head,
                                                     "input_shape": tuple(plan.kwargs["input_shape"])})
            except (ValueError, TypeError) as error:
                raise UserError(f"cannot build {plan.builder!r} with {plan.kwargs}: {error}") from None
        if policy or logits:
            raise UserError("mixed precision and the bce loss need a registered model name (the model is rebuilt)")
        model = keras.models.clone_model(plan.instance)
    model.set_weights(plan.instance.get_weights())
    return model


def float32_copy(model, plan):
    """A float32 copy of `model` built outside the strategy scope, for saving (export wants plain layers)."""
    import keras

    if plan.instance is None:
        copy = build_model(ModelPlan(plan.name, plan.builder, plan.kwargs), policy="float32")
    else:
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def base_metadata(plan, spec, train, held_out, source_name):
    """Model metadata `reszoo export` reads (schema: export.core.metadata.ModelMetadata; save_model validates)."""
    return {
        "model_name": plan.name,
        "builder": {"name": plan.builder, "kwargs": json.loads(json.dumps(plan.kwargs))} if plan.builder else None,
        "preprocessing": spec,
        "labels": list(train.class_names),
        "data": {"source": str(source_name), "held_out_fraction": export_datasets.HELD_OUT_FRACTION,
                 "split_seed": export_datasets.SPLIT_SEED, "train_images": train.count,
                 "held_out_images": held_out.count},
    }


def training_metadata(recipe, history):
    """Recipe plus the last and best epoch's metrics."""
    best = max(history, key=lambda h: h["val_accuracy"]) if history else {}
    return {**recipe, "epochs_completed": len(history), "final": history[-1] if history else {}, "best": best}


def save_with_metadata(model, plan, path, metadata, recipe, history, kind):
    """Atomically save a float32 copy of `model` with metadata (+ which checkpoint kind it is)."""
    from export.core.metadata import save_model

    training = {**training_metadata(recipe, history), "saved": kind}
    try:
        save_model(float32_copy(model, plan), path, {**metadata, "training": training})
    except OSError as error:  # a full disk inside Keras' zip writer names no file: name the model
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror or str(error), path) from None


def load_history(output_dir, epochs_done):
    """history.json of the run being resumed, cut to the epochs the checkpoint covers."""
    path = os.path.join(output_dir, "history.json")
    if not os.path.exists(path):
        return []
    try:
        with open(path) as handle:
            return json.load(handle)[:epochs_done]
    except (OSError, json.JSONDecodeError):
        raise UserError(f"cannot resume: {path!r} is corrupt") from None
