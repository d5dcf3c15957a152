"""`reszoo list` / `reszoo info` and the cached zoo table they read."""
import pytest

import reszoo
from reszoo.zoo_table import load_table, normalize

CHEAP = ["resnet20", "plain20", "highway20", "resnet18", "resnet50v2", "densenet121"]


def test_table_covers_exactly_the_registered_models():
    assert sorted(load_table()) == reszoo.list_models(), "run tools/make_zoo_table.py"


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in CHEAP else pytest.mark.slow)
                                  for n in reszoo.list_models()])
def test_table_matches_model_info(name):
    assert load_table()[name] == normalize(reszoo.model_info(name))


def test_list_shows_params_and_flops(run_cli):
    result = run_cli("list", "resnet5*")
    assert result.returncode == 0, result.stderr
    assert "resnet50 " in result.stdout and "resnet50v2" in result.stdout and "resnet18 " not in result.stdout
    resnet50 = next(line for line in result.stdout.splitlines() if "resnet50 " in line)
    assert "25.56M" in resnet50 and "4.09" in resnet50 and "8.18" in resnet50 and "224x224x3" in resnet50


def test_list_all(run_cli):
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for name in reszoo.list_models():
        assert name in result.stdout


def test_info(run_cli):
    result = run_cli("info", "resnet20")
    assert result.returncode == 0, result.stderr
    assert "cifar_resnet" in result.stdout and "arXiv:1512.03385" in result.stdout and "32x32x3" in result.stdout


@pytest.mark.parametrize("args,message", [(("info", "resnet51"), "error: unknown model 'resnet51'; did you mean"),
                                          (("list", "nothing*"), "error: no model matches 'nothing*'")])
def test_user_errors_are_one_line_exit_2(run_cli, args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # TF may log to stderr too
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("--help",), ("list", "--help"), ("info", "--help")])
def test_help(run_cli, args):
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage: reszoo" in result.stdout
