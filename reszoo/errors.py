"""reszoo's user-facing exceptions. All derive from `export.core.errors.UserError` (one line, exit 2 in the CLI)."""
import difflib

from export.core.errors import UserError

__all__ = ["UserError", "UnknownModelError", "DuplicateModelError"]


class UnknownModelError(UserError):
    """Raised for a model name that is not registered; the message suggests close names."""

    def __init__(self, name, known):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `reszoo list`"
        super().__init__(f"unknown model {name!r}{hint}")
        self.name = name


class DuplicateModelError(ValueError):
    """Raised when two builders register the same name (a programming error, not a user one)."""
