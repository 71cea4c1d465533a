import dataclasses
import json
import os

import pytest

from tfkd.config import ModelConfig, PipelineConfig, to_dict
from tfkd.pipeline import runner, stages
from tfkd.pipeline.artifacts import Firmware
from tfkd.pipeline.keys import stage_key
from tfkd.pipeline.runner import RunError, run_pipeline
from tfkd.pipeline.stages import STAGES, Stage


#: A config whose models are tiny (the runner builds them to check their size).
SMALL = PipelineConfig(teacher=None, student=ModelConfig(model="tiny_conv", params={"filters": 2}))


def _fake_stages(tiny_data, calls):
    def data(cfg, ctx):
        calls.append(("data", ctx.seed))
        return tiny_data, {"views": tiny_data.views, "seed_used": ctx.seed}

    def export(cfg, ctx, *, data):
        calls.append(("export", cfg.export.golden_vectors))
        return Firmware(files={"m.txt": ",".join(data.labels)}, kinds={"txt": "m.txt"}), {"n": len(data.labels)}

    return (Stage(name="data", run=data, config=("seed", "data")),
            Stage(name="export", run=export, config=("export",), inputs={"data": "data"}))


@pytest.fixture
def fake(monkeypatch, tiny_data):
    calls = []
    monkeypatch.setattr(stages, "STAGES", _fake_stages(tiny_data, calls))
    return calls


def _run(tmp_path, cfg, **kw):
    return run_pipeline(cfg, str(tmp_path / "run"), echo=lambda *_: None, tty=False, **kw)


def test_stages_get_their_inputs_and_resume_skips_unchanged(tmp_path, fake):
    cfg = SMALL
    m = _run(tmp_path, cfg)
    assert m["export"] == {"n": 3} and (tmp_path / "run" / "export" / "m.txt").read_text() == "a,b,c"
    assert [c[0] for c in fake] == ["data", "export"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == m
    assert not [p for p in os.listdir(tmp_path / "run") if p.startswith(".")]
    with pytest.raises(RunError, match="holds a run: pass --resume"):
        _run(tmp_path, cfg)
    fake.clear()
    _run(tmp_path, dataclasses.replace(cfg, name="renamed"), resume=True)
    assert fake == []  # neither stage reads the name
    _run(tmp_path, dataclasses.replace(cfg, export=dataclasses.replace(cfg.export, golden_vectors=1)),
         resume=True)
    assert fake == [("export", 1)]  # only the stage that reads the changed section
    fake.clear()
    _run(tmp_path, dataclasses.replace(cfg, seed=7), resume=True)
    assert [c[0] for c in fake] == ["data", "export"]  # a changed input changes its readers' keys


def test_a_stage_sees_only_the_sections_it_declares(tmp_path, monkeypatch):
    def sneaky(cfg, ctx):
        return None, {"lr": cfg.distill.learning_rate}

    monkeypatch.setattr(stages, "STAGES", (Stage(name="data", run=sneaky, config=("seed",)),))
    with pytest.raises(AttributeError, match="distill"):
        _run(tmp_path, SMALL)
    assert not (tmp_path / "run" / "data").exists()  # a failed stage leaves no finished folder


def test_stage_seeds_differ_per_stage_and_follow_the_master_seed(tmp_path, fake):
    m1 = _run(tmp_path, dataclasses.replace(SMALL, seed=1))
    m2 = run_pipeline(dataclasses.replace(SMALL, seed=2), str(tmp_path / "other"), echo=lambda *_: None)
    assert m1["data"]["seed_used"] != m2["data"]["seed_used"]


def test_stop_after(tmp_path, fake):
    m = _run(tmp_path, SMALL, stop_after="data")
    assert "data" in m and "export" not in m and not (tmp_path / "run" / "export").exists()


def test_the_stage_table():
    names = [s.name for s in STAGES]
    assert names == ["data", "teacher", "distill", "prune", "quantize", "export"]
    sections = set(to_dict(PipelineConfig()))
    for i, s in enumerate(STAGES):
        assert set(s.config) <= sections, s.name
        assert set(s.inputs.values()) <= set(names[:i]), s.name  # inputs come from earlier stages
    teacher = STAGES[1]
    assert teacher.enabled(PipelineConfig()) and not teacher.enabled(PipelineConfig(teacher=None))


def test_stage_key_covers_declared_sections_and_inputs():
    stage = STAGES[3]  # prune: seed, prune, distill
    raw = to_dict(PipelineConfig())
    key = stage_key(stage, raw, {"data": "1", "distill": "2"})
    assert key == stage_key(stage, {**raw, "quantize": {}}, {"data": "1", "distill": "2"})
    assert key != stage_key(stage, {**raw, "distill": {}}, {"data": "1", "distill": "2"})
    assert key != stage_key(stage, raw, {"data": "1", "distill": "3"})


def test_budget_check_names_the_first_broken_budget():
    cfg = PipelineConfig()
    cfg = dataclasses.replace(cfg, budgets=dataclasses.replace(cfg.budgets, max_arena_bytes=100))
    runner.check_budgets(cfg, {"export": {"arena_bytes": 100}})
    with pytest.raises(runner.BudgetError, match=r"^budgets.max_arena_bytes 100 broken: measured 101"):
        runner.check_budgets(cfg, {"export": {"arena_bytes": 101}})
