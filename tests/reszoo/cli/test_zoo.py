"""`reszoo list` / `reszoo info` and the cached zoo table they read."""
import pytest
from click.testing import CliRunner

import reszoo
from reszoo.catalog import load_table
from reszoo.cli.zoo import info_command, list_command
from reszoo.models.zoo_table import normalize

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


def test_list_all_in_process():
    result = CliRunner().invoke(list_command, [])
    assert result.exit_code == 0, result.output
    for name in reszoo.list_models():
        assert f" {name} " in result.output


def test_info_in_process():
    result = CliRunner().invoke(info_command, ["resnet20"])
    assert result.exit_code == 0, result.output
    assert "cifar_resnet" in result.output and "arXiv:1512.03385" in result.output and "32x32x3" in result.output
    assert "269,722" in result.output  # trainable parameters (paper: 0.27 M)


@pytest.mark.parametrize("args,message", [(("info", "resnet51"), "error: unknown model 'resnet51'; did you mean"),
                                          (("list", "nothing*"), "error: no model matches 'nothing*'")])
def test_user_errors_are_one_line_exit_2(run_cli, args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # TF may log to stderr too
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_help(run_cli):
    result = run_cli("info", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: reszoo info [OPTIONS] NAME" in result.stdout


@pytest.mark.parametrize("command", [list_command, info_command])
def test_help_in_process(command):
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and command.help.split()[0] in result.output


def test_info_features_lists_each_stage_in_process():
    result = CliRunner().invoke(info_command, ["resnet20", "--features"])
    assert result.exit_code == 0, result.output
    stages = [line.split(None, 1)[1] for line in result.output.splitlines() if line.startswith("feature ")]
    assert stages == ["stage1: stride 1, 16 channels, 32x32", "stage2: stride 2, 32 channels, 16x16",
                      "stage3: stride 4, 64 channels, 8x8"]
    assert "classes" not in result.output and "features_only=True" in result.output


@pytest.mark.parametrize("args,fragments", [(("resnet20", "--features", "--output-stride", "16"),
                                             ("resnet20: output_stride=16 is not offered for the CIFAR ResNets",)),
                                            (("resnet18", "--output-stride", "16"), ("add --features",))])
def test_info_features_refusals_are_one_line_exit_2(run_cli, args, fragments):
    from tests.helpers import assert_one_line_user_error

    assert_one_line_user_error(run_cli("info", *args), *fragments)


def test_list_and_info_read_the_catalog_which_is_the_registry():
    from reszoo.catalog import model_facts, model_names

    assert model_names() == reszoo.list_models() and model_names("resnet5*") == reszoo.list_models("resnet5*")
    assert model_facts("resnet20") == load_table()["resnet20"]


def test_list_pretrained_shows_both_kinds_from_one_list(run_cli):
    from reszoo.weights.presets import list_pretrained

    result = run_cli("list", "--pretrained", "resnet50*")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ resnet50")]
    expected = [p for p in list_pretrained() if p.model.startswith("resnet50")]
    assert len(rows) == len(expected) and any(p.tag == "imagenet" for p in expected)
    assert f"reszoo pretrained weights ({len(expected)})" in result.stdout
    assert any("torchvision:IMAGENET1K_V2" in row and "80.86" in row for row in rows)
    assert any(row.split("│")[1].strip() == "resnet50" and " imagenet " in row and "74.90" in row for row in rows)
    assert any(row.split("│")[1].strip() == "resnet50v2" and " imagenet " in row and "76.00" in row for row in rows)
