"""tools/degradation_study.py: end to end on a tiny budget (table + plot + json), and its verdict logic."""
import importlib.util
import json
import pathlib
import subprocess
import sys

from PIL import Image

TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "degradation_study.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("degradation_study", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_mode_runs_end_to_end_and_writes_table_plot_and_json(tmp_path):
    out = tmp_path / "study"
    result = subprocess.run([sys.executable, str(TOOL), "--quick", "--steps", "4", "--eval-every", "2", "--seeds", "2",
                             "--width", "4", "--models", "plain20", "resnet20", "--output", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    table = (out / "study.md").read_text()
    assert "| plain20 |" in table and "| resnet20 |" in table and "±" in table
    assert "not evaluated (plain56 and plain20 were not both trained)" in table
    report = json.loads((out / "study.json").read_text())
    assert [r["steps"] for r in report["runs"]] == [[2, 4]] * 4
    assert {(r["model"], r["seed"]) for r in report["runs"]} == {(m, s) for m in ("plain20", "resnet20") for s in (0, 1)}
    assert all(0.0 <= r["final_train_error"] <= 1.0 and r["cpu_seconds"] > 0 for r in report["runs"])
    assert "min CPU" in table
    with Image.open(out / "study.png") as image:
        assert image.format == "PNG"
    assert "wrote" in result.stdout


def test_verdicts_report_both_outcomes_with_numbers():
    tool = load_tool()

    def summary(plain20, plain56, resnet20, resnet56):
        values = {"plain20": plain20, "plain56": plain56, "resnet20": resnet20, "resnet56": resnet56}
        return {m: {"final_train_error": (v, 0.01), "final_held_out_error": (v, 0.01)} for m, v in values.items()}

    reproduced = tool.verdicts(summary(0.05, 0.30, 0.02, 0.01))
    assert [holds for _, holds, _ in reproduced] == [True, True]
    assert "plain56 30.00% ± 1.00 vs plain20 5.00% ± 1.00" in reproduced[0][2]
    assert "(gap 25.00 points, larger than the summed seed std)" in reproduced[0][2]
    failed = tool.verdicts(summary(0.30, 0.05, 0.01, 0.02))
    assert [holds for _, holds, _ in failed] == [False, False]
    assert all("NOT reproduced" in sentence for _, _, sentence in failed)
    assert "not larger than the summed seed std" in failed[1][2]  # 1 point gap vs 2 points of noise


def test_bad_budget_is_rejected_before_training(tmp_path):
    result = subprocess.run([sys.executable, str(TOOL), "--steps", "5", "--eval-every", "2", "--output",
                             str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "divisible" in result.stderr
    assert not (tmp_path / "x").exists()
