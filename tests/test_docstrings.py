"""Every docstring example (`>>>`) in the `export` and `reszoo` packages runs, one test per module.

Modules are found with `pkgutil.walk_packages` (`__main__` modules are left out: importing one runs the CLI) and
their examples run as `doctest.testmod` runs them (module globals, ELLIPSIS and NORMALIZE_WHITESPACE), in an
empty temp dir that has the shipped `saved_models/` linked in, so an example may read
`saved_models/resnet20_digits.keras` by its repository path and a stray relative write lands in the temp dir.
Examples that need a user's file (a PyTorch checkpoint), the network, an export dir or converted TFLite/ONNX files
of a model (an export's work), long training, or that would change process-wide state carry `# doctest: +SKIP`.
"""
import doctest
import importlib
import io
import pathlib
import pkgutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("export", "reszoo")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
LINKED_INTO_CWD = ("saved_models",)
# A broken collector (no modules, no examples found) must fail, not pass vacuously: the packages hold 133 modules
# and about 660 examples that run (not +SKIP) today.
MIN_MODULES, MIN_EXAMPLES = 120, 600


def _raise(name):
    raise ImportError(f"cannot import package {name!r} while walking the packages")


def module_names():
    """Every module of PACKAGES, packages included, except `__main__` modules."""
    names = []
    for package in PACKAGES:
        names.append(package)
        names += [info.name for info in pkgutil.walk_packages(importlib.import_module(package).__path__,
                                                               f"{package}.", onerror=_raise)
                  if info.name.rpartition(".")[2] != "__main__"]
    return names


MODULES = module_names()


def doctests(name):
    """The module's DocTests that hold examples, as `doctest.testmod` finds them."""
    return [test for test in doctest.DocTestFinder().find(importlib.import_module(name)) if test.examples]


def runnable(examples):
    return [example for example in examples if not example.options.get(doctest.SKIP)]


@pytest.fixture
def in_temp_dir(tmp_path, monkeypatch):
    """cwd = an empty temp dir with LINKED_INTO_CWD linked in from the repository."""
    for name in LINKED_INTO_CWD:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, in_temp_dir):
    runner, report = doctest.DocTestRunner(optionflags=FLAGS), io.StringIO()
    results = [runner.run(test, out=report.write) for test in doctests(name)]
    failed, attempted = sum(r.failed for r in results), sum(r.attempted for r in results)
    assert failed == 0, f"{failed} of {attempted} examples of {name} failed:\n{report.getvalue()}"


def test_the_collector_finds_the_examples():
    """Not vacuous: the modules and examples the test above runs are many (a broken walk or finder fails here)."""
    examples = [example for name in MODULES for test in doctests(name) for example in test.examples]
    assert len(MODULES) >= MIN_MODULES and {"export.pipeline", "reszoo.models.cifar"} <= set(MODULES)
    assert len(runnable(examples)) >= MIN_EXAMPLES, f"only {len(runnable(examples))} examples run"
