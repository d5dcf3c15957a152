"""The `.keras` artifact: the model saved with its metadata (preprocessing, labels, data source) embedded.

Example:
    >>> import keras, tempfile
    >>> from export.converters import ConvertContext
    >>> from export.core.metadata import read_metadata
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> context = ConvertContext("work/saved_model", tempfile.mkdtemp(), model=model,
    ...                          keras_metadata={"labels": ["a", "b"]})
    >>> read_metadata(write(context, "fp32", os.path.join(context.work_dir, "m.keras")))["labels"]
    ['a', 'b']
"""
import os

from export.core.files import current_umask


def write(context, precision, path):
    """Save `context.model` to `path` with `context.keras_metadata` (fp32 only: the table offers nothing else)."""
    from export.core.metadata import save_model

    save_model(context.model, path, context.keras_metadata)
    os.chmod(path, 0o666 & ~current_umask())  # save_model's temp file is private; artifacts are not
    return path
