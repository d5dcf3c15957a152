"""Batches for training and evaluation from either kind of data: in-memory arrays (`reszoo.train.data`) or a
streamed TFRecord set (`reszoo.train.streams`). Sits above both, so neither imports the other back.

Example:
    >>> from reszoo.train.data import default_spec, load_split
    >>> train, held_out = load_split("digits", (32, 32))
    >>> [tuple(x.shape) for x, y in eval_batches(held_out, default_spec("digits", (32, 32)), 400)]
    [(360, 32, 32, 3)]
"""
from reszoo.train.data import eval_dataset, train_dataset
from reszoo.train.streams import Stream, eval_stream_dataset, train_stream_dataset


def train_batches(data, spec, **options):
    """`data.train_dataset` for in-memory data, `streams.train_stream_dataset` for a Stream (same options)."""
    return (train_stream_dataset if isinstance(data, Stream) else train_dataset)(data, spec, **options)


def eval_batches(data, spec, batch_size):
    """`data.eval_dataset` for in-memory data, `streams.eval_stream_dataset` for a Stream."""
    return (eval_stream_dataset if isinstance(data, Stream) else eval_dataset)(data, spec, batch_size)
