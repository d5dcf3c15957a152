"""The `.keras` artifact: the model saved with its metadata (preprocessing, labels, data source) embedded.

Example:
    >>> write(ConvertContext("work/saved_model", "work", model=model), "fp32", "out/m.keras")  # doctest: +SKIP
"""
import os

from export.core.files import current_umask


def write(context, precision, path):
    """Save `context.model` to `path` with `context.keras_metadata` (fp32 only: the table offers nothing else)."""
    from export.core.metadata import save_model

    save_model(context.model, path, context.keras_metadata)
    os.chmod(path, 0o666 & ~current_umask())  # save_model's temp file is private; artifacts are not
    return path
