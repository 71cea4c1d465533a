"""``tfkd search``: budgets, the space, cheap feasibility, and a small search end to end."""

import json
import os

import optuna
import pytest
import yaml
from click.testing import CliRunner

from tfkd._keras import keras
from tfkd.cli import cli
from tfkd.config import ConfigError, load
from tfkd.search import feasibility, space

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "pipelines", "kws_quickstart.yaml")
# One epoch per stage and small models: the point is the machinery, not the accuracy.
FAST = ["teacher.epochs=1", "teacher.params={size: s, channels: 16}", "distill.epochs=1", "prune.epochs=1",
        "data.augment.views=1", "quantize.representative_samples=20"]
# A space of small DS-CNNs at one feature setting (so one shared data/teacher folder).
SMALL_SPACE = ["search.space.channels=[8, 24]", "search.space.blocks=[1, 2]",
               "search.space.num_channels=40", "search.space.stride_ms=20",
               "search.startup_trials=2"]


def _sets(items):
    return [a for item in items for a in ("--set", item)]


def _invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# -- budgets --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,text,expected", [
    ("flash", "23KB", 23 * 1024), ("flash", "23kb", 23 * 1024), ("flash", "1.5MB", 1572864),
    ("arena", "32KiB", 32768), ("arena", "512B", 512), ("arena", 4096, 4096),
    ("macs", "2M", 2_000_000), ("macs", "250k", 250_000), ("macs", "1G", 10 ** 9),
])
def test_parse_size_units(name, text, expected):
    assert space.parse_size(text, name, "k") == expected


def test_parse_budget_reads_every_figure():
    assert space.parse_budget("flash=23KB, arena=32KB,macs=2M") == {
        "flash": 23552, "arena": 32768, "macs": 2_000_000}


@pytest.mark.parametrize("text,message", [
    ("flsh=23KB", "--budget flsh=23KB: unknown budget 'flsh' (allowed: flash, arena, macs)"),
    ("flash=23XB", "--budget flash=23XB: unknown unit 'XB' (flash takes B, KB, MB; 1 KB = 1024 B)"),
    ("macs=2MB", "--budget macs=2MB: unknown unit 'MB' (macs takes K, M, G; 2M = 2,000,000)"),
    ("flash=0KB", "--budget flash=0KB: must be > 0, got 0.0"),
    ("flash", "--budget flash: expected NAME=SIZE (e.g. flash=23KB)"),
    ("arena=lots", "--budget arena=lots: must be a size such as 23KB or 2M, got 'lots'"),
    (",", "--budget: empty (expected e.g. flash=23KB,arena=32KB,macs=2M)"),
])
def test_parse_budget_errors_name_the_item(text, message):
    with pytest.raises(ConfigError) as e:
        space.parse_budget(text)
    assert str(e.value) == message


def test_budget_constraints_and_broken():
    b = space.Budget(flash=1000, macs=100)
    assert b.constraints(1100, 10 ** 9, 50) == pytest.approx([0.1, 0.0, -0.5])
    assert b.broken(1100, 10 ** 9, 50) == ["flash 1.1 KB > 1.0 KB"]
    assert b.broken(1000, 10 ** 9, 100) == []


# -- the search section and the space ---------------------------------------------------------

def _settings(overrides=(), budget=None, cfg_overrides=()):
    cfg = load(QUICKSTART, list(cfg_overrides))
    return cfg, space.parse_search(cfg, None, list(overrides), budget)


def test_default_space_covers_the_issue_dimensions():
    cfg, s = _settings(budget="flash=23KB")
    keys = {d.name: d.key for d in s.space}
    assert keys == {"channels": "student.params.channels", "blocks": "student.params.blocks",
                    "first_stride": "student.params.first_stride",
                    "num_channels": "features.num_channels", "stride_ms": "features.stride_ms",
                    "prune_ratio": "prune.ratio", "temperature": "distill.temperature",
                    "alpha": "distill.alpha"}
    assert s.budget == space.Budget(flash=23552)
    assert s.seed == cfg.seed


def test_search_overrides_set_ranges_choices_and_fixed_values():
    _, s = _settings(["search.space.channels={low: 8, high: 32, step: 4}",
                      "search.space.first_stride=[[2, 2], [1, 2]]",
                      "search.space.alpha=0.2", "search.space.temperature=null",
                      "search.budget.arena=30KB", "search.trials=3"], budget="flash=20KB")
    d = {x.name: x for x in s.space}
    assert (d["channels"].low, d["channels"].high, d["channels"].step) == (8, 32, 4)
    assert d["first_stride"].choices == ([2, 2], [1, 2])
    assert d["alpha"].choices == (0.2,)
    assert "temperature" not in d
    assert s.budget == space.Budget(flash=20480, arena=30720)
    assert s.trials == 3


@pytest.mark.parametrize("override,message", [
    ("search.space.channels=[64, 16]", "search.space.channels: need numbers low <= high, got 64..16"),
    ("search.space.depth=[1, 2]", "search.space.depth: unknown dimension (allowed: channels, "
     "blocks, first_stride, num_channels, stride_ms, prune_ratio, temperature, alpha)"),
    ("search.budget.flash=12XB", "search.budget.flash: unknown unit 'XB' (flash takes B, KB, MB; "
     "1 KB = 1024 B)"),
    ("search.budget.ram=1KB", "search.budget.ram: unknown budget (allowed: flash, arena, macs)"),
    ("search.sampler=cmaes", "search.sampler: must be tpe or nsga2, got 'cmaes'"),
    ("search.trials=0", "search.trials: must be an integer >= 1, got 0"),
    ("search.space.blocks=[1.5, 3]", "search.space.blocks: must be whole numbers, got 1.5..3"),
    ("search.space.temperature={low: 0, high: 4, log: true}",
     "search.space.temperature.log: needs low > 0 and no step"),
    ("search.space.first_stride=[[2, 0]]",
     "search.space.first_stride: choices must be [time, frequency] strides >= 1, got [2, 0]"),
    ("search.space.channels=[0, 8]", "search.space.channels: must be >= 1, got 0..8"),
    ("search.space.prune_ratio=[0, 1.0]",
     "search.space.prune_ratio: 1.0 is refused (prune.ratio: must be in [0, 1), got 1.0)"),
    ("search.space.first_stride={low: 1, high: 2}", "search.space.first_stride: give "
     "{choices: [[time, frequency], ...]} or one [time, frequency] pair"),
    ("search.colour=blue", "search.colour: unknown key (allowed: budget, trials, sampler, seed, "
     "startup_trials, samples, space)"),
])
def test_search_section_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        _settings([override])
    assert str(e.value) == message


def test_space_follows_the_student_and_the_pruning_method():
    _, s = _settings(cfg_overrides=["student.model=tiny_conv", "student.params={}",
                                    "prune.method=magnitude"])
    keys = {d.name: d.key for d in s.space}
    assert keys["channels"] == "student.params.filters"
    assert keys["first_stride"] == "student.params.strides"
    assert "blocks" not in keys and "prune_ratio" not in keys
    assert any(o.startswith("blocks:") for o in s.off)


def test_candidate_config_sets_the_keys_and_the_budgets():
    cfg, s = _settings(budget="flash=20KB,arena=30KB")
    cand, keys = space.candidate_config(
        cfg, {"channels": 24, "blocks": 2, "first_stride": [3, 2], "num_channels": 20,
              "stride_ms": 40, "prune_ratio": 0.25, "temperature": 2.0, "alpha": 0.3},
        s.budget, name="t1")
    assert cand.name == "t1"
    assert cand.student.params["channels"] == 24 and cand.student.params["blocks"] == 2
    assert list(cand.student.params["first_stride"]) == [3, 2]
    assert (cand.features.num_channels, cand.features.stride_ms) == (20, 40)
    assert (cand.prune.ratio, cand.distill.temperature, cand.distill.alpha) == (0.25, 2.0, 0.3)
    assert (cand.budgets.max_flash_bytes, cand.budgets.max_arena_bytes) == (20480, 30720)
    assert cand.teacher == cfg.teacher and cand.data == cfg.data


def _yaml_with_search(tmp_path, search):
    from tfkd.schema import safe_load

    with open(QUICKSTART) as f:
        raw = safe_load(f.read())
    raw["data"]["path"] = os.path.join(os.path.dirname(QUICKSTART), raw["data"]["path"])
    raw["search"] = search
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def test_search_section_in_the_yaml(tmp_path):
    path = _yaml_with_search(tmp_path, {"budget": {"flash": "23KB", "macs": "2M"}, "trials": 3,
                                        "space": {"channels": [8, 16], "temperature": None}})
    cfg = load(path)
    s = space.parse_search(cfg, cfg.search, budget_text="arena=30KB")
    assert s.budget == space.Budget(flash=23552, arena=30720, macs=2_000_000)
    assert s.trials == 3
    assert [d.name for d in s.space if d.name in ("channels", "temperature")] == ["channels"]
    assert _invoke("validate", path).exit_code == 0  # tfkd run/validate accept the section


def test_search_section_error_is_one_usage_line(tmp_path):
    path = _yaml_with_search(tmp_path, {"budget": {"flash": "23XB"}})
    r = _invoke("search", path, "--dry-run")
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1] == (
        "Error: search.budget.flash: unknown unit 'XB' (flash takes B, KB, MB; 1 KB = 1024 B)")


def test_cli_budget_error_is_one_usage_line():
    r = _invoke("search", QUICKSTART, "--budget", "flash=23XB", "--dry-run")
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1] == (
        "Error: --budget flash=23XB: unknown unit 'XB' (flash takes B, KB, MB; 1 KB = 1024 B)")


@pytest.mark.parametrize("section,message", [
    ({"space": {"depth": [1, 2]}}, "search.space.depth: unknown dimension (allowed: channels, "
     "blocks, first_stride, num_channels, stride_ms, prune_ratio, temperature, alpha)"),
    ({"space": {"channels": [64, 16]}}, "search.space.channels: need numbers low <= high, got 64..16"),
    ({"space": {"channels": {"low": 8, "high": 16, "stpe": 4}}},
     "search.space.channels.stpe: unknown key (allowed: choices, high, log, low, step)"),
    ({"budget": {"flash": "23XB"}},
     "search.budget.flash: unknown unit 'XB' (flash takes B, KB, MB; 1 KB = 1024 B)"),
    ({"trails": 3}, "search.trails: unknown key (allowed: budget, trials, sampler, seed, "
     "startup_trials, samples, space)"),
    ({"space": {n: None for n in space.DEFAULT_SPACE}},
     "search.space: every dimension is off; nothing to search"),
])
def test_validate_reports_a_bad_search_section_as_search_does(tmp_path, section, message):
    path = _yaml_with_search(tmp_path, section)
    for args in (["validate", path, "--no-build"], ["validate", path],
                 ["search", path, "--dry-run"]):
        r = _invoke(*args)
        assert r.exit_code == 2, (args, r.output)
        assert r.output.strip().splitlines()[-1] == f"Error: {message}", args


def test_validate_reads_search_overrides_as_search_does():
    bad = ["--set", "search.space.channels=[64, 16]"]
    for args in (["validate", QUICKSTART, "--no-build", *bad], ["search", QUICKSTART, "--dry-run", *bad],
                 ["run", QUICKSTART, "--out", "unused", *bad]):  # (run refuses before any stage)
        r = _invoke(*args)
        assert r.exit_code == 2, r.output
        assert r.output.strip().splitlines()[-1] == (
            "Error: search.space.channels: need numbers low <= high, got 64..16")
    r = _invoke("validate", QUICKSTART, "--no-build", "--set", "search.space.channels=[8, 16]",
                "--set", "search.trials=3", "--set", "distill.temperature=2")
    assert r.exit_code == 0, r.output
    assert r.output == f"{QUICKSTART}: ok (kws_quickstart)\n"


def test_validate_passes_a_good_search_section(tmp_path):
    path = _yaml_with_search(tmp_path, {"budget": {"flash": "23KB"}, "trials": 3, "sampler": "nsga2",
                                        "space": {"channels": {"low": 8, "high": 32, "step": 8},
                                                  "first_stride": [[2, 1], [2, 2]], "alpha": None}})
    r = _invoke("validate", path, "--no-build")
    assert r.exit_code == 0, r.output
    assert r.output == f"{path}: ok (kws_quickstart)\n"


# -- feasibility -----------------------------------------------------------------------------

def test_count_macs_matches_hand_count():
    from tfkd.models import build

    m = build("ds_cnn", (10, 8, 1), 3, channels=4, blocks=1)
    # conv0 10x4 stride 2: 5x4 outputs x 40 taps x 1 in x 4 out; dw 3x3: 5x4x9x4;
    # pw 1x1: 5x4x4x4; logits: 4x3.
    assert feasibility.count_macs(m) == 5 * 4 * 40 * 4 + 5 * 4 * 9 * 4 + 5 * 4 * 16 + 12
    keras.backend.clear_session()


def test_arena_margin_rounds_up_to_16_bytes():
    assert feasibility.arena_with_margin(1000, 0.25) == 1000 + 256
    assert feasibility.arena_with_margin(1024, 0.0) == 1024


@pytest.mark.slow
def test_feasibility_pruned_shapes_are_the_pipelines():
    from tfkd.compress.prune import channel_prune
    from tfkd.models import build

    cfg, s = _settings()
    cand, _ = space.candidate_config(cfg, {"channels": 16, "blocks": 1, "prune_ratio": 0.5},
                                     s.budget)
    sizes = feasibility.measure(cand, labels=12)
    keras.utils.set_random_seed(1)
    m = build("ds_cnn", (49, 40, 1), 12, size="s", channels=16, blocks=1)
    narrow = channel_prune(m, lambda model, cb: None, ratio=0.5)
    assert sizes.params == narrow.count_params()
    assert sizes.macs == feasibility.count_macs(narrow)
    assert sizes.input_shape == (49, 40, 1)
    keras.backend.clear_session()


@pytest.mark.slow
def test_over_budget_candidates_never_train(tmp_path):
    out = tmp_path / "s"
    r = _invoke("search", QUICKSTART, "--budget", "flash=1KB", "--trials", "2", "--out", str(out),
                *_sets(FAST + SMALL_SPACE))
    assert r.exit_code == 1
    assert r.output.count("rejected, not trained: over budget (flash ") == 2
    assert not (out / "trials").exists() and not (out / "shared").exists()
    study = optuna.load_study(study_name="tfkd-search", storage=f"sqlite:///{out}/study.db")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    for t in study.trials:
        assert t.user_attrs["sizes"]["flash_bytes"] > 1024
        assert t.constraints["flash"] == pytest.approx(t.user_attrs["sizes"]["flash_bytes"] / 1024 - 1)
    assert "No trained candidate fits the budget." in (out / "search.md").read_text()


@pytest.mark.slow
def test_dry_run_is_deterministic_and_counts_fits():
    args = ["search", QUICKSTART, "--budget", "flash=6KB", "--dry-run", "--samples", "3",
            *_sets(FAST + SMALL_SPACE)]
    first, second = _invoke(*args), _invoke(*args)
    assert first.exit_code == 0, first.output
    lines = [l for l in first.output.splitlines() if l.startswith("[")]
    assert len(lines) == 3
    assert lines == [l for l in second.output.splitlines() if l.startswith("[")]
    fits = sum(l.endswith(" fits") for l in lines)
    assert f"{fits} of 3 sampled candidates fit the budget (flash 6.0 KB)" in first.output


@pytest.mark.slow
def test_missing_tflite_micro_stops_the_search_with_one_line(monkeypatch, tmp_path):
    from tfkd.export.micro import TFLMUnavailableError

    def unavailable(flat):
        raise TFLMUnavailableError("TFLite Micro figures need the 'tflite-micro' package")

    monkeypatch.setattr(feasibility, "measure_arena", unavailable)
    for extra in (["--dry-run", "--samples", "2"], ["--out", str(tmp_path / "s")]):
        r = _invoke("search", QUICKSTART, "--budget", "flash=7KB", *extra, *_sets(FAST + SMALL_SPACE))
        assert r.exit_code == 1
        assert r.output.strip().splitlines()[-1].startswith(
            "Error: TFLMUnavailableError: TFLite Micro figures need the 'tflite-micro' package")
    assert not (tmp_path / "s" / "trials").exists()


# -- a small search end to end ---------------------------------------------------------------

@pytest.fixture(scope="module")
def small_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "s"
    r = _invoke("search", QUICKSTART, "--budget", "flash=7KB", "--trials", "4", "--out", str(out),
                *_sets(FAST + SMALL_SPACE))
    study = optuna.load_study(study_name="tfkd-search", storage=f"sqlite:///{out}/study.db")
    return out, r, study


@pytest.mark.slow
def test_small_search_end_to_end(small_search):
    out, r, study = small_search
    assert r.exit_code == 0, r.output
    assert len(study.trials) == 4
    md = (out / "search.md").read_text()
    assert "## Pareto front" in md and "**Best within the budget: trial " in md
    assert (out / "pareto.png").stat().st_size > 1000
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert trained, r.output
    for t in study.trials:
        # Rejected exactly when the cheap figures break the budget; only those never ran.
        over = t.user_attrs["sizes"]["flash_bytes"] > 7 * 1024
        assert (t.state == optuna.trial.TrialState.PRUNED) == over
        assert (out / "trials" / f"{t.number:04d}").exists() == (not over)
    fronts = sorted(os.listdir(out / "front"))
    assert fronts and all(f.endswith(".yaml") for f in fronts)
    assert f"rebuild with `tfkd run {out}/front/" in r.output


@pytest.mark.slow
def test_teacher_is_trained_once_and_shared(small_search):
    out, r, study = small_search
    shared = [d for d in os.listdir(out / "shared") if os.path.isdir(out / "shared" / d)]
    assert len(shared) == 1
    base = out / "shared" / shared[0]
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in trained:
        run = out / "trials" / f"{t.number:04d}"
        log = (run / "search.log").read_text()
        assert "[teacher] unchanged, skipped (--resume)" in log
        assert "[data] unchanged, skipped (--resume)" in log
        assert "[distill] running" in log
        assert os.path.samefile(run / "teacher" / "teacher.keras", base / "teacher" / "teacher.keras")
        assert json.loads((run / "metrics.json").read_text())["teacher"] == \
            json.loads((base / "metrics.json").read_text())["teacher"]


@pytest.mark.slow
def test_feasibility_agrees_with_the_trained_run(small_search):
    out, r, study = small_search
    for t in [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]:
        s = t.user_attrs["sizes"]
        m = json.loads((out / "trials" / f"{t.number:04d}" / "metrics.json").read_text())
        assert abs(s["flash_bytes"] - m["export"]["tflite_bytes"]) <= 0.02 * m["export"]["tflite_bytes"]
        assert abs(s["arena_bytes_host"] - m["quantize"]["arena_bytes_host"]) <= \
            0.02 * m["quantize"]["arena_bytes_host"]
        assert s["arena_bytes"] == m["export"]["arena_bytes"] or \
            abs(s["arena_bytes"] - m["export"]["arena_bytes"]) <= 0.02 * m["export"]["arena_bytes"]
        assert s["params"] == m["prune"]["params"]


@pytest.mark.slow
def test_front_yaml_reruns_to_the_same_metrics(small_search, tmp_path):
    out, r, study = small_search
    name = sorted(os.listdir(out / "front"))[0]
    cfg = yaml.safe_load((out / "front" / name).read_text())
    trial = int(cfg["name"].rsplit("_t", 1)[1])
    rerun = tmp_path / "rerun"
    res = _invoke("run", str(out / "front" / name), "--out", str(rerun))
    assert res.exit_code == 0, res.output
    a = json.loads((out / "trials" / f"{trial:04d}" / "metrics.json").read_text())
    b = json.loads((rerun / "metrics.json").read_text())
    for stage, key in [("teacher", "accuracy"), ("distill", "accuracy"), ("prune", "accuracy"),
                       ("prune", "params"), ("quantize", "accuracy_tflm"),
                       ("quantize", "accuracy_float"), ("quantize", "arena_bytes_host"),
                       ("export", "tflite_bytes"), ("export", "arena_bytes")]:
        assert a[stage][key] == b[stage][key], (stage, key)
    with open(out / "trials" / f"{trial:04d}" / "quantize" / "model_int8.tflite", "rb") as f:
        searched = f.read()
    with open(rerun / "quantize" / "model_int8.tflite", "rb") as f:
        assert f.read() == searched


@pytest.mark.slow
def test_resume_adds_trials_and_keeps_the_old_ones(small_search):
    out, r, study = small_search
    before = [(t.number, t.params, t.state) for t in study.trials]
    res = _invoke("search", QUICKSTART, "--budget", "flash=7KB", "--trials", "1", "--out", str(out),
                  "--resume", *_sets(FAST + SMALL_SPACE))
    assert res.exit_code == 0, res.output
    again = optuna.load_study(study_name="tfkd-search", storage=f"sqlite:///{out}/study.db")
    assert len(again.trials) == len(before) + 1
    assert [(t.number, t.params, t.state) for t in again.trials[:len(before)]] == before
    # Without --resume the folder is refused; with another budget the study is refused.
    res = _invoke("search", QUICKSTART, "--budget", "flash=7KB", "--out", str(out),
                  *_sets(FAST + SMALL_SPACE))
    assert res.exit_code == 2 and "holds a search: pass --resume" in res.output
    res = _invoke("search", QUICKSTART, "--budget", "flash=8KB", "--out", str(out), "--resume",
                  *_sets(FAST + SMALL_SPACE))
    assert res.exit_code == 2
    assert "--resume: search.budget differs from the search in" in res.output


def test_seeded_study_repeats_the_same_candidates(tmp_path):
    from tfkd.search.study import open_study

    cfg, s = _settings(budget="flash=23KB")
    seqs = []
    for k in range(2):
        study = open_study(str(tmp_path / str(k)), cfg, s, resume=False)
        seq = []
        for _ in range(3):
            t = study.ask()
            seq.append({d.name: d.suggest(t) for d in s.space})
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        seqs.append(seq)
    assert seqs[0] == seqs[1]
    assert len({json.dumps(x, sort_keys=True) for x in seqs[0]}) == 3
