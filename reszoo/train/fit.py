"""`fit`: train a zoo model (or any Keras classifier) with tf.distribute and one custom loop.

Resolves the strategy first (multi-worker must exist before any TF op), builds the model and optimizer in its
scope, streams the fixed train split through the seeded tf.data pipeline, evaluates on the held-out split
after every epoch, checkpoints every N steps and at epoch end, and saves `best.keras` / `final.keras` with the
metadata `reszoo export` reads (builder, preprocessing spec, labels, split, recipe, metrics).

Example:
    >>> from reszoo.train import fit
    >>> result = fit("resnet20", "digits", epochs=1, batch_size=64, model_kwargs={"width": 4},
    ...              steps_per_epoch=2, verbose=False)
    >>> sorted(result.history[0])[:3]
    ['accuracy', 'epoch', 'images_per_second']
"""
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time

from export.data import sources as export_datasets
from export.core.errors import UserError
from reszoo.train import strategies

BUILTIN_DATA = ("digits",)  # data names that are not paths (export.data.sources.load)
MIXED_PRECISION = {None: None, "none": None, "mixed_float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16"}


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


def fit(model_or_name, data, *, epochs, batch_size, strategy="auto", lr=None, optimizer="sgd", schedule="cosine",
        warmup_epochs=0.0, label_smoothing=0.0, weight_decay=None, mixed_precision=None, xla=False, output_dir=None,
        resume=False, seed=0, steps_per_epoch=None, model_kwargs=None, augment="auto", image_size=None,
        checkpoint_every=None, keep_checkpoints=3, deterministic=True, verbose=True,
        force_settings=False) -> TrainResult:
    """Train `model_or_name` (registered name or keras.Model) on `data` (source string or LabeledImages).

    `batch_size` is the global batch (split over replicas). `output_dir=None` trains in memory only (no
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
    check_arguments(epochs, batch_size, mixed_precision, label_smoothing, warmup_epochs, checkpoint_every)
    if force_settings and not resume:
        raise UserError("--force-settings only applies with --resume")
    distribution, strategy_name = strategies.resolve_strategy(strategy)
    replicas = distribution.num_replicas_in_sync
    chief = strategies.is_chief()
    say = print if (verbose and chief) else (lambda *a, **k: None)
    say(f"strategy: {strategy_name} ({replicas} replica{'s' * (replicas != 1)})", flush=True)
    if batch_size % replicas:
        raise UserError(f"batch size {batch_size} is not divisible by the {replicas} replicas of strategy "
                        f"{strategy_name!r}")

    import keras

    from reszoo import data as pipelines
    from reszoo.train.checkpoints import Checkpointer
    from reszoo.train.logs import RunLog, SilentLog
    from reszoo.train.loop import check_finite_loss, evaluate, make_eval_step, make_train_step
    from reszoo.train.optim import make_optimizer, resolve_hyperparameters

    keras.utils.set_random_seed(seed)
    lr, weight_decay = resolve_hyperparameters(optimizer, lr, weight_decay)
    plan = plan_model(model_or_name, image_size, model_kwargs)
    input_size, channels = plan.kwargs["input_shape"][:2], plan.kwargs["input_shape"][2]
    train, held_out = pipelines.load_split(data, input_size, channels)
    source_name = data if isinstance(data, str) else data.source
    num_classes = len(train.class_names) or int(train.y.max()) + 1
    plan.kwargs.setdefault("num_classes", num_classes)
    spec = pipelines.default_spec(source_name, input_size, channels)
    augment = pipelines.resolve_augment(augment, source_name, input_size)
    steps_per_epoch = int(steps_per_epoch or len(train.x) // batch_size)
    if steps_per_epoch < 1:
        raise UserError(f"batch size {batch_size} is larger than the {len(train.x)} training images")
    total_steps = epochs * steps_per_epoch
    policy = MIXED_PRECISION[mixed_precision]

    with distribution.scope():
        model = build_model(plan, policy)
        opt = make_optimizer(optimizer, lr=lr, schedule=schedule, total_steps=total_steps,
                             warmup_steps=round(warmup_epochs * steps_per_epoch), weight_decay=weight_decay,
                             mixed_float16=policy == "mixed_float16")
        opt.build(model.trainable_variables)

    settings = run_settings(plan, data, train, epochs=epochs, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                            optimizer=optimizer, lr=lr, schedule=schedule, warmup_epochs=warmup_epochs,
                            label_smoothing=label_smoothing, weight_decay=weight_decay, mixed_precision=policy,
                            augment=augment, seed=seed, deterministic=bool(deterministic))
    recipe = {"strategy": strategy_name, "replicas": replicas, **settings, "xla": bool(xla)}
    if resume and not output_dir:
        raise UserError("resume needs an output folder (--output) holding the run's checkpoints")
    work_dir = output_dir if chief or not output_dir else os.path.join(output_dir, f".worker-{strategies.task()[1]}")
    checkpointer = None
    with removed_on_failure(work_dir, lambda: checkpointer is not None and checkpointer.saved_step >= 0):
        if output_dir:
            checkpointer = Checkpointer(os.path.join(work_dir, "checkpoints"), model, opt, keep_checkpoints,
                                        read_from=os.path.join(output_dir, "checkpoints"),
                                        warn=warn if chief else (lambda text: None))
        start_step = checkpointer.restore(resume, settings, force_settings) if checkpointer else 0
        recipe["overrides"] = checkpointer.overrides if checkpointer else []
        history = load_history(output_dir, start_step // steps_per_epoch) if start_step else []
        log = RunLog(work_dir if chief else None, verbose) if chief else SilentLog()
        if start_step:
            say(f"resuming at step {start_step} (epoch {start_step // steps_per_epoch + 1})", flush=True)

        train_step = make_train_step(distribution, model, opt, num_classes=num_classes, global_batch=batch_size,
                                     label_smoothing=label_smoothing, xla=xla)
        eval_step = make_eval_step(model, num_classes)
        eval_data = pipelines.eval_dataset(held_out, spec, batch_size=max(batch_size, 256))
        metadata = base_metadata(plan, spec, train, held_out, source_name)
        best_path = os.path.join(output_dir, "best.keras") if output_dir and chief else None
        best_accuracy = max((h["val_accuracy"] for h in history), default=-1.0)

        step = start_step
        log.start(total_steps, start_step)
        try:
            for epoch in range(start_step // steps_per_epoch, epochs):
                skip = step - epoch * steps_per_epoch

                def dataset_fn(input_context, epoch=epoch, skip=skip):
                    return pipelines.train_dataset(train, spec, global_batch=batch_size, epoch=epoch, seed=seed,
                                                   augment=augment, steps=steps_per_epoch, skip_steps=skip,
                                                   input_context=input_context, deterministic=deterministic)

                batches = distribution.distribute_datasets_from_function(dataset_fn)
                loss_sum = correct = 0.0
                started = time.perf_counter()
                for batch in batches:
                    batch_loss, batch_correct = train_step(batch)
                    loss_sum += check_finite_loss(batch_loss, step + 1, epoch + 1)
                    correct += float(batch_correct)
                    step += 1
                    seen = (step - epoch * steps_per_epoch - skip) * batch_size
                    log.step(step, loss=loss_sum / seen, accuracy=correct / seen,
                             images_per_second=seen / (time.perf_counter() - started))
                    if checkpointer and checkpoint_every and step % checkpoint_every == 0:
                        checkpointer.save(step, settings)
                seconds = time.perf_counter() - started
                seen = max((step - epoch * steps_per_epoch - skip) * batch_size, 1)
                val_loss, val_accuracy = evaluate(eval_step, eval_data)
                record = {"epoch": epoch + 1, "step": step, "loss": loss_sum / seen, "accuracy": correct / seen,
                          "val_loss": val_loss, "val_accuracy": val_accuracy, "images_per_second": seen / seconds,
                          "lr": float(opt.learning_rate)}
                history.append(record)
                improved = val_accuracy > best_accuracy
                best_accuracy = max(best_accuracy, val_accuracy)
                if best_path and improved:
                    save_with_metadata(model, plan, best_path, metadata, recipe, history, "best")
                log.epoch(epoch + 1, record, history)  # history first: resume cuts it to the checkpointed epochs
                if checkpointer:
                    checkpointer.save(step, settings)
        finally:
            log.close()

        final_path = None
        if output_dir and chief:
            final_path = os.path.join(output_dir, "final.keras")
            save_with_metadata(model, plan, final_path, metadata, recipe, history, "final")
    if output_dir and not chief:
        shutil.rmtree(work_dir, ignore_errors=True)
    if history:
        last = history[-1]
        say(f"done: {step} steps, val_accuracy {last['val_accuracy']:.4f} (best {best_accuracy:.4f})"
            + (f"; saved {final_path}" if final_path else ""), flush=True)
    return TrainResult(history, model, best_path if best_path and os.path.exists(best_path) else None, final_path,
                       strategy_name, replicas, step, {**metadata, "training": training_metadata(recipe, history)})


def run_settings(plan, data, train, **recipe):
    """Every setting that changes a run's result, flat, in one dict: what run.json records and resume compares.

    Model name, builder kwargs (as `model.<kwarg>`: width, input_shape, num_classes...), the data source (an
    existing path made absolute) and its train-split size, then `recipe` (epochs, batch size, optimizer, lr...).

    Example:
        >>> from types import SimpleNamespace
        >>> plan = ModelPlan("resnet20", "resnet20", {"width": 4})
        >>> sorted(run_settings(plan, "digits", SimpleNamespace(x=[0] * 8), lr=0.1))
        ['data', 'lr', 'model', 'model.width', 'train_images']
    """
    source = str(data if isinstance(data, str) else getattr(data, "source", type(data).__name__))
    source = os.path.abspath(source) if source not in BUILTIN_DATA and os.path.exists(source) else source
    kwargs = {f"model.{name}": value for name, value in sorted(plan.kwargs.items())}
    settings = {"model": plan.name, **kwargs, "data": source, "train_images": len(train.x), **recipe}
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


def remove_created(folder, existed):
    """Remove what a run added under `folder`: the top folder it created, else only names new since `existed`."""
    created_root, names = existed
    if created_root:
        shutil.rmtree(created_root, ignore_errors=True)
        return
    for name in set(os.listdir(folder)) - names if names is not None and os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)


@contextlib.contextmanager
def removed_on_failure(folder, has_checkpoint):
    """On any failure (Ctrl-C too) before `has_checkpoint()`, remove what the run created under `folder`."""
    existed = existing_names(folder)
    try:
        yield
    except BaseException:
        if folder and not has_checkpoint():
            remove_created(folder, existed)
        raise


def check_arguments(epochs, batch_size, mixed_precision, label_smoothing, warmup_epochs, checkpoint_every):
    """UserError for values no run can use."""
    if int(epochs) < 1 or int(batch_size) < 1:
        raise UserError(f"epochs and batch size must be >= 1; got epochs={epochs}, batch_size={batch_size}")
    if mixed_precision not in MIXED_PRECISION:
        raise UserError(f"unknown mixed precision {mixed_precision!r}; allowed: none, mixed_float16, mixed_bfloat16")
    if not 0.0 <= label_smoothing < 1.0 or warmup_epochs < 0:
        raise UserError(f"need 0 <= label smoothing < 1 and warmup >= 0; got {label_smoothing}, {warmup_epochs}")
    if checkpoint_every is not None and int(checkpoint_every) < 1:
        raise UserError(f"checkpoint interval must be >= 1 step; got {checkpoint_every}")


def plan_model(model_or_name, image_size, model_kwargs):
    """A ModelPlan: builder kwargs with input_shape resolved (registry default, `image_size` or the model's)."""
    if isinstance(model_or_name, str):
        from reszoo.models.registry import get_entry

        entry = get_entry(model_or_name)
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


def build_model(plan, policy=None):
    """Build the planned model (in the current strategy scope); a given instance is cloned with its weights."""
    import keras

    from reszoo.models.registry import create_model

    with dtype_policy(policy):
        if plan.instance is None:
            try:
                return create_model(plan.builder, **{**plan.kwargs, "input_shape": tuple(plan.kwargs["input_shape"])})
            except (ValueError, TypeError) as error:
                raise UserError(f"cannot build {plan.builder!r} with {plan.kwargs}: {error}") from None
        if policy:
            raise UserError("mixed precision needs a registered model name (the model is rebuilt under the policy)")
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
    """Model metadata `reszoo export` reads (schema of export.core.metadata)."""
    return {
        "model_name": plan.name,
        "builder": {"name": plan.builder, "kwargs": json.loads(json.dumps(plan.kwargs))} if plan.builder else None,
        "preprocessing": spec,
        "labels": list(train.class_names),
        "data": {"source": str(source_name), "held_out_fraction": export_datasets.HELD_OUT_FRACTION,
                 "split_seed": export_datasets.SPLIT_SEED, "train_images": len(train.x),
                 "held_out_images": len(held_out.x)},
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
