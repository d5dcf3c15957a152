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
