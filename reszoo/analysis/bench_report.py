"""The benchmark's outputs: bench.md (settings, machine, table, roofline), bench.png (latency vs size) and
bench.json, all rendered first and then written atomically.

Example:
    >>> markdown_table([]).splitlines()[0][:40]
    '| artifact | format | precision | size |'
"""
import io
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


LABEL_OFFSETS = ((8, 8), (8, -22), (-70, 8), (-70, -22))  # cycled so that nearby points' labels do not collide


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


def render_plot(report):
    """bench.png bytes: median latency vs file size (log-log), one labelled point per artifact with its accuracy;
    the reference (row 0) is a star."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    figure, axes = plt.subplots(figsize=(8, 5), dpi=100)
    for index, row in enumerate(report["rows"]):
        size_mb, latency = row["size_bytes"] / 1e6, row["latency_median_ms"]
        points = axes.scatter([size_mb], [latency], s=70 if index else 140, marker="o" if index else "*")
        axes.annotate(point_label(row), (size_mb, latency), textcoords="offset points", fontsize=8,
                      xytext=LABEL_OFFSETS[index % len(LABEL_OFFSETS)], color=points.get_facecolor()[0])
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
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
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
