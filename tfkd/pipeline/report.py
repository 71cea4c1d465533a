"""Metrics → ``report.md`` with PNG plots (training curves, accuracy and size per stage,
the int8 model's confusion matrix)."""

import os

import numpy as np

from tfkd.fileio import atomic_write
from tfkd.pipeline.artifacts import RunFolder

__all__ = ["write_report", "summary_rows", "format_table"]


def summary_rows(metrics):
    """``[(stage, accuracy, params_or_bytes)]`` for the summary table."""
    rows = []
    t = metrics.get("teacher")
    if t:
        rows.append(("teacher (float)", t.get("accuracy"), f"{t.get('params')} params"))
    d = metrics.get("distill", {})
    if d:
        rows.append(("student, distilled (float)", d.get("accuracy"), f"{d.get('params')} params"))
    p = metrics.get("prune", {})
    if p and p.get("method") != "none":  # (not pruned: the distilled row is the model)
        rows.append((f"student, pruned: {p.get('method')} (float)", p.get("accuracy"),
                     f"{p.get('params')} params, sparsity {p.get('sparsity', 0):.2f}"))
    q = metrics.get("quantize", {})
    if q:
        rows.append(("int8 in LiteRT", q.get("accuracy_int8"), ""))
        rows.append(("int8 in TFLite Micro", q.get("accuracy_tflm"),
                     f"agreement {q.get('tflm_litert_agreement', 0):.4f}"))
    e = metrics.get("export", {})
    if e:
        rows.append(("firmware", None, f"{e.get('tflite_bytes')} B flash, {e.get('arena_bytes')} B arena"))
    return rows


def format_table(rows):
    """A plain-text table of :func:`summary_rows`."""
    lines = [f"{'stage':44s} {'test acc':>8s}  size"]
    for name, acc, size in rows:
        a = "" if acc is None else f"{acc:8.4f}"
        lines.append(f"{name:44s} {a:>8s}  {size}")
    return "\n".join(lines)


def _plots(run, metrics):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    curves = []
    for stage in ("teacher", "distill", "prune"):
        h = run.history(stage)
        if h is not None:
            if h and all(isinstance(v, dict) for v in h.values()):
                for k, v in h.items():
                    curves.append((f"{stage}/{k}", v))
            elif h:
                curves.append((stage, h))
    if curves:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for name, h in curves:
            if "val_accuracy" in h:
                axes[0].plot(h["val_accuracy"], label=name)
            if "loss" in h:
                axes[1].plot(h["loss"], label=name)
        axes[0].set_title("validation accuracy")
        axes[1].set_title("training loss")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.legend(fontsize=7)
        plots["curves"] = _save(fig, run, "training_curves.png")
    rows = [(n, a) for n, a, _ in summary_rows(metrics) if a is not None]
    if rows:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.barh([r[0] for r in rows][::-1], [r[1] for r in rows][::-1], color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_xlabel("test accuracy")
        plots["accuracy"] = _save(fig, run, "accuracy_per_stage.png")
    sizes = [(k, metrics[k]["params"]) for k in ("teacher", "distill", "prune")
             if k in metrics and "params" in metrics[k]]
    if sizes:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar([s[0] for s in sizes], [s[1] for s in sizes], color="tab:green")
        ax.set_yscale("log")
        ax.set_ylabel("parameters")
        plots["size"] = _save(fig, run, "size_per_stage.png")
    scored = run.test_predictions()
    if scored is not None:
        y, pred = scored
        labels = metrics.get("data", {}).get("labels", [str(i) for i in range(int(max(y.max(), pred.max())) + 1)])
        n = len(labels)
        cm = np.zeros((n, n), int)
        for a, b in zip(y, pred):
            cm[a, b] += 1
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=6)
        ax.set_xlabel("predicted (int8, TFLite Micro)")
        ax.set_ylabel("true")
        plots["confusion"] = _save(fig, run, "confusion_int8.png")
    return plots


def _save(fig, run, name):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = run.plot(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = run.plot(f".tmp-{name}")
    fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return os.path.relpath(path, run.root)


def write_report(run_dir, metrics):
    """Writes ``report.md`` and its plots into the run folder; returns the report path."""
    run = RunFolder(run_dir)
    plots = _plots(run, metrics)
    lines = ["# tfkd run report", "", "Accuracies are on the test split (speakers never heard "
             "in training); TFLite Micro figures are host figures (x86-64, reference kernels).",
             "", "```", format_table(summary_rows(metrics)), "```", ""]
    q = metrics.get("quantize", {})
    if q:
        lines += [f"- int8 vs float argmax agreement: {q.get('int8_float_agreement')}",
                  f"- TFLM vs LiteRT: agreement {q.get('tflm_litert_agreement')}, largest output "
                  f"difference {q.get('tflm_litert_max_step_diff')} int8 step(s)",
                  f"- zero weights in the converted model's conv/dense kernels: "
                  f"{q.get('weight_sparsity', 0):.3f}",
                  f"- ops: {', '.join(q.get('ops', []))}", ""]
    e = metrics.get("export", {})
    if e:
        lines += [f"- firmware files: {', '.join(sorted(e.get('files', {}).values()))} (in `export/`)",
                  f"- tensor arena: {e.get('arena_bytes_host')} B measured on the host + "
                  f"{e.get('arena_margin_bytes')} B margin = {e.get('arena_bytes')} B", ""]
    d = metrics.get("distill", {})
    if "generations" in d:
        lines += [f"- born-again generations (test accuracy): {d['generations']}", ""]
    for title, key in (("Training curves", "curves"), ("Accuracy per stage", "accuracy"),
                       ("Size per stage", "size"), ("int8 confusion matrix (TFLite Micro)", "confusion")):
        if key in plots:
            lines += [f"## {title}", "", f"![{title}]({plots[key]})", ""]
    atomic_write(run.report, "\n".join(lines))
    return run.report
