"""bench.png's point labels never overlap each other or another artifact's marker, and stay on the figure.

The plot is drawn on the Agg canvas and each label's text box is read back in pixels (`get_window_extent`). The
demo case is `make demo`'s digits resnet20 (file sizes of docs/benchmarks.md) on an AVX2-only CPU: TFLite and ONNX
int8 both at ~0.5 ms and 98.9 %, TFLite and ONNX fp32 at ~0.33 ms and 285 KiB. The former fixed offsets, cycled by
row, printed both the int8 labels and the fp32 labels on top of each other there.
"""
import itertools

import pytest
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from reszoo.analysis.bench_report import draw_plot, render_plot

DEMO_ROWS = [  # (format, precision, KiB, median ms, accuracy)
    ("keras", "fp32", 533.4, 1.17, 0.989),
    ("tflite", "fp32", 281.4, 0.32, 0.989),
    ("tflite", "fp16", 156.9, 0.31, 0.989),
    ("tflite", "dynamic", 99.5, 0.27, 0.989),
    ("tflite", "int8", 95.0, 0.50, 0.989),
    ("onnx", "fp32", 287.2, 0.33, 0.989),
    ("onnx", "int8", 167.1, 0.49, 0.989),
]
PAIRS = [DEMO_ROWS[0], DEMO_ROWS[1], ("onnx", "fp32", 281.4, 0.32, 0.989), DEMO_ROWS[4],
         ("onnx", "int8", 95.0, 0.5, 0.989)]  # fp32 and int8 each on one spot
SAME_POINT = [("keras", "fp32", 500.0, 1.0, 0.99)] + [("tflite", f"v{i}", 100.0, 0.5, 0.989) for i in range(8)]
CASES = pytest.mark.parametrize("rows", [DEMO_ROWS, PAIRS, SAME_POINT], ids=["demo", "same-spot-pairs", "one-spot"])


def report(rows):
    return {"rows": [{"name": f"{fmt}_{precision}", "format": fmt, "precision": precision, "size_bytes": kib * 1024,
                      "latency_median_ms": ms, "accuracy": accuracy, "top1_agreement": 1.0}
                     for fmt, precision, kib, ms, accuracy in rows],
            "machine": {"threads": 1, "cpu_model": "AMD EPYC"}, "date_utc": "2026-12-08", "model": "resnet20"}


def label_boxes(figure):
    """{label text: the pixel box of its text (without the annotation's leader line)} of every point label."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    return {text.get_text(): Text.get_window_extent(text, renderer) for text in figure.axes[0].texts}


def marker_boxes(figure):
    """The pixel box of every scatter marker, from the drawn collections (area in points^2)."""
    axes, scale = figure.axes[0], figure.dpi / 72
    boxes = []
    for markers in axes.collections:
        (x, y), = axes.transData.transform(markers.get_offsets())
        radius = markers.get_sizes()[0] ** 0.5 / 2 * scale
        boxes.append(Bbox.from_extents(x - radius, y - radius, x + radius, y + radius))
    return boxes


@CASES
def test_no_two_labels_overlap(rows):
    figure = draw_plot(report(rows))
    boxes = label_boxes(figure)
    assert len(boxes) == len(rows)
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2)
                   if box_a.overlaps(box_b)]
    assert not overlapping, overlapping


@CASES
def test_labels_cover_no_marker_and_stay_on_the_figure(rows):
    figure = draw_plot(report(rows))
    boxes, markers = label_boxes(figure), marker_boxes(figure)
    assert len(markers) == len(rows)
    covered = [text for text, box in boxes.items() if any(box.overlaps(marker) for marker in markers)]
    assert not covered, covered
    outside = [text for text, box in boxes.items() if not figure.bbox.contains(box.x0, box.y0)
               or not figure.bbox.contains(box.x1, box.y1)]
    assert not outside, outside


def test_render_plot_is_a_png():
    assert render_plot(report(DEMO_ROWS)).startswith(b"\x89PNG\r\n\x1a\n")
