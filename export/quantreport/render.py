"""quant_report.md (one table per artifact, worst layer first) and quant_report.png (SQNR per layer in graph
order, one panel per artifact; the 3 worst bars red, the accumulated SQNR as a line).

Example:
    >>> row = {"layer": "conv1", "layers": ["conv1"], "op": "CONV_2D", "position": 0, "dtype": "int8",
    ...        "sqnr_db": 38.0, "rel_err": 0.0126, "sqnr_accumulated_db": 38.0, "rel_err_accumulated": 0.0126,
    ...        "float_min": 0.0, "float_max": 4.5, "scale": 0.0177, "zero_point": -128}
    >>> report = {"artifact": "m_int8.tflite", "format": "tflite", "float_reference": "m_fp32.tflite",
    ...           "samples": 8, "output": {"sqnr_db": 34.8, "rel_err": 0.018}, "rows": [row]}
    >>> markdown({"artifacts": [report]}).splitlines()[10]
    '| 1 | conv1 | CONV_2D | 38.0 | 38.0 | 1.26e-02 | [0, 4.5] | int8 0.0177 / -128 |'
    >>> png({"artifacts": [report]})[:4]
    b'\\x89PNG'
"""
import io
import math

WORST_SHOWN = 3
COLUMNS = ("#", "layer", "op", "SQNR alone (dB)", "SQNR accumulated (dB)", "rel err alone", "float range",
           "quantization")


def _number(value, pattern):
    if value is None:
        return "—"
    return "exact" if value == math.inf else format(value, pattern)


def _quantization(row):
    if row["scale"] is None:
        return f"{row['dtype']} (float activations)"
    scale = row["scale"]
    shown = f"{scale:.3g}" if isinstance(scale, float) else f"{len(scale)} per-channel scales"
    return f"{row['dtype']} {shown} / {row['zero_point']}"


def _layer_cell(row):
    others = [name for name in row["layers"] if name != row["layer"]]
    return row["layer"] + (f" (+{', '.join(others)})" if others else "")


def _cells(rank, row):
    return (str(rank), _layer_cell(row), row["op"], _number(row["sqnr_db"], ".1f"),
            _number(row["sqnr_accumulated_db"], ".1f"), _number(row["rel_err"], ".2e"),
            f"[{_number(row['float_min'], '.3g')}, {_number(row['float_max'], '.3g')}]", _quantization(row))


def artifact_markdown(report):
    """The section of one artifact: a heading, the model output's error, the table worst first."""
    output = report["output"]
    lines = [f"## {report['artifact']}", "",
             f"{report['format']} vs {report['float_reference']}, {report['samples']} samples. Model output: "
             f"SQNR {_number(output['sqnr_db'], '.1f')} dB, relative error {_number(output['rel_err'], '.2e')}.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(i + 1, row)) + " |" for i, row in enumerate(report["rows"])]
    return "\n".join(lines + _fallback_lines(report.get("fallback"))) + "\n"


def _fallback_lines(fallback):
    """What the selective float fallback did for this artifact (rows above are of the plain int8 file)."""
    if not fallback:
        return []
    outcome = (f"passed its gate with {', '.join(fallback['float_layers'])} in float" if fallback["passed"]
               else f"did not pass in {fallback['attempts']} tries; the plain int8 file was kept")
    return ["", f"Float fallback: {outcome} (the rows above are the plain int8 file's)."]


def markdown(document):
    """The whole quant_report.md."""
    head = ["# Per-layer quantization report", "",
            "Rows are quantized ops, worst first by **SQNR alone**: the op run on the float model's inputs "
            "against the float op, so a layer is not blamed for what earlier layers lost. **SQNR accumulated** "
            "is the same tensor with the artifact run end to end. SQNR = 10·log10(Σf²/Σ(q−f)²) over all "
            "samples; 'exact' = no error.", ""]
    return "\n".join(head) + "\n" + "\n".join(artifact_markdown(r) for r in document["artifacts"])


def _plotted(value):
    return math.nan if value is None or value == math.inf else value


def _panel(axes, report):
    rows = sorted(report["rows"], key=lambda row: row["position"])
    worst = {id(row) for row in report["rows"][:WORST_SHOWN]}
    positions = range(len(rows))
    axes.bar(positions, [_plotted(r["sqnr_db"]) for r in rows], label="SQNR alone",
             color=["tab:red" if id(r) in worst else "tab:blue" for r in rows])
    axes.plot(positions, [_plotted(r["sqnr_accumulated_db"]) for r in rows], color="black", marker=".",
              linewidth=1, label="SQNR accumulated")
    axes.set_xticks(list(positions), [r["layer"] for r in rows], rotation=90, fontsize=6)
    axes.set_ylabel("dB")
    axes.set_title(f"{report['artifact']}: output SQNR {_number(report['output']['sqnr_db'], '.1f')} dB "
                   f"(red: the {WORST_SHOWN} worst layers)", fontsize=9)
    axes.legend(fontsize=7)


def png(document):
    """PNG bytes of the SQNR bar charts (matplotlib's Agg canvas; pyplot's global state is not touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    reports = document["artifacts"] or [{"artifact": "no quantized artifact", "rows": [], "output": {"sqnr_db": None}}]
    widest = max(len(r["rows"]) for r in reports)
    figure = Figure(figsize=(min(max(8.0, 0.14 * widest), 40.0), 4.0 * len(reports)), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, report in zip(figure.subplots(len(reports), 1, squeeze=False)[:, 0], reports):
        _panel(axes, report)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
