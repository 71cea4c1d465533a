"""A finished (or interrupted) search → ``search.md``, ``pareto.png`` and ``front/*.yaml``.

Everything is read from the Optuna study (trial values and user attributes), so the
report can be rewritten at any time, e.g. while other processes still add trials.
"""

import dataclasses
import os

import optuna
import yaml

from tfkd.fileio import atomic_write
from tfkd.search.space import format_figure

__all__ = ["TrialRow", "collect", "pareto_front", "best", "write_report"]

_KB = 1024.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialRow:
    """One trial as the report shows it."""

    number: int
    """Optuna trial number (also the run folder ``trials/<NNNN>``)."""
    state: str
    """``trained``, ``rejected`` (feasibility check), ``failed`` or ``running``; a trained
    trial over a budget is not :attr:`feasible`."""
    values: dict
    """The searched values."""
    sizes: dict
    """Feasibility figures (:class:`tfkd.search.feasibility.Sizes` as a dict), or empty."""
    metrics: dict
    """What the trained run measured (empty unless trained)."""
    note: str = ""
    """Why it was rejected or failed."""
    config: dict = dataclasses.field(default_factory=dict)
    """The candidate's pipeline config (plain data)."""
    feasible: bool = False
    """Trained and within every budget."""


def collect(study):
    """The study's trials as :class:`TrialRow` objects, in trial order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if t.state == optuna.trial.TrialState.COMPLETE:
            state = "trained"
        elif t.state == optuna.trial.TrialState.PRUNED:
            state = "rejected"
        elif t.state == optuna.trial.TrialState.FAIL:
            state = "failed"
        else:
            state = "running"
        rows.append(TrialRow(number=t.number, state=state, values=a.get("values", t.params),
                             sizes=a.get("sizes", {}), metrics=a.get("metrics", {}),
                             note=a.get("rejected") or a.get("failed") or a.get("note", ""),
                             config=a.get("config", {}),
                             feasible=state == "trained" and
                             all(c <= 0 for c in a.get("constraints", [0.0]))))
    return rows


def pareto_front(rows):
    """Trained, feasible trials that no other such trial dominates (accuracy up, flash
    and arena down), sorted by flash."""
    pts = [r for r in rows if r.feasible]

    def key(r):
        m = r.metrics
        return (-m["accuracy_tflm_val"], m["tflite_bytes"], m["arena_bytes"])

    def dominates(a, b):
        ka, kb = key(a), key(b)
        return all(x <= y for x, y in zip(ka, kb)) and ka != kb

    front = [r for r in pts if not any(dominates(o, r) for o in pts)]
    return sorted(front, key=lambda r: (r.metrics["tflite_bytes"], r.number))


def best(front):
    """The front point with the highest validation accuracy (ties: smaller flash, arena)."""
    if not front:
        return None
    return min(front, key=lambda r: (-r.metrics["accuracy_tflm_val"], r.metrics["tflite_bytes"],
                                     r.metrics["arena_bytes"], r.number))


def front_yaml_name(row):
    """File name of a front point's pipeline under ``front/``."""
    return f"{row.config.get('name', f'trial_{row.number:04d}')}.yaml"


def _value(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v)
    return str(v)


def _acc(v):
    return "" if v is None else f"{v:.4f}"


def _plot(path, rows, front, budget):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    trained = [r for r in rows if r.state == "trained"]
    if trained:
        ax.scatter([r.metrics["tflite_bytes"] / _KB for r in trained],
                   [r.metrics["accuracy_tflm_val"] for r in trained], s=28, facecolors="none",
                   edgecolors="0.6", label="trained trials")
    if front:
        sc = ax.scatter([r.metrics["tflite_bytes"] / _KB for r in front],
                        [r.metrics["accuracy_tflm_val"] for r in front],
                        c=[r.metrics["arena_bytes"] / _KB for r in front], cmap="viridis", s=60,
                        edgecolors="k", label="Pareto front", zorder=3)
        fig.colorbar(sc, ax=ax, label="arena (KB, with margin)")
        for r in front:
            ax.annotate(str(r.number), (r.metrics["tflite_bytes"] / _KB,
                                        r.metrics["accuracy_tflm_val"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    rejected = [r for r in rows if r.state == "rejected" and r.sizes]
    if rejected:  # a rug at the bottom: where the feasibility check cut
        floor = ax.get_ylim()[0] if trained else 0.0
        ax.scatter([r.sizes["flash_bytes"] / _KB for r in rejected], [floor] * len(rejected),
                   marker="x", color="tab:red", s=24, label="rejected before training",
                   clip_on=False)
    if budget.get("flash"):
        ax.axvline(budget["flash"] / _KB, color="tab:red", linestyle="--", label="flash budget")
    ax.set_xlabel("flash: int8 .tflite (KB)")
    ax.set_ylabel("TFLite Micro int8 accuracy (validation)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _budget_text(budget):
    parts = [f"{n} ≤ {format_figure(n, v)}" for n, v in budget.items() if v is not None]
    return ", ".join(parts) or "none"


def winner_line(row, out_dir=None):
    """The one-line verdict: the best model within the budget and how to rebuild it."""
    if row is None:
        return "No trained candidate fits the budget."
    m = row.metrics
    where = os.path.join("front", front_yaml_name(row))
    if out_dir:
        where = os.path.join(out_dir, where)
    values = ", ".join(f"{k}={_value(v)}" for k, v in row.values.items())
    return (f"Best within the budget: trial {row.number} ({values}): TFLM int8 accuracy "
            f"{m['accuracy_tflm_val']:.4f} validation / {_acc(m.get('accuracy_tflm'))} test, "
            f"flash {format_figure('flash', m['tflite_bytes'])}, "
            f"arena {format_figure('arena', m['arena_bytes'])}, "
            f"{format_figure('macs', row.sizes.get('macs', 0))} MACs, {m.get('params')} params; "
            f"rebuild with `tfkd run {where}`")


def write_report(out_dir, study, *, wall_s=None):
    """Writes ``search.md``, ``pareto.png`` and ``front/<name>.yaml`` (one per front point).

    Returns:
      ``(rows, front, winner)`` as :func:`collect`, :func:`pareto_front`, :func:`best`.
    """
    rows = collect(study)
    front = pareto_front(rows)
    win = best(front)
    attrs = study.user_attrs
    budget = attrs.get("budget", {})
    front_dir = os.path.join(out_dir, "front")
    os.makedirs(front_dir, exist_ok=True)
    current = {front_yaml_name(r) for r in front}
    for name in os.listdir(front_dir):  # points that later trials pushed off the front
        if name.endswith(".yaml") and name not in current:
            os.unlink(os.path.join(front_dir, name))
    for r in front:
        header = (f"# tfkd search front point: trial {r.number} of {out_dir}\n"
                  f"# TFLM int8 accuracy {r.metrics['accuracy_tflm_val']:.4f} (validation), "
                  f"{_acc(r.metrics.get('accuracy_tflm'))} (test); "
                  f"flash {r.metrics['tflite_bytes']} B, "
                  f"arena {r.metrics['arena_bytes']} B (with margin)\n"
                  f"# Rebuild: tfkd run {os.path.join(front_dir, front_yaml_name(r))}\n")
        atomic_write(os.path.join(front_dir, front_yaml_name(r)),
                     header + yaml.safe_dump(r.config, sort_keys=False))
    _plot(os.path.join(out_dir, "pareto.png"), rows, front, budget)
    counts = {s: sum(r.state == s for r in rows)
              for s in ("trained", "rejected", "failed", "running")}
    names = [d for d in attrs.get("space", {})]
    lines = [f"# Search: {attrs.get('name', '')}", "",
             f"Budget: {_budget_text(budget)} (1 KB = 1024 B; arena = TFLite Micro's host arena "
             "plus `export.arena_margin`). "
             f"Sampler: Optuna {attrs.get('sampler', '')}, objectives: TFLM int8 validation "
             "accuracy ↑, flash ↓, arena ↓. "
             f"{len(rows)} trials: {counts['trained']} trained, {counts['rejected']} rejected by "
             f"the feasibility check before training, {counts['failed']} failed"
             + (f", {counts['running']} running" if counts["running"] else "")
             + (f"; wall time {wall_s:.0f} s (summed over the runs and processes that worked on "
                "this study)." if wall_s is not None else "."), "",
             f"**{winner_line(win)}**", "",
             "## Pareto front", "",
             "Accuracy: TFLite Micro int8 on the validation split (the objective) and the test "
             "split. Flash: the int8 `.tflite`. Arena: with margin. MACs per inference. Params: "
             "the pruned Keras student.", "",
             "| trial | acc val | acc test | flash (B) | arena (B) | MACs | params | "
             + " | ".join(names) + " | pipeline |",
             "|" + "---|" * (8 + len(names))]
    for r in front:
        m = r.metrics
        lines.append(f"| {r.number} | {_acc(m['accuracy_tflm_val'])} | "
                     f"{_acc(m.get('accuracy_tflm'))} | {m['tflite_bytes']} | {m['arena_bytes']} | "
                     f"{r.sizes.get('macs', '')} | "
                     f"{m.get('params', '')} | "
                     + " | ".join(_value(r.values.get(n, "")) for n in names)
                     + f" | [front/{front_yaml_name(r)}](front/{front_yaml_name(r)}) |")
    lines += ["", "![Pareto plot: accuracy against flash, arena as colour](pareto.png)", "",
              "## Search space", ""]
    for n, (key, desc) in attrs.get("space", {}).items():
        lines.append(f"- `{n}` → `{key}`: {desc}")
    lines += ["", "## All trials", "",
              "Rejected candidates were measured (random weights, int8, TFLite Micro) and never "
              "trained.", "",
              "| trial | state | acc val | flash (B) | arena (B) | MACs | values | note |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, s = r.metrics, r.sizes
        flash = m.get("tflite_bytes", s.get("flash_bytes", ""))
        arena = m.get("arena_bytes", s.get("arena_bytes", ""))
        vals = ", ".join(f"{k}={_value(v)}" for k, v in r.values.items())
        state = r.state if r.feasible or r.state != "trained" else "trained, over budget"
        lines.append(f"| {r.number} | {state} | {_acc(m.get('accuracy_tflm_val'))} | {flash} | "
                     f"{arena} | {s.get('macs', '')} | {vals} | {r.note.replace('|', '/')} |")
    atomic_write(os.path.join(out_dir, "search.md"), "\n".join(lines) + "\n")
    return rows, front, win
