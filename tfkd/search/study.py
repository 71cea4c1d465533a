"""The search loop: Optuna proposes, the feasibility check rejects, the pipeline trains.

Layout of a search folder ``OUT``::

    study.db                   Optuna's SQLite storage (--resume, several processes)
    sizes.json                 feasibility figures per architecture (a cache)
    shared/<key>/              data and teacher stages, one per (seed, data, features, teacher)
    trials/<NNNN>/             one run folder per trained trial (as ``tfkd run`` writes it)
    trials/<NNNN>/search.log   the pipeline's output for that trial
    front/<name>.yaml          one ready pipeline per Pareto-front point
    search.md  pareto.png      the report

Objectives: TFLite Micro int8 accuracy on the validation split (up; the test split
stays out of the choice and is reported beside it), flash and arena (down). Budgets
are Optuna constraints; a candidate that breaks one is recorded as PRUNED with its
measured sizes and never trains.
"""

import contextlib
import dataclasses
import fcntl
import os
import shutil
import time
import warnings

import optuna

from tfkd.config import ConfigError, to_dict
from tfkd.pipeline.artifacts import RunFolder, load_data, load_quantized
from tfkd.pipeline import keys as keys_lib
from tfkd.pipeline import runner as runner_lib
from tfkd.pipeline import stages as stage_lib
from tfkd.pipeline.runner import BudgetError, run_pipeline
from tfkd.search import feasibility
from tfkd.search.space import candidate_config, format_figure
from tfkd.export.micro import TFLMUnavailableError
from tfkd.verify import score_int8

__all__ = ["SearchError", "open_study", "run_search", "dry_run", "DIRECTIONS", "STUDY_NAME"]

STUDY_NAME = "tfkd-search"
#: validation TFLM accuracy, flash bytes, arena bytes.
DIRECTIONS = ("maximize", "minimize", "minimize")


class SearchError(RuntimeError):
    """A search that cannot start or continue; the message says why."""


class _TrialFailed(RuntimeError):
    """A trial whose pipeline failed; the search goes on."""


def _set_constraints(trial, values, budgets_ok=True):
    """Records the constraints, once per trial: the relative excess over each search budget,
    and 1 when the trained run broke one of the pipeline's own ``budgets`` (feasible: all <= 0)."""
    values = list(values) + [0.0 if budgets_ok else 1.0]
    trial.set_user_attr("constraints", values)
    for name, v in zip(("flash", "arena", "macs", "budgets"), values):
        trial.set_constraint(name, v)


def _sampler(settings, offset):
    # A resumed study gets a new sampler; offsetting its seed by the trials already run
    # keeps it from replaying the first run's random start-up candidates.
    seed = settings.seed + offset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if settings.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(
                seed=seed, population_size=max(2, settings.startup_trials))
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=settings.startup_trials, multivariate=True)


def _fingerprint(cfg, settings):
    raw = to_dict(cfg)
    raw.pop("search", None)
    raw.pop("name", None)
    parts = {k: keys_lib.short_hash(v, 12) for k, v in raw.items()}
    parts["search.budget"] = keys_lib.short_hash(dataclasses.asdict(settings.budget), 12)
    parts["search.space"] = keys_lib.short_hash([dataclasses.asdict(d) for d in settings.space], 12)
    parts["search.sampler"] = keys_lib.short_hash([settings.sampler, settings.seed,
                                                   settings.startup_trials], 12)
    return parts


def open_study(out_dir, cfg, settings, *, resume):
    """Creates (or, with ``resume``, continues) the study in ``out_dir/study.db``.

    Raises:
      SearchError: ``out_dir`` holds a search and ``resume`` is false, or the pipeline,
        budget or space differ from the search being resumed (the message names the key).
    """
    db = os.path.join(os.path.abspath(out_dir), "study.db")
    if os.path.exists(db) and not resume:
        raise SearchError(f"output folder {out_dir} holds a search: pass --resume to continue it, "
                          "or choose another --out")
    os.makedirs(out_dir, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # The heartbeat lets a resumed search mark trials of a killed process as failed.
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{db}", heartbeat_interval=60, grace_period=180,
            engine_kwargs={"connect_args": {"timeout": 60}})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.load_study(study_name=STUDY_NAME, storage=storage) \
        if STUDY_NAME in [s.study_name for s in optuna.get_all_study_summaries(storage)] else None
    offset = len(probe.trials) if probe else 0
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, load_if_exists=True,
                                directions=list(DIRECTIONS), sampler=_sampler(settings, offset))
    mine = _fingerprint(cfg, settings)
    old = study.user_attrs.get("fingerprint")
    if old:
        changed = [k for k in mine if old.get(k) != mine[k]]
        if changed:
            raise SearchError(f"--resume: {changed[0]} differs from the search in {out_dir} "
                              "(resume with the same pipeline, --set, budget and space, "
                              "or choose another --out)")
    else:
        study.set_user_attr("fingerprint", mine)
        study.set_user_attr("name", cfg.name)
        study.set_user_attr("budget", dataclasses.asdict(settings.budget))
        study.set_user_attr("space", {d.name: [d.key, d.describe()] for d in settings.space})
        study.set_user_attr("sampler", f"{settings.sampler} (seed {settings.seed})")
    return study


@contextlib.contextmanager
def _locked(path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _link_or_copy(src, dst):
    # Stage folders are never written after they are finished, so a hard link is safe.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _shared_stages(cfg):
    return ("data", "teacher") if cfg.teacher is not None else ("data",)


def _shared_keys(cfg):
    """The runner's keys of the shared stages (``{name: key}``), computed as it does."""
    raw, keys = to_dict(cfg), {}
    for stage in stage_lib.STAGES:
        if stage.name in _shared_stages(cfg) and stage.enabled(cfg):
            keys[stage.name] = keys_lib.next_key(stage, cfg, raw, keys)
    return keys


def prepare_shared(cfg, out_dir, echo):
    """Runs (once, under a file lock) the data and teacher stages of ``cfg``'s feature setting.

    The shared folder is named by the last shared stage's key, so trials whose data and
    teacher stages would be the same (same seed, data files, features and teacher) share it.

    Returns:
      The shared run folder.
    """
    stages = _shared_stages(cfg)
    keys = _shared_keys(cfg)
    folder = os.path.join(out_dir, "shared", keys[stages[-1]])
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with _locked(folder + ".lock"):
        records = [RunFolder(folder).record(s) for s in stages]
        if all(r is not None and r.get("key") == keys[s] for r, s in zip(records, stages)):
            return folder
        log = folder + ".log"
        echo(f"  shared stages {', '.join(stages)} for features "
             f"{cfg.features.num_channels} ch x {cfg.features.num_frames} frames "
             f"(log: {os.path.relpath(log, out_dir)})")
        with open(log, "a") as f:
            run_pipeline(cfg, folder, resume=True, tty=False, stop_after=stages[-1],
                         echo=lambda m: print(m, file=f, flush=True))
    return folder


def _seed_run(shared, run_dir, stages):
    """Copies the shared stage folders and their metrics into a fresh trial run folder,
    so that ``run_pipeline(..., resume=True)`` skips them (their records match)."""
    os.makedirs(run_dir, exist_ok=True)
    runner_lib.mark_run_folder(run_dir)  # the runner continues only folders marked as its own
    src, dst = RunFolder(shared), RunFolder(run_dir)
    metrics = {}
    for s in stages:
        if not os.path.exists(dst.stage(s)):
            shutil.copytree(src.stage(s), dst.stage(s), copy_function=_link_or_copy)
        metrics[s] = src.record(s)["metrics"]
    dst.write_metrics(metrics)


def _validation_accuracy(run_dir):
    rf = RunFolder(run_dir)
    x, y = load_data(rf.stage("data")).arrays("validation")
    scores, _ = score_int8(load_quantized(rf.stage("quantize")).flat, x, y)
    return float(scores["accuracy_tflm"])


def _describe(values):
    out = []
    for k, v in values.items():
        if isinstance(v, float):
            out.append(f"{k}={v:.3g}")
        elif isinstance(v, (list, tuple)):
            out.append(f"{k}={'x'.join(str(x) for x in v)}")
        else:
            out.append(f"{k}={v}")
    return " ".join(out)


def _sizes_line(flash, arena, macs):
    return (f"flash {format_figure('flash', flash)}, arena {format_figure('arena', arena)}, "
            f"{format_figure('macs', macs)} MACs")


class _Objective:
    """One trial: suggest, measure, reject or train, score."""

    def __init__(self, cfg, settings, out_dir, echo):
        self.cfg, self.settings, self.out_dir, self.echo = cfg, settings, out_dir, echo
        self.cache = feasibility.SizeCache(os.path.join(out_dir, "sizes.json"))
        self.labels = feasibility.num_labels(cfg)

    def __call__(self, trial):
        s, n = self.settings, trial.number
        values = {d.name: d.suggest(trial) for d in s.space}
        name = f"{self.cfg.name}_t{n:04d}"
        head = f"trial {n}: {_describe(values)}"
        try:
            tcfg, _ = candidate_config(self.cfg, values, s.budget, name=name)
        except ConfigError as e:
            return self._reject(trial, head, f"config refused: {e}")
        try:
            sizes, cached = self.cache.get(tcfg, self.labels)
        except TFLMUnavailableError:
            raise  # no candidate can be measured: the search stops with this one line
        except (ValueError, RuntimeError) as e:  # build or conversion refused
            return self._reject(trial, head, f"{type(e).__name__}: {str(e).splitlines()[0]}")
        trial.set_user_attr("values", values)
        trial.set_user_attr("config", to_dict(tcfg))
        trial.set_user_attr("sizes", {k: v for k, v in dataclasses.asdict(sizes).items()})
        b = s.budget
        broken = b.broken(sizes.flash_bytes, sizes.arena_bytes, sizes.macs)
        took = "cached" if cached else f"{sizes.seconds:.1f} s"
        figures = (sizes.flash_bytes, sizes.arena_bytes, sizes.macs)
        if broken:
            _set_constraints(trial, b.constraints(*figures))
            return self._reject(trial, head,
                                f"over budget ({'; '.join(broken)}; measured in {took})")
        self.echo(f"{head}\n  feasible: {_sizes_line(*figures)} (measured in {took}); training")
        return self._train(trial, tcfg, n)

    def _reject(self, trial, head, why):
        trial.set_user_attr("rejected", why)
        if "constraints" not in trial.user_attrs:  # not measurable: as bad as it gets
            _set_constraints(trial, [1.0, 1.0, 1.0], budgets_ok=False)
        self.echo(f"{head}\n  rejected, not trained: {why}")
        raise optuna.TrialPruned(why)

    def _train(self, trial, tcfg, n):
        start = time.perf_counter()
        run_dir = os.path.join(self.out_dir, "trials", f"{n:04d}")
        trial.set_user_attr("run_dir", os.path.relpath(run_dir, self.out_dir))
        try:
            shared = prepare_shared(tcfg, self.out_dir, self.echo)
            _seed_run(shared, run_dir, _shared_stages(tcfg))
            broke = None
            with open(os.path.join(run_dir, "search.log"), "a") as log:
                try:
                    metrics = run_pipeline(tcfg, run_dir, resume=True, tty=False,
                                           echo=lambda m: print(m, file=log, flush=True))
                except BudgetError as e:  # the run finished but `tfkd run` would exit 1
                    broke = str(e)
                    print(f"budget: {e}", file=log, flush=True)
                    metrics = RunFolder(run_dir).read_metrics()
            val_acc = _validation_accuracy(run_dir)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one trial's failure must not end the search
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            trial.set_user_attr("failed", f"{type(e).__name__}: {msg}")
            self.echo(f"  failed: {type(e).__name__}: {msg} "
                      f"(log: {os.path.relpath(run_dir, self.out_dir)}/search.log)")
            raise _TrialFailed(msg) from None
        q, e = metrics["quantize"], metrics["export"]
        macs = trial.user_attrs["sizes"]["macs"]
        b = self.settings.budget
        _set_constraints(trial, b.constraints(e["tflite_bytes"], e["arena_bytes"], macs),
                         budgets_ok=broke is None)
        if broke:
            trial.set_user_attr("note", f"infeasible: {broke}")
            self.echo(f"  infeasible: {broke}")
        trial.set_user_attr("metrics", {
            "accuracy_tflm_val": val_acc, "accuracy_tflm": q.get("accuracy_tflm"),
            "accuracy_float": q.get("accuracy_float"), "tflite_bytes": e["tflite_bytes"],
            "arena_bytes": e["arena_bytes"], "arena_bytes_host": e["arena_bytes_host"],
            "params": metrics.get("prune", {}).get("params"),
            "teacher_accuracy": metrics.get("teacher", {}).get("accuracy"),
            "seconds": round(time.perf_counter() - start, 1)})
        self.echo(f"  trained in {time.perf_counter() - start:.0f} s: TFLM int8 accuracy "
                  f"{val_acc:.4f} (validation), {q.get('accuracy_tflm', float('nan')):.4f} (test); "
                  f"{_sizes_line(e['tflite_bytes'], e['arena_bytes'], macs)}")
        return val_acc, float(e["tflite_bytes"]), float(e["arena_bytes"])


def run_search(cfg, settings, out_dir, *, resume=False, echo=print):
    """Runs ``settings.trials`` more trials of the search in ``out_dir``.

    Args:
      cfg: the base :class:`tfkd.config.PipelineConfig`.
      settings: :class:`tfkd.search.space.SearchSettings`.
      out_dir: the search folder (see the module docstring).
      resume: continue the study in ``out_dir`` (the new trials add to it).
      echo: progress output.

    Returns:
      The Optuna study.

    Raises:
      SearchError: see :func:`open_study`.
    """
    study = open_study(out_dir, cfg, settings, resume=resume)
    objective = _Objective(cfg, settings, out_dir, echo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=settings.trials, catch=(_TrialFailed,),
                       gc_after_trial=True)
    return study


def dry_run(cfg, settings, *, echo=print):
    """Samples ``settings.samples`` candidates at random and measures them, without training.

    Returns:
      A list of ``(values, Sizes or None, broken)`` where ``broken`` lists the budgets a
      candidate breaks (or why it cannot be built).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=list(DIRECTIONS),
                                sampler=optuna.samplers.RandomSampler(seed=settings.seed))
    cache = feasibility.SizeCache()
    labels = feasibility.num_labels(cfg)
    out = []
    for i in range(settings.samples):
        trial = study.ask()
        values = {d.name: d.suggest(trial) for d in settings.space}
        try:
            tcfg, _ = candidate_config(cfg, values, settings.budget)
            sizes, _ = cache.get(tcfg, labels)
            broken = settings.budget.broken(sizes.flash_bytes, sizes.arena_bytes, sizes.macs)
        except TFLMUnavailableError:
            raise
        except (ValueError, RuntimeError) as e:
            sizes, broken = None, [f"{type(e).__name__}: {str(e).splitlines()[0]}"]
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        out.append((values, sizes, broken))
        status = "fits" if not broken else "over: " + "; ".join(broken)
        figures = _sizes_line(sizes.flash_bytes, sizes.arena_bytes, sizes.macs) if sizes else ""
        echo(f"[{i + 1}/{settings.samples}] {_describe(values)}: {figures} {status}")
    return out
