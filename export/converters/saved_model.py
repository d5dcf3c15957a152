"""The `saved_model/` artifact: a copy of the one SavedModel every other conversion was traced from.

Example:
    >>> write(ConvertContext("work/saved_model", "work"), "fp32", "out/saved_model")  # doctest: +SKIP
"""
import shutil


def write(context, precision, path):
    """Copy `context.saved_model_dir` to `path` (fp32 only)."""
    shutil.copytree(context.saved_model_dir, path)
    return path
