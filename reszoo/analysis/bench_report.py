"""The benchmark's outputs: bench.md (settings, machine, table, roofline), bench.png (latency vs size) and
bench.json, all rendered first and then written atomically.

Example:
    >>> markdown_table([]).splitlines()[0][:40]
    '| artifact | format | precision | size |'
"""
import io
import itertools
import json
import os

from export.core.cpu import describe_int8_flags
from export.core.files import write_bytes
from export.report import human_size

BENCH_FILES = ("bench.json", "bench.md", "bench.png")


def format_fraction(value):
    """'97.5 %' or 'n/a'.

    Example:
        >>> format_fraction(0.975), format_fraction(None)
        ('97.5 %', 'n/a')
    """
    return "n/a" if value is None else f"{100 * value:.1f} %"


TABLE_COLUMNS = (
    ("artifact", lambda r: r["name"]),
    ("format", lambda r: r["format"]),
    ("precision", lambda r: r["precision"]),
    ("size", lambda r: human_size(r["size_bytes"])),
    ("median ms", lambda r: f"{r['latency_median_ms']:.2f}"),
    ("p90 ms", lambda r: f"{r['latency_p90_ms']:.2f}"),
    ("img/s", lambda r: f"{r['throughput_ips']:.1f}"),
    ("accuracy", lambda r: format_fraction(r["accuracy"])),
    ("top-1 agree", lambda r: format_fraction(r["top1_agreement"])),
    ("speed-up", lambda r: f"{r['speedup_vs_reference']:.2f}x"),
    ("vs fp32", lambda r: "—" if r.get("speedup_vs_fp32") is None else f"{r['speedup_vs_fp32']:.2f}x"),
    ("vs roofline", lambda r: f"{r['measured_over_roofline']:.1f}x"),
)


def markdown_table(rows):
    """The comparison table (one row per artifact, the reference first) as GitHub markdown."""
    lines = ["| " + " | ".join(title for title, _ in TABLE_COLUMNS) + " |",
             "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(row) for _, cell in TABLE_COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def roofline_line(report):
    """One sentence: measured sgemm GFLOP/s, model FLOPs, estimated latency, measured/estimated for the reference."""
    roof, reference = report["roofline"], report["rows"][0]
    return (f"sgemm roofline: numpy float32 {roof['sgemm_size']}x{roof['sgemm_size']} matmul reaches "
            f"{roof['sgemm_gflops']:.1f} GFLOP/s on {report['machine']['threads']} thread(s); the model needs "
            f"{roof['model_flops'] / 1e9:.3f} GFLOPs/image, so the estimate is {roof['estimated_latency_ms']:.2f} ms; "
            f"measured/estimated = {reference['measured_over_roofline']:.2f}x for the Keras reference "
            "(column 'vs roofline' for every artifact).")


def cpu_line(machine):
    """'- CPU: <model> (<arch>, int8 ISA: ...; N logical CPUs), threads: T, 1-min load average ...'."""
    return (f"- CPU: {machine['cpu_model']} ({machine.get('architecture', '?')}, "
            f"{describe_int8_flags(machine.get('int8_flags') or {})}; {machine['logical_cpus']} logical CPUs), "
            f"threads: {machine['threads']}, 1-min load average after the run: {machine['load_average_1min_at_end']}")


def int8_vs_fp32_line(rows):
    """'- int8 vs fp32 (same run, median batch-1 latency): onnx 2.95x faster, tflite 1.80x faster' ("" without
    any int8 row that has an fp32 sibling).

    Example:
        >>> int8_vs_fp32_line([{"format": "onnx", "precision": "int8", "speedup_vs_fp32": 0.5}])
        '- int8 vs fp32 (same run, median batch-1 latency): onnx 0.50x (slower)'
    """
    parts = [f"{r['format']} {r['speedup_vs_fp32']:.2f}x" + (" faster" if r["speedup_vs_fp32"] >= 1 else " (slower)")
             for r in rows if r["precision"] == "int8" and r.get("speedup_vs_fp32") is not None]
    return "- int8 vs fp32 (same run, median batch-1 latency): " + ", ".join(parts) if parts else ""


def render_markdown(report):
    """bench.md: settings, machine, the table and the roofline estimate."""
    settings = report["settings"]
    lines = [
        f"# Benchmark: {report.get('model') or os.path.basename(report['export_dir'])}",
        "",
        f"- date: {report['date_utc']}",
        cpu_line(report["machine"]),
        f"- latency: batch 1, median and p90 of {settings['runs']} runs after {settings['warmup']} warm-up runs; "
        f"throughput: images/s at batch {settings['batch']}",
        f"- accuracy and top-1 agreement with the reference on: {report['data']}",
        f"- speed-up = reference median latency / artifact median latency; reference: {report['reference']} "
        "(Keras, run as a traced tf.function)",
    ]
    if int8_vs_fp32_line(report["rows"]):
        lines.append(int8_vs_fp32_line(report["rows"]))
    if report.get("accuracy_note"):
        lines.append(f"- note: {report['accuracy_note']}")
    if report.get("export"):
        gates = "all passed" if report["export"]["parity_passed"] else "not all passed (see the agreement column)"
        lines.append(f"- exported on the fly by export.export_model in {report['export']['seconds']:.0f} s "
                     f"(temporary dir, deleted); parity gates: {gates}")
    return "\n".join(lines + ["", markdown_table(report["rows"]), "", roofline_line(report), ""])


# Point labels: each goes to the first free spot around its point, tried ring by ring (LABEL_STEP points apart)
# in these directions, right-up first; the text is aligned away from the point, so it never covers its own marker.
LABEL_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
HORIZONTAL_ALIGNMENT = {1: "left", 0: "center", -1: "right"}
VERTICAL_ALIGNMENT = {1: "bottom", 0: "center", -1: "top"}
LABEL_STEP = 6  # points between rings
RINGS_INSIDE = 12  # rings tried inside the axes; past them the nearest free spot wins, wherever it is
LEADER_FROM_RING = 3  # labels this far out get a thin line to their point
LABEL_GAP_PIXELS = 2  # kept free around each label
LABEL_FONT_SIZE = 8


def label_spots():
    """(ring, (dx, dy) offset in points) around a point, nearest first, without end.

    Example:
        >>> [spot for _, spot in itertools.islice(label_spots(), 3)]
        [(6, 6), (6, -6), (-6, 6)]
    """
    for ring in itertools.count(1):
        for dx, dy in LABEL_DIRECTIONS:
            yield ring, (dx * ring * LABEL_STEP, dy * ring * LABEL_STEP)


def _sign(value):
    return (value > 0) - (value < 0)


def text_box(label, renderer):
    """The pixel box of an annotation's text alone (its own extent also spans its leader line)."""
    from matplotlib.text import Text

    label.update_positions(renderer)  # the text's transform follows the annotated point
    return Text.get_window_extent(label, renderer)


def marker_box(axes, point, size):
    """The display box (pixels) of a scatter marker of area `size` (points^2) at data `point`."""
    from matplotlib.transforms import Bbox

    x, y = axes.transData.transform(point)
    radius = size ** 0.5 / 2 * axes.figure.dpi / 72
    return Bbox.from_extents(x - radius, y - radius, x + radius, y + radius)


def _contains(outer, box):
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1


def place_label(axes, text, point, color, taken):
    """Annotate `point` with `text` at the first spot (`label_spots`) whose box meets none of `taken` (display
    boxes of markers and labels placed before) and lies inside the axes, within RINGS_INSIDE rings; past them
    at the first free spot anywhere (a spot far enough out meets nothing, so this ends). The label's box joins
    `taken`; returns the annotation."""
    renderer, frame = axes.figure.canvas.get_renderer(), axes.get_window_extent()
    for ring, (dx, dy) in label_spots():
        leader = {"arrowstyle": "-", "color": color, "lw": 0.6, "shrinkB": 5} if ring >= LEADER_FROM_RING else None
        label = axes.annotate(text, point, xytext=(dx, dy), textcoords="offset points", fontsize=LABEL_FONT_SIZE,
                              color=color, ha=HORIZONTAL_ALIGNMENT[_sign(dx)], va=VERTICAL_ALIGNMENT[_sign(dy)],
                              arrowprops=leader)
        box = text_box(label, renderer).padded(LABEL_GAP_PIXELS)
        if not any(box.overlaps(other) for other in taken) and (ring > RINGS_INSIDE or _contains(frame, box)):
            taken.append(box)
            return label
        label.remove()


def label_some_minor_ticks(value, _position=None):
    """Tick label for log axes: values with leading digit 2, 3, 5 or 7 (majors label the powers of 10).

    Example:
        >>> label_some_minor_ticks(0.3), label_some_minor_ticks(40)
        ('0.3', '')
    """
    leading = f"{value:.0e}"[0]
    return f"{value:g}" if leading in "2357" else ""


def point_label(row):
    """'tflite int8\\nacc 98.6 %' (or 'agree ...' when accuracy is not meaningful)."""
    what, quality = ("acc", row["accuracy"]) if row["accuracy"] is not None else ("agree", row["top1_agreement"])
    return f"{row['format']} {row['precision']}\n{what} {format_fraction(quality)}"


def draw_plot(report):
    """The bench.png figure (Agg canvas, no pyplot state): median latency vs file size (log-log), one point per
    artifact, the reference (row 0) a star, each labelled with its accuracy where no other label or marker is."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    points = []  # (data point, marker area, colour, label) per row
    for index, row in enumerate(report["rows"]):
        point, size = (row["size_bytes"] / 1e6, row["latency_median_ms"]), 70 if index else 140
        marker = axes.scatter(*zip(point), s=size, marker="o" if index else "*")
        points.append((point, size, marker.get_facecolor()[0], point_label(row)))
    axes.set_xscale("log")
    axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(FuncFormatter(label_some_minor_ticks))
    axes.set_xlabel("file size (MB, 10^6 bytes)")
    axes.set_ylabel("median latency, batch 1 (ms)")
    axes.set_title(f"{report.get('model') or 'export'}: latency vs size, {report['machine']['threads']} thread(s), "
                   f"{report['machine']['cpu_model']}, {report['date_utc']}", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.3, y=0.3)
    figure.tight_layout()  # the layout is final before labels are placed: their boxes are measured in pixels
    taken = [marker_box(axes, point, size) for point, size, _, _ in points]
    for point, _, color, text in points:
        place_label(axes, text, point, color, taken)
    return figure


def render_plot(report):
    """bench.png bytes (`draw_plot`)."""
    buffer = io.BytesIO()
    draw_plot(report).savefig(buffer, format="png")
    return buffer.getvalue()


def json_ready(report):
    """The report as JSON text (numpy scalars turned into Python numbers).

    Example:
        >>> import numpy as np
        >>> json_ready({"x": np.float32(0.5)}).replace("\\n", "")
        '{  "x": 0.5}'
    """
    return json.dumps(report, indent=2, default=lambda value: value.item() if hasattr(value, "item") else str(value))


def write_outputs(report, output_dir):
    """Write bench.json, bench.md and bench.png into `output_dir`: all rendered first, then temp file + rename.

    Example:
        >>> write_outputs(report, "bench/")  # doctest: +SKIP
    """
    contents = {"bench.json": json_ready(report).encode(), "bench.md": render_markdown(report).encode(),
                "bench.png": render_plot(report)}
    for name, content in contents.items():
        write_bytes(os.path.join(output_dir, name), content)


def written_files(output_dir):
    """The paths `write_outputs` writes into `output_dir`, in BENCH_FILES order."""
    return [os.path.join(output_dir, name) for name in BENCH_FILES]
