"""The `saved_model/` artifact: a copy of the one SavedModel every other conversion was traced from.

Example:
    >>> import keras, os, tempfile
    >>> from export.converters import ConvertContext
    >>> from export.serving_graph import to_saved_model
    >>> work = tempfile.mkdtemp()
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> saved = to_saved_model(model, os.path.join(work, "saved_model"))["path"]
    >>> sorted(os.listdir(write(ConvertContext(saved, work), "fp32", os.path.join(work, "out", "saved_model"))))
    ['assets', 'fingerprint.pb', 'saved_model.pb', 'variables']
"""
import shutil


def write(context, precision, path):
    """Copy `context.saved_model_dir` to `path` (fp32 only)."""
    shutil.copytree(context.saved_model_dir, path)
    return path
