"""Training logs: a rich progress bar (step, loss, accuracy, images/s), TensorBoard events, history.json.

Only the chief logs; other workers get `SilentLog`.

Example:
    >>> log = SilentLog()
    >>> log.step(1, loss=2.3, accuracy=0.1, images_per_second=100.0)
"""
import math
import os
import sys

from export.manifest import write_json

HISTORY_FILE = "history.json"


def write_scalar(tag, value):
    """A TensorBoard scalar event via core `tf.summary.write` (no tensorboard package needed to write)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata)


class SilentLog:
    """Does nothing (non-chief workers, or no output folder and verbose=False)."""

    def start(self, total_steps, done_steps):
        pass

    def step(self, step, **stats):
        pass

    def epoch(self, epoch, record, history):
        pass

    def message(self, text):
        pass

    def close(self):
        pass


class RunLog(SilentLog):
    """Progress bar on stderr when `verbose`; TensorBoard + history.json when `output_dir` is set."""

    def __init__(self, output_dir=None, verbose=True):
        self.output_dir, self.verbose = output_dir, verbose
        self.progress = self.task = self.writer = None
        if output_dir:
            import tensorflow as tf

            self.writer = tf.summary.create_file_writer(os.path.join(output_dir, "tensorboard"))

    def start(self, total_steps, done_steps):
        if not self.verbose:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[stats]}"),
                                 TimeElapsedColumn(), console=Console(file=sys.stderr), transient=False)
        self.task = self.progress.add_task("train", total=total_steps, completed=done_steps, stats="")
        self.progress.start()

    def step(self, step, **stats):
        if self.progress:
            text = (f"loss {stats['loss']:.4f}  acc {stats['accuracy']:.3f}  "
                    f"{stats['images_per_second']:.0f} img/s  input wait {stats.get('input_wait', 0.0):.0%}")
            self.progress.update(self.task, completed=step, stats=text)
        if self.writer:
            with self.writer.as_default(step=step):
                for key, value in stats.items():
                    write_scalar(f"train/{key}", value)

    def epoch(self, epoch, record, history):
        self.message("epoch {epoch}: loss {loss:.4f} acc {accuracy:.4f} val_loss {val_loss:.4f} "
                     "val_acc {val_accuracy:.4f} top5 {val_top5:.4f} {images_per_second:.0f} img/s "
                     "(input wait {input_wait:.0%})".format(**{"input_wait": 0.0, "val_top5": math.nan, **record}))
        if self.writer:
            with self.writer.as_default(step=record["step"]):
                for key in ("val_loss", "val_accuracy", "val_top5", "lr"):
                    if key in record:
                        write_scalar(f"epoch/{key}", record[key])
            self.writer.flush()
        if self.output_dir:
            write_json(os.path.join(self.output_dir, HISTORY_FILE), history)

    def message(self, text):
        if not self.verbose:
            return
        if self.progress:
            self.progress.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self):
        if self.progress:
            self.progress.stop()
        if self.writer:
            self.writer.close()
