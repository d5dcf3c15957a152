"""Process memory: the peak resident set size, and handing freed memory back to the OS between export steps.

Converters (TFLite's MLIR, tf2onnx, onnxruntime's quantizer) free hundreds of MB when they finish, but glibc
keeps freed heap pages mapped, so without a trim the next step's peak stacks on the last one's leftovers.

Example:
    >>> release_memory(); peak_rss_mb() > 0
    True
"""
import ctypes
import ctypes.util
import functools
import gc
import sys


def peak_rss_mb():
    """This process's peak resident memory in MiB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB on Linux


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None (macOS, musl, Windows)."""
    name = ctypes.util.find_library("c")
    library = ctypes.CDLL(name) if name else None
    return getattr(library, "malloc_trim", None)


def release_memory():
    """Collect Python's garbage cycles and return free heap pages to the OS (glibc); a no-op elsewhere."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
