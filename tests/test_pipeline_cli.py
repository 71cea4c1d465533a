import json
import os
import stat

import pytest
import yaml
from click.testing import CliRunner

from tfkd.export import micro
from tfkd.cli import cli

from tinyrun import MINI, tiny

ROOT = os.path.join(os.path.dirname(__file__), "..")
TINY = tiny()

pytestmark = pytest.mark.skipif(not micro.tflm_available(), reason="tflite-micro not installed")
slow = pytest.mark.slow


def _write(tmp_path, cfg, name="p.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    cfg = _write(tmp, TINY)
    out = tmp / "run"
    res = _invoke("run", cfg, "--out", str(out))
    assert res.exit_code == 0, res.output
    return tmp, cfg, out, res


@slow
def test_run_writes_every_artifact(full_run):
    _, _, out, res = full_run
    m = json.loads((out / "metrics.json").read_text())
    for sec, key in [("teacher", "accuracy"), ("teacher", "params"), ("distill", "accuracy"),
                     ("distill", "params"), ("prune", "accuracy"), ("prune", "sparsity"),
                     ("quantize", "accuracy_int8"), ("quantize", "accuracy_tflm"),
                     ("quantize", "tflm_litert_agreement"), ("export", "tflite_bytes"),
                     ("export", "arena_bytes")]:
        assert key in m[sec], (sec, key)
    q = m["quantize"]
    assert q["accuracy_tflm"] == pytest.approx(q["accuracy_int8"], abs=1 - q["tflm_litert_agreement"])
    assert q["n"] == m["data"]["clips"]["test"] and q["accuracy_float"] == m["prune"]["accuracy"]
    assert m["export"]["tflite_bytes"] == (out / "export" / "tiny.tflite").stat().st_size
    assert (out / "export" / "tiny.tflite").read_bytes() == (out / "quantize" / "model_int8.tflite").read_bytes()
    assert m["export"]["arena_bytes"] > m["export"]["arena_bytes_host"] > 0
    for f in ("resolved.yaml", "report.md", "teacher/teacher.keras", "distill/student.keras",
              "prune/student.keras", "quantize/model_int8.tflite", "export/tiny.cc", "export/tiny.h",
              "export/tiny_ops.h", "export/tiny.tflite", "export/tiny_golden.h",
              "plots/confusion_int8.png", "plots/training_curves.png"):
        assert (out / f).exists(), f
    assert os.listdir(out / "logs")  # TensorBoard
    assert "int8 in TFLite Micro" in res.output
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no partial stage folders


@slow
def test_same_folder_needs_resume(full_run):
    _, cfg, out, _ = full_run
    res = _invoke("run", cfg, "--out", str(out))
    assert res.exit_code == 2 and "--resume" in res.output
    res = _invoke("run", cfg, "--out", str(out), "--resume", "--verbose")  # stage lines
    assert res.exit_code == 0 and res.output.count("unchanged, skipped") == 6


@slow
def test_interrupted_run_resumes_to_the_same_metrics(full_run, tmp_path):
    _, cfg, out, _ = full_run
    part = tmp_path / "part"
    res = _invoke("run", cfg, "--out", str(part), "--stop-after", "distill")
    assert res.exit_code == 0 and not (part / "prune").exists()
    res = _invoke("run", cfg, "--out", str(part), "--resume", "--verbose")
    assert res.exit_code == 0, res.output
    assert "[distill] unchanged" in res.output and "[prune] running" in res.output
    assert json.loads((part / "metrics.json").read_text()) == json.loads((out / "metrics.json").read_text())


@slow
def test_eval_scores_a_run(full_run):
    _, _, out, _ = full_run
    res = _invoke("eval", str(out), "--data", MINI, "--split", "all")
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert {"accuracy_int8", "accuracy_tflm", "accuracy_float", "n"} <= set(r) and r["n"] == 54
    # What each stage cost on these clips, recomputed here from the run's own files.
    import numpy as np
    from tfkd import keras
    from tfkd.data import frontend, speech
    from tfkd.pipeline import artifacts
    from tfkd.pipeline.evaluate import eval_entries
    from tfkd.verify import score_int8

    run = artifacts.RunFolder(str(out))
    fp = artifacts.load_feature_params(run.stage("data"))
    index, entries = eval_entries(MINI, artifacts.load_labels(run.stage("data")), "all")
    waves, y, _ = speech.load_waves(index, entries, fp.sample_rate, fp.clip_samples)
    x = frontend.compute(waves, fp)
    teacher = keras.models.load_model(str(out / "teacher" / "teacher.keras"), compile=False)
    distilled = keras.models.load_model(str(out / "distill" / "student.keras"), compile=False)
    t_pred = teacher.predict(x, verbose=0).argmax(-1)
    _, tflm_pred = score_int8((out / "quantize" / "model_int8.tflite").read_bytes(), x, y)
    assert r["accuracy_teacher"] == pytest.approx(np.mean(t_pred == y))
    assert r["accuracy_distilled"] == pytest.approx(np.mean(distilled.predict(x, verbose=0).argmax(-1) == y))
    assert r["teacher_int8_agreement"] == pytest.approx(np.mean(t_pred == tflm_pred))


@slow
def test_eval_unknown_folders_without_unknown_label(full_run, tmp_path):
    _, _, out, _ = full_run
    bad = tmp_path / "data"
    (bad / "banana").mkdir(parents=True)
    import shutil
    src = os.path.join(MINI, "yes", sorted(os.listdir(os.path.join(MINI, "yes")))[0])
    shutil.copy(src, bad / "banana" / "x_nohash_0.wav")
    res = _invoke("eval", str(out), "--data", str(bad), "--split", "all")
    assert res.exit_code == 0  # this model has _unknown_: banana maps to it
    assert json.loads(res.output)["n"] == 1
    labels = out / "data" / "labels.json"
    saved = labels.read_text()
    try:
        labels.write_text(json.dumps(json.loads(saved)[:-1]))
        res = _invoke("eval", str(out), "--data", str(bad), "--split", "all")
        assert res.exit_code == 2 and "banana" in res.output
    finally:
        labels.write_text(saved)


@slow
def test_budget_violation_exits_1(full_run, tmp_path):
    _, cfg, out, _ = full_run
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    res = _invoke("run", cfg, "--out", str(copy), "--resume", "--set", "budgets.max_flash_bytes=1000")
    assert res.exit_code == 1
    assert "budgets.max_flash_bytes 1000 broken: measured" in res.output


@slow
def test_failing_stage_keeps_earlier_stages(tmp_path):
    from tfkd import keras
    wrong = keras.Sequential([keras.layers.Input((49, 40, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    wrong.save(tmp_path / "t.keras")
    cfg = _write(tmp_path, {**TINY, "teacher": {"path": str(tmp_path / "t.keras")}})
    out = tmp_path / "run"
    res = _invoke("run", cfg, "--out", str(out))
    assert res.exit_code == 1
    assert "teacher.path" in res.output and "3 outputs" in res.output and "Traceback" not in res.output
    assert (out / "data" / "done.json").exists() and not (out / "teacher").exists()


@pytest.mark.parametrize("override,message", [
    ("distill.temprature=2", "distill.temprature: unknown key (allowed: epochs,"),
    ("distill.temperature=-1", "distill.temperature: must be > 0, got -1"),
    ("distill.epochs=many", "distill.epochs: must be an integer, got 'many'"),
    ("student.model=ds_cnn_xl", "student.model: unknown model (available: ds_cnn,"),
    ("data.path=/no/such/folder", "data.path: folder does not exist, got '/no/such/folder'"),
    ("features.kind=wavelet", "features.kind: must be one of microfrontend, logmel, mfcc"),
    ("distill.loss=kl2", "distill.loss: unknown loss (available: dist, dkd, kl, mse)"),
    ("prune.method=random", "prune.method: must be structured, magnitude or none"),
])
def test_bad_overrides_are_usage_errors(tmp_path, override, message):
    cfg = _write(tmp_path, TINY)
    for cmd in ("validate", "run"):
        args = [cmd, cfg, "--set", override] + (["--out", str(tmp_path / "out")] if cmd == "run" else [])
        res = _invoke(*args)
        assert res.exit_code == 2, res.output
        assert message in res.output
        assert not (tmp_path / "out").exists()


def test_bad_files_are_usage_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    cases = [
        (_write(tmp_path, {**TINY, "data": {**TINY["data"], "path": str(empty)}}, "e.yaml"),
         "data.path: folder has no <label>/*.wav sub-folders"),
        (str(evil), "not valid YAML"),
        (str(tmp_path / "missing.yaml"), "missing.yaml: cannot read"),
        (_write(tmp_path, {**TINY, "distill": "fast"}, "t.yaml"), "distill: must be a mapping, got 'fast'"),
        (_write(tmp_path, {**TINY, "bogus": 1}, "b.yaml"), "bogus: unknown key (allowed: name, seed,"),
    ]
    for path, message in cases:
        res = _invoke("run", path, "--out", str(tmp_path / "out"))
        assert res.exit_code == 2, res.output
        assert message in res.output, res.output
        assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    res = _invoke("run", _write(tmp_path, TINY), "--out", str(ro / "run"))
    assert res.exit_code == 2 and "not writable" in res.output


def test_output_path_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    res = _invoke("run", _write(tmp_path, TINY), "--out", str(f / "run"))
    assert res.exit_code == 2 and "not writable" in res.output


def test_relative_paths(tmp_path, monkeypatch):
    from tfkd.config import load

    sub = tmp_path / "conf"
    sub.mkdir()
    rel = os.path.relpath(MINI, sub)
    path = _write(sub, {**TINY, "data": {**TINY["data"], "path": rel}})
    assert load(path).data.path == MINI  # relative to the YAML file
    monkeypatch.chdir(os.path.dirname(MINI))
    cfg = load(path, ["data.path=speech_commands_mini", "data.labels=null"])
    assert cfg.data.path == MINI and cfg.data.labels is None  # relative to the working dir


@slow
def test_pipelines_validate():
    for name in ("kws_micro.yaml", "kws_quickstart.yaml"):
        res = _invoke("validate", os.path.join(ROOT, "pipelines", name), "--set", f"data.path={MINI}")
        assert res.exit_code == 0, res.output


@slow
def test_born_again_generations_without_teacher(tmp_path):
    cfg = _write(tmp_path, TINY)
    out = tmp_path / "run"
    res = _invoke("run", cfg, "--out", str(out), "--stop-after", "distill", "--set", "teacher=null",
                  "--set", "distill.generations=2")
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert "teacher" not in m and len(m["distill"]["generations"]) == 2
    assert m["distill"]["accuracy"] == m["distill"]["generations"][-1]


@slow
def test_teacher_assistant_chain(tmp_path):
    cfg = _write(tmp_path, TINY)
    out = tmp_path / "run"
    res = _invoke("run", cfg, "--out", str(out), "--stop-after", "distill",
                  "--set", "distill.assistants=[{model: ds_cnn, params: {channels: 12, blocks: 1}}]",
                  "--set", "distill.loss=dkd", "--set", "distill.loss_params={beta: 2.0}")
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["distill"]["assistants"][0]["model"] == "ds_cnn"
    assert m["distill"]["assistants"][0]["params"] > m["distill"]["params"]


@slow
def test_feature_parity_between_training_and_evaluation_paths(full_run):
    """The same clip gives identical features through the data stage and through eval."""
    import numpy as np
    from tfkd.data import frontend, speech
    from tfkd.pipeline.artifacts import load_data
    from tfkd.pipeline.evaluate import eval_entries

    _, _, out, _ = full_run
    labels = json.loads((out / "data" / "labels.json").read_text())
    fp = frontend.FeatureParams.load(out / "data" / "features.json")
    x_test, y_test = load_data(out / "data").arrays("test")  # streamed from the feature store
    index, entries = eval_entries(MINI, labels, "test")
    waves, y, _ = speech.load_waves(index, entries, fp.sample_rate, fp.clip_samples)
    feats = frontend.compute(waves, fp)
    # the data stage's test split = the folder's clips + synthesized silence (not in eval)
    real = [i for i, e in enumerate(speech.scan(MINI, labels).split("test")) if e.path is not None]
    np.testing.assert_array_equal(x_test[real], feats)
    np.testing.assert_array_equal(y_test[real], y)


@slow
def test_quantization_aware_training_stage(full_run, tmp_path):
    import shutil
    _, cfg, out, _ = full_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    res = _invoke("run", cfg, "--out", str(copy), "--resume", "--verbose", "--set",
                  "quantize.qat_epochs=1")
    assert res.exit_code == 0, res.output
    assert "[prune] unchanged" in res.output and "[quantize] running" in res.output
    m = json.loads((copy / "metrics.json").read_text())
    assert m["quantize"]["qat"] is True
    # the float figures are the QAT model's: the model that was converted
    assert m["quantize"]["accuracy_float"] == m["quantize"]["accuracy_qat_float"]
    assert m["quantize"]["tflm_litert_agreement"] >= 0.5 and (copy / "export" / "tiny.tflite").exists()
