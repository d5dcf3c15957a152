"""`reszoo predict` on the shared tiny export (`base_export`: TFLite fp32): tables, --json, per-image errors."""
import json

import pytest

from tests.helpers import assert_one_line_user_error


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """[good RGB png, good grayscale jpg, corrupt png, missing png] of held-out digits."""
    from PIL import Image

    from export.data import sources

    _, held_out = sources.split(sources.load("digits", (32, 32)))
    folder = tmp_path_factory.mktemp("cli_images")
    pixels = held_out.x[:2].round().clip(0, 255).astype("uint8")
    Image.fromarray(pixels[0]).save(folder / "a.png")
    Image.fromarray(pixels[1]).convert("L").save(folder / "b.jpg")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    return [str(folder / name) for name in ("a.png", "b.jpg", "corrupt.png", "missing.png")]


def test_prints_the_artifact_and_a_table_per_image(run_cli, base_export, images):
    done = run_cli("predict", base_export[0], *images[:2], "--top-k", "3", "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "artifact: " in done.stdout and "tiny_fp32.tflite (tflite fp32, default" in done.stdout
    assert all(image in done.stdout for image in images[:2])
    assert done.stdout.count("probability") == 2 and done.stdout.count("│    3 │") == 2


def test_json_is_one_document_with_every_image(run_cli, base_export, images):
    done = run_cli("predict", base_export[0] / "tiny_fp32.tflite", *images[:2], "--json", "--top-k", "10")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert [r["image"] for r in results] == images[:2]
    for result in results:
        assert result["artifact"].endswith("tiny_fp32.tflite") and len(result["top_k"]) == 10
        assert abs(sum(entry["probability"] for entry in result["top_k"]) - 1.0) < 1e-5
        assert set(result["top_k"][0]) == {"label", "index", "probability"}


def test_bad_images_get_one_line_each_and_the_good_ones_are_still_reported(run_cli, base_export, images):
    done = run_cli("predict", base_export[1], *images, "--json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert "corrupt.png" in errors[0] and "missing.png" in errors[1]
    results = json.loads(done.stdout)
    assert ["top_k" in r for r in results] == [True, True, False, False]


def test_unknown_precision_is_one_line_listing_the_manifest(run_cli, base_export, images):
    done = run_cli("predict", base_export[0], images[0], "--precision", "int8")
    assert_one_line_user_error(done, "'int8'", "tiny_fp32.tflite (tflite fp32)")


def test_a_plain_file_takes_no_precision(run_cli, base_export, images):
    assert_one_line_user_error(run_cli("predict", base_export[1], images[0], "--precision", "fp32"),
                               "--artifact and --precision choose within an export dir")
