"""reszoo's user-facing exceptions. All derive from `export.core.errors.UserError` (one line, exit 2 in the CLI)."""
import difflib
import re

from export.core.errors import UserError

__all__ = ["UserError", "UnknownModelError", "DuplicateModelError", "tensorflow_message"]

TENSORFLOW_DECORATIONS = re.compile(r"\{\{[^}]*\}\}|\[Op:[^\]]*\].*")  # node prefixes, "[Op:Name] ..." tails


def tensorflow_message(text):
    """TensorFlow's error text as one plain line: `{{function_node ...}}` prefixes and `[Op:...]` tails dropped.

    Example:
        >>> tensorflow_message("{{function_node f}} runs/x; No such file [Op:Save] name: ")
        'runs/x; No such file'
    """
    return " ".join(TENSORFLOW_DECORATIONS.sub("", str(text)).split())


class UnknownModelError(UserError):
    """Raised for a model name that is not registered; the message suggests close names."""

    def __init__(self, name, known):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `reszoo list`"
        super().__init__(f"unknown model {name!r}{hint}")
        self.name = name


class DuplicateModelError(ValueError):
    """Raised when two builders register the same name (a programming error, not a user one)."""
