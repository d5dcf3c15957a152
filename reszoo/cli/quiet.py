"""Import TensorFlow without its start-up banner (CUDA probes, CPU-feature notes) on the terminal.

TensorFlow's C++ layer writes those lines to file descriptor 2 before any Python logging is set up, so
`TF_CPP_MIN_LOG_LEVEL` cannot silence all of them. The CLI imports TF once with fd 2 pointed at a temp file;
if the import fails, the captured text is replayed so nothing useful is lost.

Example:
    >>> import_tensorflow_quietly()  # doctest: +SKIP
"""
import os
import sys
import tempfile


def import_tensorflow_quietly():
    """Import tensorflow and keras with fd 2 captured; replay the capture if the import raises."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved_fd, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
