"""The degradation study (He et al. 2015, Fig. 1 / Fig. 6) on the embedded digits or a folder of images.

Trains plain20/plain56, resnet20/resnet56 and highway20/highway56 with one identical recipe (reszoo.train.fit:
SGD momentum 0.9, cosine schedule, no weight decay, no augmentation) for a fixed step budget and several seeds.
The *running* training error (train-mode batch norm, over the batches of each interval) and the held-out
error are logged every `eval_every` steps; at the end each model is evaluated in inference mode on the whole
train split and on the held-out split. Writes, atomically, into --output:

- ``study.png``: training error (solid) and held-out error (dashed) vs step, mean over seeds, one panel per
  connection type (plain / residual / highway), 20 vs 56 layers per panel;
- ``study.md``: Markdown table of final train / held-out error, mean ± std over seeds, and the verdict;
- ``study.json``: every curve and number.

It then checks the sign of the paper's finding (plain56 train error > plain20; resnet56 <= resnet20) and says
whether it reproduced, with the numbers -- whatever the outcome.

Example:
    $ python tools/degradation_study.py --quick --output runs/degradation
    $ python tools/degradation_study.py --data path/to/class_folders --seeds 3
"""
import argparse
import functools
import json
import os
import sys
import tempfile
import time

import numpy as np

MODELS = ("plain20", "plain56", "resnet20", "resnet56", "highway20", "highway56")
PANELS = (("plain", "plain (no skip)"), ("resnet", "residual"), ("highway", "highway (gated skip)"))
# mode -> recipe. The budget is in optimizer steps; eval_every is the logging interval.
RECIPES = {
    "full": {"width": 16, "image_size": 32, "steps": 2000, "eval_every": 100, "seeds": 3, "batch_size": 64,
             "lr": 0.1},
    "quick": {"width": 8, "image_size": 8, "steps": 300, "eval_every": 25, "seeds": 2, "batch_size": 64,
              "lr": 0.1},
}
# The paper's two claims, as (description, deeper model, shallower model, comparison on mean final train error).
CLAIMS = (
    ("degradation: plain56 trains worse than plain20", "plain56", "plain20", "greater"),
    ("residual learning: resnet56 trains at least as well as resnet20", "resnet56", "resnet20", "not_greater"),
)
COMPARISONS = {"greater": lambda deep, shallow: deep > shallow, "not_greater": lambda deep, shallow: deep <= shallow}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="narrow models, small budget (minutes on 2 CPU cores)")
    parser.add_argument("--data", default="digits", help="'digits' or a folder with one sub-folder per class")
    parser.add_argument("--output", default="degradation_study", help="directory for study.png/.md/.json")
    parser.add_argument("--seeds", type=int, help="number of seeds (0..K-1)")
    parser.add_argument("--steps", type=int, help="override the step budget")
    parser.add_argument("--eval-every", type=int, help="override the logging interval (steps)")
    parser.add_argument("--width", type=int, help="override the first-stage width")
    parser.add_argument("--image-size", type=int, help="override the square input size")
    parser.add_argument("--lr", type=float, help="override the peak learning rate")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="subset of the models")
    return parser.parse_args(argv)


def resolve_recipe(args):
    """The mode's recipe with command-line overrides applied; exits with a message for unusable values."""
    recipe = dict(RECIPES["quick" if args.quick else "full"])
    overrides = {"seeds": args.seeds, "steps": args.steps, "eval_every": args.eval_every, "width": args.width,
                 "image_size": args.image_size, "lr": args.lr}
    recipe.update({k: v for k, v in overrides.items() if v is not None})
    recipe["eval_every"] = min(recipe["eval_every"], recipe["steps"])
    if recipe["steps"] % recipe["eval_every"] or min(recipe["seeds"], recipe["steps"], recipe["width"]) < 1:
        sys.exit(f"error: need seeds, steps, width >= 1 and steps divisible by eval_every; got {recipe}")
    return recipe


def train_one(name, data, recipe, seed):
    """Train one model with the shared recipe; returns its curves and final errors."""
    from reszoo.train import fit

    size = (recipe["image_size"], recipe["image_size"])
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fit(name, data, epochs=recipe["steps"] // recipe["eval_every"], batch_size=recipe["batch_size"],
                 steps_per_epoch=recipe["eval_every"], lr=recipe["lr"], weight_decay=0.0, optimizer="sgd",
                 schedule="cosine", augment="none", seed=seed, image_size=size,
                 model_kwargs={"width": recipe["width"]}, verbose=False)
    train_error, test_error = final_errors(result.model, data, size)
    return {
        "model": name, "seed": seed, "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "steps": [h["step"] for h in result.history],
        "running_train_error": [1.0 - h["accuracy"] for h in result.history],
        "held_out_error": [1.0 - h["val_accuracy"] for h in result.history],
        "final_train_error": train_error, "final_held_out_error": test_error,
    }


@functools.lru_cache(maxsize=2)
def cached_split(data, size):
    """reszoo.train.data.load_split(data, size, 3), loaded once per (data, size)."""
    from reszoo.train import data as pipelines

    return pipelines.load_split(data, size, 3)


def final_errors(model, data, size):
    """(train-split error, held-out error) of `model` in inference mode, with the training preprocessing."""
    from export.data.preprocess import normalize
    from reszoo.train import data as pipelines

    train, held_out = cached_split(data, size)
    spec = pipelines.default_spec(data, size, 3)

    def error(part):
        predictions = model.predict(normalize(part.x, spec), batch_size=256, verbose=0)
        return float(np.mean(np.argmax(predictions, axis=-1) != part.y))

    return error(train), error(held_out)


def summarize(runs, models):
    """{model: {metric: (mean, std)}} over seeds for the final errors."""
    summary = {}
    for name in models:
        mine = [r for r in runs if r["model"] == name]
        summary[name] = {metric: (float(np.mean([r[metric] for r in mine])), float(np.std([r[metric] for r in mine])))
                         for metric in ("final_train_error", "final_held_out_error")}
    return summary


def verdicts(summary):
    """One (claim, reproduced or None when a model is missing, sentence with numbers) per CLAIMS entry."""
    results = []
    for claim, deep, shallow, comparison in CLAIMS:
        if deep not in summary or shallow not in summary:
            results.append((claim, None, f"{claim}: not evaluated ({deep} and {shallow} were not both trained)"))
            continue
        (deep_mean, deep_std), (shallow_mean, shallow_std) = (summary[m]["final_train_error"] for m in (deep, shallow))
        holds = COMPARISONS[comparison](deep_mean, shallow_mean)
        gap = abs(deep_mean - shallow_mean)
        beyond_noise = gap > deep_std + shallow_std
        sentence = (f"{claim}: {'REPRODUCED' if holds else 'NOT reproduced'} -- final train error {deep} "
                    f"{percent(deep_mean, deep_std)} vs {shallow} {percent(shallow_mean, shallow_std)} "
                    f"(gap {100 * gap:.2f} points, {'larger' if beyond_noise else 'not larger'} than the summed "
                    f"seed std)")
        results.append((claim, holds, sentence))
    return results


def percent(mean, std):
    return f"{100 * mean:.2f}% ± {100 * std:.2f}"


def markdown(summary, recipe, data, claims, seconds, cpu_seconds):
    """The study's Markdown report: recipe, table of final errors (mean ± std over seeds), verdicts."""
    lines = [
        f"Degradation study on `{data}`: {recipe['steps']} SGD steps (batch {recipe['batch_size']}, peak lr "
        f"{recipe['lr']}, cosine, momentum 0.9, no weight decay, no augmentation), width {recipe['width']}, "
        f"{recipe['image_size']}x{recipe['image_size']} input, seeds 0..{recipe['seeds'] - 1}; "
        f"{seconds / 60:.1f} min wall, {cpu_seconds / 60:.1f} min CPU (all threads) in total.",
        "",
        "| model | final train error | final held-out error |",
        "|---|---|---|",
    ]
    for name, metrics in summary.items():
        lines.append(f"| {name} | {percent(*metrics['final_train_error'])} | "
                     f"{percent(*metrics['final_held_out_error'])} |")
    lines += ["", "Errors: inference-mode top-1 error on the whole train split / held-out split (mean ± std over "
              "seeds).", ""]
    lines += [f"- {sentence}" for _, _, sentence in claims]
    return "\n".join(lines) + "\n"


def mean_curve(runs, name, key):
    mine = [r for r in runs if r["model"] == name]
    return mine[0]["steps"], 100 * np.mean([r[key] for r in mine], axis=0)


def plot(runs, models, recipe, path):
    """Training error (solid) and held-out error (dashed) vs step, one panel per connection type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(prefix, title) for prefix, title in PANELS if any(m.startswith(prefix) for m in models)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False, sharey=True)
    colors = {"20": "tab:blue", "56": "tab:red"}
    for axis, (prefix, title) in zip(axes[0], panels):
        for name in [m for m in models if m.startswith(prefix)]:
            depth = name[len(prefix):]
            steps, train = mean_curve(runs, name, "running_train_error")
            _, held_out = mean_curve(runs, name, "held_out_error")
            axis.plot(steps, train, "-", color=colors.get(depth), label=f"{name} train")
            axis.plot(steps, held_out, "--", color=colors.get(depth), label=f"{name} held-out")
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("error (%)")
    figure.suptitle(f"mean of {recipe['seeds']} seed(s); width {recipe['width']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90, format="png")
    plt.close(figure)


def write_outputs(output, runs, summary, recipe, data, claims, models, seconds, cpu_seconds):
    """Write study.json/.md/.png into `output` atomically (temp dir, then os.replace per file)."""
    os.makedirs(output, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output, prefix=".tmp-") as temp:
        with open(os.path.join(temp, "study.json"), "w", encoding="utf-8") as handle:
            json.dump({"recipe": recipe, "data": data, "runs": runs, "summary": summary,
                       "claims": [{"claim": c, "reproduced": r, "sentence": s} for c, r, s in claims]},
                      handle, indent=1)
        with open(os.path.join(temp, "study.md"), "w", encoding="utf-8") as handle:
            handle.write(markdown(summary, recipe, data, claims, seconds, cpu_seconds))
        plot(runs, models, recipe, os.path.join(temp, "study.png"))
        for name in ("study.json", "study.md", "study.png"):
            os.replace(os.path.join(temp, name), os.path.join(output, name))


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    recipe = resolve_recipe(args)
    from export.core.errors import UserError

    started, runs = time.perf_counter(), []
    try:
        for seed in range(recipe["seeds"]):
            for name in args.models:
                runs.append(train_one(name, args.data, recipe, seed))
                print(f"{name} seed {seed}: final train error {100 * runs[-1]['final_train_error']:.2f}%, "
                      f"held-out {100 * runs[-1]['final_held_out_error']:.2f}% ({runs[-1]['seconds']} s)",
                      flush=True)
    except UserError as error:
        sys.exit(f"error: {error}")
    summary = summarize(runs, args.models)
    claims = verdicts(summary)
    seconds, cpu_seconds = time.perf_counter() - started, sum(r["cpu_seconds"] for r in runs)
    write_outputs(args.output, runs, summary, recipe, args.data, claims, args.models, seconds, cpu_seconds)
    print(markdown(summary, recipe, args.data, claims, seconds, cpu_seconds))
    print(f"wrote {os.path.join(args.output, 'study.png')}, study.md, study.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
