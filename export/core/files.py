"""Atomic files and safe output folders: the one place that writes, replaces or removes export output.

- `atomic_write` / `write_bytes` / `write_json`: a temp file in the same folder, then `os.replace`; a reader
  sees the old file or the new one, never half of one; the temp file is removed on any error.
- `check_output_target`: refuse an --output a run must not replace (the input model, the cwd, $HOME, /, a
  folder that is not a previous export) with one-line `UserError`, before any work.
- `staged_dir`: build into `.NAME.partial-*` (with an owner file), then swap it in for NAME atomically;
  removed on any exception; partials of dead runs on this host are removed by the next run.

Example:
    >>> import tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "exports", "r20")
    >>> with staged_dir(out) as work:
    ...     write_json(os.path.join(work, "manifest.json"), {"loss": float("nan")})
    >>> open(os.path.join(out, "manifest.json")).read()
    '{\\n  "loss": null\\n}\\n'
"""
import contextlib
import json
import math
import os
import secrets
import shutil
import socket
import tempfile
import time

from export.core.errors import UserError

EXPORT_MARKER = "manifest.json"  # what makes a folder a previous export (export.manifest.MANIFEST_FILE)
OWNER_FILE = ".reszoo-owner.json"  # inside each partial folder: who is writing it
PARTIAL_TAG, OLD_TAG = ".partial-", ".old-"
FORCE_ADVICE = f"--force only replaces a previous export (a folder with {EXPORT_MARKER})"
PLACES = (("the current directory", os.getcwd), ("the home directory", lambda: os.path.expanduser("~")))


# ----------------------------------------------------------------------------------------------- atomic files
def current_umask():
    """The process umask, read by setting and restoring it.

    Example:
        >>> 0 <= current_umask() <= 0o777
        True
    """
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call `write(temp_path)` for a temp file next to `path` (same extension), then os.replace it onto `path`.

    The file gets mode 0o666 & ~umask; the temp file is removed when `write` or the rename fails.

    Example:
        >>> import pathlib
        >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
        >>> atomic_write(path, lambda temp: pathlib.Path(temp).write_text("done"))
        >>> open(path).read()
        'done'
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}.", suffix=os.path.splitext(path)[1],
                                    dir=folder)  # keeps the extension: keras saves only to *.keras
    os.close(handle)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~current_umask())  # mkstemp creates 0600; give the user's usual mode
        os.replace(temp, path)
    finally:
        if os.path.lexists(temp):
            os.remove(temp)


def write_bytes(path, data):
    """Write `data` (bytes) to `path` atomically; returns `path`.

    Example:
        >>> path = os.path.join(tempfile.mkdtemp(), "bench", "bench.png")
        >>> write_bytes(path, b"png bytes") == path
        True
    """

    def write(temp):
        with open(temp, "wb") as handle:
            handle.write(data)

    atomic_write(path, write)
    return path


def _as_null(value):
    return None


def strict_json(value, non_finite=_as_null):
    """`value` with non-finite floats (NaN, inf) replaced by `non_finite(x)` (default None): valid strict JSON.

    Example:
        >>> strict_json({"a": [1.0, float("nan"), float("-inf")]})
        {'a': [1.0, None, None]}
        >>> strict_json([float("inf")], non_finite=str)
        ['inf']
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else non_finite(value)
    if isinstance(value, dict):
        return {key: strict_json(item, non_finite) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item, non_finite) for item in value]
    return value


def write_json(path, document, non_finite=_as_null):
    """Write `document` as indented strict JSON atomically, creating the folder if needed.

    Non-finite floats become `non_finite(x)` (default null); numpy values become plain numbers and lists.

    Example:
        >>> path = os.path.join(tempfile.mkdtemp(), "out", "report.json")
        >>> write_json(path, {"loss": float("nan")})
        >>> json.load(open(path))
        {'loss': None}
    """
    def plain(value):  # json `default`: numpy scalars/arrays via tolist(), anything else as str
        return strict_json(value.tolist(), non_finite) if hasattr(value, "tolist") else str(value)

    text = json.dumps(strict_json(document, non_finite), indent=2, allow_nan=False, default=plain) + "\n"
    write_bytes(path, text.encode())


# ---------------------------------------------------------------------------------------- the output check
def _real(path):
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _entry(path):
    """Where the entry `path` itself lives (its folder resolved, the last name kept: a link stays a link)."""
    path = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _within(folder, path):
    """'is' when `path` is `folder`, 'contains' when it lies below it, else None."""
    if path == folder:
        return "is"
    return "contains" if os.path.commonpath([folder, path]) == folder else None


def _protection(target, inputs):
    """Why the existing `target` must not be replaced (a phrase + advice), or None."""
    real = _real(target)
    if os.path.dirname(real) == real:
        return f"is a filesystem root; {FORCE_ADVICE}"
    for label, path in inputs.items():
        if isinstance(path, (str, os.PathLike)) and os.path.lexists(path):
            if any(_within(real, place) for place in (_entry(path), _real(path))):
                return f"holds {label} {os.fspath(path)!r}; choose another folder"
    for label, where in PLACES:
        relation = _within(real, _real(where()))
        if relation:
            return f"{relation} {label}; {FORCE_ADVICE}"
    return None


def is_previous_export(path):
    """True for a real folder (not a link) holding manifest.json: the only thing --force may replace.

    Example:
        >>> is_previous_export("/")
        False
    """
    return (os.path.isdir(path) and not os.path.islink(path)
            and os.path.isfile(os.path.join(path, EXPORT_MARKER)))


def check_output_target(output_dir, force=False, inputs=None):
    """Refuse an output folder that a run must not create or replace: one-line UserError, nothing touched.

    inputs: {"the input model": path, "the --data path": path}; absent paths and non-paths are skipped. Refused
    whatever `force` says: a folder that is or contains an input, the cwd, $HOME, or a filesystem root; and
    anything existing that is not a previous export. Without `force`, a previous export is refused too.

    Example:
        >>> check_output_target("exports/never-made-yet", force=True)   # absent: fine
        >>> check_output_target(".", force=True)
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: --output '.' is the current directory; --force only replaces a previous \
export (a folder with manifest.json)
    """
    shown = os.fspath(output_dir)
    if not os.path.lexists(shown):
        return
    problem = _protection(shown, dict(inputs or {}))
    if problem:
        raise UserError(f"--output {shown!r} {problem}")
    if not is_previous_export(shown):
        raise UserError(f"--output {shown!r} exists and is not a previous export (a folder with {EXPORT_MARKER}); "
                        "choose another folder (--force only replaces a previous export)")
    if not force:
        raise UserError(f"--output {shown!r} exists; pass --force to replace it")


# ---------------------------------------------------------------------------------- partial and staged dirs
def pid_alive(pid):
    """True when process `pid` exists on this host (also when it belongs to another user).

    Example:
        >>> pid_alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(partial):
    """The owner dict of a partial folder, or None when it is missing or unreadable."""
    try:
        with open(os.path.join(partial, OWNER_FILE)) as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _provably_dead(partial, name):
    """True only when the owner file says: this target, this host, and a pid that is no longer running."""
    owner = _owner(partial)
    if not owner or owner.get("target") != name or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    return isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and not pid_alive(pid)


def remove_stale_partials(target):
    """Remove `.NAME.partial-*` folders next to `target` left by dead runs on this host; returns their paths.

    A partial without a readable owner file, from another host, or whose pid still runs is kept.

    Example:
        >>> target = os.path.join(tempfile.mkdtemp(), "r20")
        >>> partial = os.path.join(os.path.dirname(target), ".r20.partial-k2j3")
        >>> write_json(os.path.join(partial, OWNER_FILE),  # pid 2**31 - 1: no process has it
        ...            {"pid": 2**31 - 1, "host": socket.gethostname(), "target": "r20"})
        >>> remove_stale_partials(target) == [partial]
        True
    """
    parent, name = os.path.split(os.path.abspath(os.fspath(target)))
    prefix = f".{name}{PARTIAL_TAG}"
    removed = []
    for entry in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        path = os.path.join(parent, entry)
        if entry.startswith(prefix) and not os.path.islink(path) and os.path.isdir(path) \
                and _provably_dead(path, name):
            remove_created(path)
            removed.append(path)
    return removed


def remove_created(path):
    """Remove a file or folder a run created itself (a link is unlinked, never followed): the one delete.

    Refuses (UserError, nothing removed) a path that is or contains the current directory, the home
    directory or a filesystem root, so a wrong path computed by a caller can never take those with it.

    Example:
        >>> remove_created(os.path.expanduser("~"))
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: refusing to remove ... it is or contains the home directory
    """
    real = _real(path)
    protected = [label for label, where in PLACES if _within(real, _real(where()))]
    if protected or os.path.dirname(real) == real:
        raise UserError(f"refusing to remove {os.fspath(path)!r}: it is or contains "
                        f"{protected[0] if protected else 'a filesystem root'}")
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def replace_dir(new, target):
    """Put folder `new` at `target`: rename the old `target` aside (.NAME.old-*), rename `new` in, delete old.

    `target` is only ever the complete old folder or the complete new one (absent for the instant between the
    two renames); when renaming `new` in fails, the old one is renamed back and the error re-raised.

    Example:
        >>> root = tempfile.mkdtemp()
        >>> for name in ("r20", ".r20.partial-x1"):
        ...     write_json(os.path.join(root, name, "manifest.json"), {"name": name})
        >>> replace_dir(os.path.join(root, ".r20.partial-x1"), os.path.join(root, "r20"))
        >>> os.listdir(root), json.load(open(os.path.join(root, "r20", "manifest.json")))
        (['r20'], {'name': '.r20.partial-x1'})
    """
    target = os.path.abspath(os.fspath(target))
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    parent, name = os.path.split(target)
    aside = os.path.join(parent, f".{name}{OLD_TAG}{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    remove_created(aside)


def _write_owner(partial, name):
    write_json(os.path.join(partial, OWNER_FILE), {"pid": os.getpid(), "host": socket.gethostname(),
                                                   "created": time.time(), "target": name})


@contextlib.contextmanager
def staged_dir(target, force=False, inputs=None):
    """Yield a fresh `.NAME.partial-*` folder next to `target`; when the block succeeds it replaces `target`.

    Checks `target` (see `check_output_target`) on entry and again just before the swap, removes stale
    partials of `target`, writes an owner file (pid, host, time) into the partial, and removes the partial on
    any exception, KeyboardInterrupt and SystemExit included.

    Example:
        >>> target = os.path.join(tempfile.mkdtemp(), "r20")
        >>> with staged_dir(target, force=True) as work:
        ...     path = write_bytes(os.path.join(work, "model.tflite"), b"TFL3")
        >>> os.listdir(target)
        ['model.tflite']
    """
    check_output_target(target, force, inputs)
    parent, name = os.path.split(os.path.abspath(os.fspath(target)))
    os.makedirs(parent, exist_ok=True)
    remove_stale_partials(target)
    partial = tempfile.mkdtemp(prefix=f".{name}{PARTIAL_TAG}", dir=parent)
    try:
        os.chmod(partial, 0o777 & ~current_umask())
        _write_owner(partial, name)
        yield partial
        check_output_target(target, force, inputs)
        os.remove(os.path.join(partial, OWNER_FILE))
        replace_dir(partial, target)
    finally:
        if os.path.lexists(partial):
            remove_created(partial)
