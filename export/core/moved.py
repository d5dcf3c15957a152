"""Modules that moved in the restructure: importing an old name fails with its new place, not 'No module'.

Example:
    >>> install_moved_modules({"example_pkg.old": "example_pkg.new"})
    >>> import example_pkg.old  # doctest: +SKIP
    ModuleNotFoundError: example_pkg.old moved to example_pkg.new
"""
import sys


class MovedModules:
    """The last import finder: answers only for the old names in `table`, by raising with the new place."""

    def __init__(self, table):
        self.table = dict(table)

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.table:
            raise ModuleNotFoundError(f"{fullname} moved to {self.table[fullname]}", name=fullname)
        return None


def install_moved_modules(table):
    """Append one finder for `table` (old module -> new module) to sys.meta_path (once per table)."""
    if not any(isinstance(finder, MovedModules) and finder.table == dict(table) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules(table))
