"""The optimization gate: held-out accuracy after each prune/cluster/QAT step against the model the user gave.

The parity of every artifact is measured against the optimized model (what was converted), so a pruned
model that lost 6 points still converts "perfectly". This gate compares the optimized model with the
ORIGINAL on the same held-out samples: one row per step, named after what it did and what came before it
("prune 50 %", "prune 50 % + QAT"), each with the original's accuracy, the accuracy after the step and the
change in percentage points; a drop larger than `max_drop` fails the row and the run. Without usable labels
the rows say the gate was not measured (never a silent pass).

Example:
    >>> steps = [{"step": "prune", "label": "prune 50 %", "accuracy": 0.847}]
    >>> gate = evaluate_gate(0.906, steps, max_drop=1.0, options={"prune": 0.5, "finetune_epochs": 2},
    ...                      train_samples=676)
    >>> gate["passed"], gate["rows"][0]["delta_pts"], failure_line(gate)
    (False, -5.9, 'optimization prune 50 %: held-out accuracy 90.6 % -> 84.7 % (-5.9 pts, allowed -1)')
"""
import numpy as np

DEFAULT_MAX_DROP = 1.0  # percentage points of held-out accuracy an optimization may cost

# what to try when a step fails, from what was asked: (option the hint is about, text template)
HINTS = {
    "prune": lambda o, n: f"a lower --prune (e.g. {max(0.05, round(float(o['prune']) / 2, 2))} instead of "
                          f"{o['prune']})" if o.get("prune") else "dropping --prune-structure",
    "cluster": lambda o, n: f"more clusters (e.g. --cluster {2 * int(o['cluster'])})",
    "qat": lambda o, n: "plain int8 without --qat (post-training quantization)",
}
GENERAL_HINTS = (lambda o, n: f"more --finetune-epochs (asked {o.get('finetune_epochs', 2)})",
                 lambda o, n: f"more labeled --data ({n} training images used)")


def step_name(step, options):
    """How one step is named in the table: step_name("prune", {"prune": 0.5}) -> 'prune 50 %'."""
    if step == "prune":
        structure = options.get("prune_structure")
        return f"prune {structure}" if structure else f"prune {float(options['prune']) * 100:.0f} %"
    if step == "cluster":
        return f"cluster {int(options['cluster'])}"
    return "QAT"


def percent(value):
    return "—" if value is None else f"{100 * value:.1f} %"


def evaluate_gate(original_accuracy, steps, max_drop, options, train_samples):
    """The gate document: rows (one per step, against the original), passed, measured, hint.

    `steps`: [{"step", "label", "accuracy" (held-out, None without labels), "note" (optional)}] in order.
    """
    measured = original_accuracy is not None and all(s.get("accuracy") is not None for s in steps)
    rows = [_row(original_accuracy, step, max_drop) for step in steps]
    failed = [row for row in rows if row["passed"] is False]
    gate = {"max_drop_pts": float(max_drop), "original_accuracy": original_accuracy, "measured": measured,
            "rows": rows, "passed": not failed}
    if not measured:
        gate["reason"] = "no usable labels in the held-out data: the accuracy change could not be measured"
    if failed:
        gate["hint"] = hint(failed[0]["step"], options, train_samples)
    return gate


def _row(original_accuracy, step, max_drop):
    row = {"step": step["step"], "label": step["label"], "accuracy_before": original_accuracy,
           "accuracy_after": step.get("accuracy"), "delta_pts": None, "passed": None, "note": step.get("note")}
    if original_accuracy is not None and step.get("accuracy") is not None:
        row["delta_pts"] = round(100 * (step["accuracy"] - original_accuracy), 2)
        row["passed"] = -row["delta_pts"] <= max_drop
    return row


def hint(step, options, train_samples):
    """'try ...' for a failing step: its own option first, then more fine-tuning and more data."""
    tries = [HINTS[step](options, train_samples)] + [h(options, train_samples) for h in GENERAL_HINTS]
    return "try " + ", ".join(tries[:-1]) + " or " + tries[-1]


def row_result(row, max_drop):
    """The table's result cell of one optimization row: 'FAIL: 90.6 % → 84.7 %, −5.9 pts (allowed −1.0)'."""
    if row["passed"] is None:
        return "NOT MEASURED: no usable labels"
    change = f"{percent(row['accuracy_before'])} → {percent(row['accuracy_after'])}, {row['delta_pts']:+.1f} pts"
    note = f"; {row['note']}" if row.get("note") else ""
    return (f"PASS: {change}{note}" if row["passed"]
            else f"FAIL: {change} (allowed −{max_drop:g}){note}")


def failure_line(gate):
    """ONE line for a failing gate ('' when it passed): the first failing row and by how much."""
    failed = [row for row in gate.get("rows", []) if row["passed"] is False]
    if not failed:
        return ""
    row = failed[0]
    return (f"optimization {row['label']}: held-out accuracy {percent(row['accuracy_before'])} -> "
            f"{percent(row['accuracy_after'])} ({row['delta_pts']:+.1f} pts, allowed -{gate['max_drop_pts']:g})")


def against_original(artifacts, original_hits):
    """Add parity["accuracy_delta_vs_original"] (points) to every artifact entry with a measured accuracy.

    `original_hits`: per held-out sample, whether the original model's top-1 is its label (None: not measured).
    Each artifact is compared with the original on the samples it was checked on, the first parity["samples"]
    (fp32 files: 64, `export.gates.checked_samples`), so both accuracies count the same images.

    Example: against_original([{"parity": {"samples": 2, "accuracy": 0.5}}], np.array([True, True, False]))
    -> parity["accuracy_delta_vs_original"] == -50.0
    """
    for artifact in artifacts:
        parity = artifact.get("parity") or {}
        if original_hits is not None and parity.get("accuracy") is not None:
            original = float(np.mean(original_hits[:parity["samples"]]))
            parity["accuracy_delta_vs_original"] = round(100 * (parity["accuracy"] - original), 2)
    return artifacts
