"""`reszoo diagnose`: writes diagnose.json + diagnose.png for several models; user mistakes exit 2 in one line."""
import json
import os

from PIL import Image


def test_diagnose_writes_json_and_plot_for_several_models(run_cli, tmp_path):
    out = tmp_path / "diag"
    result = run_cli("diagnose", "plain20", "highway20", "--steps", "2", "--width", "4", "--image-size", "16",
                     "--batch-size", "16", "--output", out)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "diagnose.json").read_text())
    assert [m["name"] for m in report["models"]] == ["plain20", "highway20"]
    for model in report["models"]:
        for snapshot in model["snapshots"].values():
            assert len(snapshot["blocks"]) == 9
            assert all(row["grad_norm"] > 0 for row in snapshot["blocks"])
    assert report["models"][1]["highway"] and not report["models"][0]["highway"]
    assert report["models"][0]["snapshots"]["trained"]["step"] == 2
    assert set(report["thresholds"]) == {"vanishing", "exploding"}
    with Image.open(out / "diagnose.png") as image:
        assert image.format == "PNG" and image.size[0] > image.size[1] > 100
    assert not [name for name in os.listdir(out) if name.startswith(".tmp-")]
    assert "plain20" in result.stdout and "wrote" in result.stdout


def test_unknown_model_is_one_line_exit_2_and_writes_nothing(run_cli, tmp_path):
    out = tmp_path / "diag"
    result = run_cli("diagnose", "resnet20", "resnet2O", "--output", out)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown model 'resnet2O'")
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_data_folder_is_a_user_error(run_cli, tmp_path):
    result = run_cli("diagnose", "resnet20", "--data", tmp_path / "missing", "--output", tmp_path / "d")
    assert result.returncode == 2 and "error: data" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()


def test_output_that_is_a_file_is_refused_before_any_work(run_cli, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    result = run_cli("diagnose", "resnet20", "--output", target)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and str(target) in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert target.read_text() == "keep me"


def test_report_with_non_finite_norms_is_written_as_strict_json_and_plotted(tmp_path):
    """diagnose_report plots the raw numbers (NaN/inf skipped) and writes them as 'nan'/'inf' strings."""
    from reszoo.analysis.diagnose_report import summary_lines, write_outputs

    blocks = [{"name": f"conv2_block{i}", "grad_norm": norm, "gate_mean": 0.2} for i, norm in
              enumerate([1.0, float("nan"), float("inf")], 1)]
    snapshot = {"step": 0, "loss": 2.3, "blocks": blocks, "ratio_first_last": float("nan"), "flags": ["non_finite"]}
    report = {"recipe": {"steps": 1}, "models": [{"name": "m", "highway": True,
                                                  "snapshots": {"init": snapshot, "trained": snapshot}}]}
    json_path, png_path = write_outputs(report, tmp_path / "out")
    written = json.loads(open(json_path).read())
    assert [b["grad_norm"] for b in written["models"][0]["snapshots"]["init"]["blocks"]] == [1.0, "nan", "inf"]
    with Image.open(png_path) as image:
        assert image.format == "PNG"
    assert sorted(os.listdir(tmp_path / "out")) == ["diagnose.json", "diagnose.png"]
    assert "non_finite" in next(summary_lines(report))
