"""`fit`'s parts without a model: TrainConfig (the keywords, checked once), the epoch loop (`loop.run_epochs`) on
stand-in steps, and the option tables the CLIs take their choices from."""
import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

from export.core.errors import UserError
from reszoo.train.config import MIXED_PRECISION, TrainConfig


def test_every_cli_option_is_a_config_field_and_unknown_keywords_fail():
    from reszoo.cli.train_cmd import MODEL_OPTIONS, train_command

    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    cli = {parameter.name for parameter in train_command.params} - {"model", "data", *MODEL_OPTIONS}
    assert cli <= fields and "model_kwargs" in fields
    with pytest.raises(TypeError, match="epochz"):
        TrainConfig(epochz=1, batch_size=8)


@pytest.mark.parametrize("options, message", [
    ({"epochs": 0}, "epochs and batch size must be >= 1"),
    ({"mixed_precision": "fp8"}, "unknown mixed precision 'fp8'; allowed: none, mixed_float16, mixed_bfloat16"),
    ({"label_smoothing": 1.0}, "need 0 <= label smoothing < 1"),
    ({"checkpoint_every": 0}, "checkpoint interval must be >= 1 step"),
    ({"force_settings": True}, "--force-settings only applies with --resume"),
    ({"resume": True}, "resume needs an output folder"),
])
def test_unusable_values_are_refused_when_the_config_is_built(options, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**{"epochs": 1, "batch_size": 8, **options})


def test_mixed_precision_none_and_omitted_mean_float32():
    assert TrainConfig(epochs=1, batch_size=8).policy is None
    assert TrainConfig(epochs=1, batch_size=8, mixed_precision="none").policy is None
    assert TrainConfig(epochs=1, batch_size=8, mixed_precision="mixed_float16").policy == "mixed_float16"


def test_clis_take_their_choices_from_the_owning_tables():
    from export.targets import TARGETS
    from reszoo.cli.export_cmd import export_command
    from reszoo.cli.train_cmd import train_command
    from reszoo.train.strategies import STRATEGY_NAMES

    def choices(command, name):
        return list(next(p for p in command.params if p.name == name).type.choices)

    assert choices(train_command, "mixed_precision") == list(MIXED_PRECISION)
    assert choices(train_command, "strategy") == list(STRATEGY_NAMES)
    assert choices(export_command, "target") == list(TARGETS)


def test_is_optimizing_is_one_decision():
    from export.optimize import requested

    assert not requested(None) and not requested({"prune": None, "qat": False, "finetune_epochs": 2})
    assert all(requested({key: value}) for key, value in
               {"prune": 0.5, "prune_structure": "2:4", "qat": True, "cluster": 8}.items())


class Recorder:
    """A log that keeps what the loop reports."""

    def __init__(self):
        self.steps, self.epochs, self.closed = [], [], False

    def start(self, total_steps, done_steps):
        self.total = (total_steps, done_steps)

    def step(self, step, **stats):
        self.steps.append(step)

    def epoch(self, epoch, record, history):
        self.epochs.append(epoch)

    def close(self):
        self.closed = True


def stand_in_loop(losses, accuracies, checkpoint_every=None):
    """An EpochLoop on plain Python: batch i of any epoch has loss losses[i]; epoch e evaluates to accuracies[e]."""
    from reszoo.train.loop import EpochLoop

    saved, best, epoch_of = [], [], []
    labels = np.zeros(4)

    def batches(epoch, skip):
        epoch_of.append((epoch, skip))
        return range(skip, len(losses))

    def eval_step(images, batch_labels):
        accuracy = accuracies[epoch_of[-1][0]]
        return 0.5 * len(batch_labels), accuracy * len(batch_labels), len(batch_labels)

    loop = EpochLoop(train_step=lambda i, stop: (losses[i] * 8, 4.0, 0), eval_step=eval_step, eval_data=[(None, labels)],
                     batches=batches, optimizer=SimpleNamespace(learning_rate=0.1), log=Recorder(),
                     steps_per_epoch=len(losses), batch_size=8, checkpoint=saved.append,
                     checkpoint_every=checkpoint_every, on_best=lambda history: best.append(history[-1]["epoch"]))
    return loop, saved, best, epoch_of


def test_run_epochs_records_checkpoints_and_saves_only_improving_epochs():
    from reszoo.train.loop import run_epochs

    loop, saved, best, _ = stand_in_loop([2.0, 1.0], accuracies=[0.5, 0.4, 0.9])
    history = []
    assert run_epochs(loop, epochs=3, start_step=0, history=history) == 6
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[0]["loss"] == 1.5
    assert history[0]["accuracy"] == 0.5 and history[2]["val_accuracy"] == 0.9 and history[0]["lr"] == 0.1
    assert saved == [2, 4, 6] and best == [1, 3] and loop.log.closed and loop.log.steps == [1, 2, 3, 4, 5, 6]


def test_a_resumed_run_continues_mid_epoch_and_keeps_the_earlier_best():
    from reszoo.train.loop import run_epochs

    loop, saved, best, epoch_of = stand_in_loop([1.0, 1.0, 1.0], accuracies=[0.0, 0.6, 0.7], checkpoint_every=2)
    history = [{"epoch": 1, "val_accuracy": 0.8}]
    assert run_epochs(loop, epochs=3, start_step=4, history=history) == 9
    assert epoch_of == [(1, 1), (2, 0)] and loop.log.total == (9, 4)
    assert saved == [6, 6, 8, 9] and best == []  # 0.6 and 0.7 never beat the checkpointed 0.8


def test_a_diverged_loss_stops_the_loop_naming_the_step_and_closes_the_log():
    from reszoo.train.loop import TrainingDiverged, run_epochs

    loop, saved, _, _ = stand_in_loop([1.0, math.nan], accuracies=[0.5])
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 2 \(epoch 1\)"):
        run_epochs(loop, epochs=1, start_step=0, history=[])
    assert saved == [] and loop.log.closed
