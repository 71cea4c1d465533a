"""Issue 12: tfkd with anyone's configs, model files and run folders, as a user or an
attacker meets it (``tfkd validate``/``run``/``eval`` through click's CliRunner).

Hostile WAV files and data folders are in ``test_wav.py``.
"""

import json
import os
import threading
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from tests.wavutil import tone, write_wav
from tfkd import limits, yamlio
from tfkd._keras import ModelFileError, keras, load_user_model
from tfkd.cli import cli
from tfkd.config import ConfigError, load
from tfkd.pipeline.runner import BudgetError, RUN_MARKER, RunError, check_budgets, run_pipeline


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _last_line(res):
    return res.output.strip().splitlines()[-1]


def _folder(root, words=("yes", "no"), n=4):
    """A tiny data folder whose list files put one speaker of each word in each split."""
    val, test = [], []
    for w in words:
        os.makedirs(root / w, exist_ok=True)
        for i in range(n):
            name = f"{w}/spk{i}_nohash_0.wav"
            write_wav(root / name, tone(300 + 150 * i + 40 * len(w), 1, 16000), 16000)
            (val if i == 0 else test if i == 1 else []).append(name)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    return root


def _config(tmp_path, data, extra="", name="p.yaml"):
    path = tmp_path / name
    path.write_text(f"name: tiny\ndata:\n  path: {data}\n  augment: {{views: 1}}\n"
                    "teacher: null\n"
                    "student: {model: ds_cnn, params: {channels: 4, blocks: 1}}\n"
                    "distill: {epochs: 1, batch_size: 8}\n" + extra)
    return path


@pytest.fixture
def data(tmp_path):
    return _folder(tmp_path / "clips")


# -- 2. no code from files -------------------------------------------------------------------

def _lambda_model(marker):
    """A model whose Lambda layer writes ``marker`` whenever Keras rebuilds it."""
    ns = {}
    exec(f"f = lambda x: (open({str(marker)!r}, 'w').write('pwned'), x)[1]", ns)  # noqa: S102
    inp = keras.Input((49, 40, 1))
    x = keras.layers.Lambda(ns["f"], name="writes_a_file")(inp)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    return keras.Model(inp, out)


def test_h5_teacher_with_a_lambda_runs_no_code(tmp_path, data):
    marker = tmp_path / "MARKER"
    model = _lambda_model(marker)
    marker.unlink()  # building the model ran it once, here, where we trust the code
    model.save(tmp_path / "teacher.h5")
    cfg = _config(tmp_path, data).read_text().replace("teacher: null\n",
                                                      f"teacher: {{path: {tmp_path / 'teacher.h5'}}}\n")
    (tmp_path / "evil.yaml").write_text(cfg)
    res = _invoke("validate", tmp_path / "evil.yaml", "--no-build")
    assert res.exit_code == 2
    assert _last_line(res).endswith(
        "teacher.h5 is a legacy HDF5 model, which can run code when loaded; tfkd loads only "
        f".keras files: convert it once, in a Python session you trust: keras.models.load_model"
        f"('{tmp_path / 'teacher.h5'}').save('{tmp_path / 'teacher.keras'}')")
    with pytest.raises(ModelFileError, match="legacy HDF5 model"):
        load_user_model(tmp_path / "teacher.h5", "teacher.path")
    assert not marker.exists()
    # The attack is real: plain Keras runs the file's code while loading it.
    keras.models.load_model(tmp_path / "teacher.h5", compile=False)
    assert marker.read_text() == "pwned"


def test_keras_file_with_a_lambda_is_refused_before_keras_reads_it(tmp_path):
    marker = tmp_path / "MARKER"
    model = _lambda_model(marker)
    marker.unlink()
    model.save(tmp_path / "t.keras")
    with pytest.raises(ModelFileError, match=r"t\.keras holds a Lambda layer \(writes_a_file\), which is "
                                             "Python code"):
        load_user_model(tmp_path / "t.keras", "teacher.path")
    assert not marker.exists()


def _forge_keras(tmp_path, good, edit):
    """A copy of the .keras file ``good`` whose config.json was changed by ``edit``."""
    with zipfile.ZipFile(good) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    cfg = json.loads(members["config.json"])
    edit(cfg)
    members["config.json"] = json.dumps(cfg).encode()
    out = tmp_path / "forged.keras"
    with zipfile.ZipFile(out, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
    return out


@pytest.fixture
def good_keras(tmp_path):
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    m = keras.Model(inp, keras.layers.Dense(3, name="logits")(keras.layers.Dense(4, activation="relu")(inp)))
    m.save(tmp_path / "good.keras")
    return m, tmp_path / "good.keras"


def test_a_good_keras_file_loads_with_the_same_outputs(good_keras):
    model, path = good_keras
    loaded = load_user_model(path, "teacher.path")
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_keras_file_naming_a_python_module_is_refused(tmp_path, good_keras):
    def evil(cfg):  # activation = os.system, resolved by importing "os"
        cfg["config"]["layers"][1]["config"]["activation"] = {
            "module": "os", "class_name": "function", "config": "system", "registered_name": None}
    path = _forge_keras(tmp_path, good_keras[1], evil)
    with pytest.raises(ModelFileError, match=r"forged\.keras refers to the Python module 'os' "
                                             r"\(function\); tfkd loads only Keras' own layers"):
        load_user_model(path, "teacher.path")


def test_keras_file_calling_a_file_writing_tf_op_is_refused(tmp_path, good_keras):
    def evil(cfg):
        cfg["config"]["layers"].append({
            "module": "tf_keras.src.layers.core.tf_op_layer", "class_name": "TFOpLambda",
            "config": {"name": "tf.io.write_file", "function": "io.write_file"}, "registered_name": None})
    path = _forge_keras(tmp_path, good_keras[1], evil)
    with pytest.raises(ModelFileError, match=r"calls the TensorFlow op tf\.io\.write_file"):
        load_user_model(path, "teacher.path")


def test_damaged_and_foreign_model_files_are_one_line(tmp_path, good_keras):
    body = good_keras[1].read_bytes()
    (tmp_path / "cut.keras").write_bytes(body[:len(body) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.keras is a damaged \.keras file"):
        load_user_model(tmp_path / "cut.keras", "teacher.path")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"\0")
    with pytest.raises(ModelFileError, match=r"saved is a TensorFlow SavedModel, which can run code"):
        load_user_model(tmp_path / "saved", "teacher.path")
    os.mkfifo(tmp_path / "pipe.keras")
    with pytest.raises(ModelFileError, match=r"pipe\.keras \(not a regular file but a FIFO\)"):
        load_user_model(tmp_path / "pipe.keras", "teacher.path")


# -- 3. YAML bounds ------------------------------------------------------------------------

#: A "billion laughs" of the issue's size: 9 levels of 9 aliases (387,420,489 strings) in
#: the free-form ``search`` mapping that ``tfkd run`` ignores, so that only the loader can stop it.
BOMB = "search:\n  notes:\n    lol: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + \
    "".join(f"    l{i}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def test_billion_laughs_is_refused_by_validate_and_run(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 600
    for command in ("validate", "run"):
        res = _invoke(command, path, "--out", tmp_path / "out") if command == "run" \
            else _invoke(command, path)
        assert res.exit_code == 2, res.output
        assert _last_line(res) == (f"Error: {path}: line 1: aliases expand 32 nodes into "
                                   "490329068 (more than 10 times); write the values out")
    assert not (tmp_path / "out").exists()


def test_alias_bomb_in_a_set_value(tmp_path, data):
    value = "{" + ", ".join(f"k{i}: &v{i} [" + ", ".join([f"*v{i - 1}"] * 9 if i else ["0"] * 9) + "]"
                            for i in range(9)) + "}"
    res = _invoke("validate", _config(tmp_path, data), "--no-build", "--set", f"student.params={value}")
    assert res.exit_code == 2
    assert "student.params: cannot parse value" in _last_line(res)
    assert "aliases expand" in _last_line(res)
    few = "{base: &b {channels: 4}, copy: *b}"  # a few aliases are fine
    assert yamlio.loads(few) == {"base": {"channels": 4}, "copy": {"channels": 4}}


def test_deep_nesting_non_utf8_and_duplicate_keys_are_one_line(tmp_path, data):
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    res = _invoke("validate", deep, "--no-build")
    assert res.exit_code == 2 and _last_line(res) == f"Error: {deep}: line 1: nested deeper than 32 levels"
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(b"name: tiny\n# caf\xe9\n")
    res = _invoke("validate", latin, "--no-build")
    assert res.exit_code == 2
    assert _last_line(res) == f"Error: {latin}: line 2: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    dup = _config(tmp_path, data, "distill: {epochs: 3}\n", name="dup.yaml")
    res = _invoke("validate", dup, "--no-build")
    assert res.exit_code == 2
    assert _last_line(res) == f"Error: {dup}: line 8: duplicate key 'distill' (first on line 7)"


def test_large_config_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: tiny\n" + "#" * (limits.MAX_YAML_BYTES + 1) + "\n")
    with pytest.raises(ConfigError, match=rf"big\.yaml: larger than the {limits.MAX_YAML_BYTES} byte"):
        load(big)


def test_yes_no_on_off_stay_strings_and_python_tags_are_refused(tmp_path):
    assert yamlio.loads("labels: [yes, no, on, off]\nflag: true") == {
        "labels": ["yes", "no", "on", "off"], "flag": True}
    with pytest.raises(yamlio.YamlError, match=r"tag !!python/object/apply:os\.system is not allowed"):
        yamlio.loads("x: !!python/object/apply:os.system ['echo pwned']")


# -- 3. sizes and 6. what validate can check --------------------------------------------------

@pytest.mark.parametrize("extra,message", [
    ("features: {num_channels: 100000}\n", "features.num_channels: must be <= 256, got 100000"),
    ("features: {clip_ms: 3600000}\n", "features.clip_ms: must be <= 10000, got 3600000"),
    ("distill: {epochs: 100000000000000000000000, batch_size: 8, temperature: 2.0}\n",
     "distill.epochs: must be <= 10000, got 100000000000000000000000"),
    ("distill: {epochs: 1, temperature: .inf}\n", "distill.temperature: must be a finite number, got inf"),
    ("quantize: {representative_samples: 1000000000}\n",
     "quantize.representative_samples: must be <= 100000, got 1000000000"),
])
def test_sizes_beyond_the_documented_bounds(tmp_path, data, extra, message):
    path = _config(tmp_path, data)
    text = path.read_text()
    if extra.startswith("distill:"):
        text = text.replace("distill: {epochs: 1, batch_size: 8}\n", "")
    path.write_text(text + extra)
    res = _invoke("validate", path, "--no-build")
    assert res.exit_code == 2, res.output
    assert _last_line(res) == f"Error: {message}"


def test_validate_checks_labels_against_the_data(tmp_path, data):
    (data / "empty").mkdir()
    cases = [
        ("[yes, no, maybe]", f"data.labels: no folder for maybe in {data}"),
        ("[yes, no, empty]", f"data.labels: the folder of empty in {data} holds no .wav files"),
        ("[yes, no, yes]", "data.labels: duplicates in ['yes', 'no', 'yes']"),
    ]
    for labels, message in cases:
        res = _invoke("validate", _config(tmp_path, data), "--no-build", "--set", f"data.labels={labels}")
        assert res.exit_code == 2, res.output
        assert _last_line(res) == f"Error: {message}"


def test_validate_names_an_unreadable_label_folder(tmp_path, data, monkeypatch):
    real = os.listdir

    def listdir(path):  # a folder the user may not list
        if os.path.basename(os.fspath(path)) == "no":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    res = _invoke("validate", _config(tmp_path, data), "--no-build")
    assert res.exit_code == 2
    assert _last_line(res) == f"Error: data: {data / 'no'}: cannot list the folder (Permission denied)"


def test_empty_config_does_not_start_a_download(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    res = _invoke("validate", empty, "--no-build")
    assert res.exit_code == 2
    assert _last_line(res) == (f"Error: {empty}: the config is empty; give at least data.path (a "
                               "folder), or data.path: null to download Speech Commands from TFDS (2.4 GB)")


def test_name_must_be_a_plain_name(tmp_path, data):
    for name in ("/tmp/elsewhere", "../up", "..", "a/b"):
        res = _invoke("validate", _config(tmp_path, data), "--no-build", "--set", f"name={name}")
        assert res.exit_code == 2
        assert _last_line(res) == f"Error: name: must be a plain name (no / or \\, not . or ..), got {name!r}"


# -- 1. run folders ---------------------------------------------------------------------------

def _user_folder(root):
    """A folder of the user's own that happens to have stage-like sub-folders."""
    for sub in ("data", "teacher", "distill", "prune", "quantize", "export"):
        (root / sub).mkdir(parents=True)
        (root / sub / "thesis.txt").write_text(f"my {sub} notes")
    return root


def test_resume_into_a_folder_tfkd_did_not_make_deletes_nothing(tmp_path, data):
    mine = _user_folder(tmp_path / "mine")
    cfg = _config(tmp_path, data)
    res = _invoke("run", cfg, "--out", mine, "--resume", "--stop-after", "data")
    assert res.exit_code == 2
    assert _last_line(res) == (f"Error: output folder {mine} is not empty and is not a tfkd run "
                               f"folder (no {RUN_MARKER}); tfkd does not write into it: choose another --out")
    assert sorted(os.listdir(mine)) == ["data", "distill", "export", "prune", "quantize", "teacher"]
    assert (mine / "data" / "thesis.txt").read_text() == "my data notes"
    res = _invoke("run", cfg, "--out", mine, "--stop-after", "data")  # without --resume
    assert res.exit_code == 2 and "--resume" not in _last_line(res)


def test_resume_notices_a_changed_data_folder_and_honours_stop_after(tmp_path, data):
    cfg = load(_config(tmp_path, data))
    out = str(tmp_path / "run")
    lines = []
    m = run_pipeline(cfg, out, echo=lines.append, tty=False, stop_after="data")
    assert m["data"]["clips"] == {"train": 4, "validation": 2, "test": 2}
    write_wav(data / "yes" / "spk9_nohash_0.wav", tone(900, 1, 16000), 16000)  # a new clip
    lines.clear()
    m = run_pipeline(cfg, out, resume=True, echo=lines.append, tty=False, stop_after="data")
    assert lines[0] == "[data] running" and m["data"]["clips"]["train"] == 5
    # Unchanged now: skipped, and --stop-after still stops there (the student is not trained).
    os.unlink(os.path.join(out, "metrics.json"))  # as after a crash before the metrics write
    lines.clear()
    m = run_pipeline(cfg, out, resume=True, echo=lines.append, tty=False, stop_after="data")
    assert lines == ["[data] unchanged, skipped (--resume)"]
    assert m["data"]["clips"]["train"] == 5  # from the stage's own record
    assert not os.path.exists(os.path.join(out, "distill"))


def test_a_budget_without_its_measurement_fails(tmp_path, data):
    cfg = load(_config(tmp_path, data, "budgets: {min_int8_accuracy: 0.99, max_flash_bytes: 50000}\n"))
    metrics = {"quantize": {"accuracy_float": 0.9}, "export": {"tflite_bytes": 20000}}
    with pytest.raises(BudgetError, match=r"^budgets\.min_int8_accuracy 0\.99: not measured "
                                          r"\(quantize\.accuracy_tflm is missing from the run's metrics\)$"):
        check_budgets(cfg, metrics)
    with pytest.raises(BudgetError, match=r"budgets\.min_int8_accuracy 0\.99 .*0\.333"):
        check_budgets(cfg, {**metrics, "quantize": {"accuracy_tflm": 0.333, "accuracy_float": 0.9}})
    check_budgets(cfg, {**metrics, "quantize": {"accuracy_tflm": 0.995, "accuracy_float": 0.9}})


def test_a_second_writer_fails_at_once_with_the_holders_pid(tmp_path, data):
    cfg_path = _config(tmp_path, data)
    cfg = load(cfg_path)
    out = tmp_path / "run"
    inside, release = threading.Event(), threading.Event()

    def echo(line):
        if line == "[data] running":
            inside.set()
            release.wait(120)

    first = threading.Thread(target=run_pipeline, args=(cfg, str(out)),
                             kwargs={"echo": echo, "tty": False, "stop_after": "data"}, daemon=True)
    first.start()
    try:
        assert inside.wait(120)
        res = _invoke("run", cfg_path, "--out", out, "--resume", "--stop-after", "data")
        assert res.exit_code == 2
        assert _last_line(res) == (f"Error: output folder {out} is in use by another tfkd run "
                                   f"(PID {os.getpid()}): wait for it to finish, or choose another --out")
    finally:
        release.set()
        first.join(120)
    assert json.loads((out / "data" / "done.json").read_text())["metrics"]["clips"]["train"] == 4


def test_resume_does_not_replace_a_stage_folder_it_did_not_write(tmp_path, data):
    cfg = load(_config(tmp_path, data))
    out = tmp_path / "run"
    run_pipeline(cfg, str(out), echo=lambda *_: None, tty=False, stop_after="data")
    (out / "distill").mkdir()
    (out / "distill" / "mine.txt").write_text("keep me")
    with pytest.raises(RunError, match=r"distill was not written by tfkd \(no distill record in it\)"):
        run_pipeline(cfg, str(out), resume=True, echo=lambda *_: None, tty=False)
    assert (out / "distill" / "mine.txt").read_text() == "keep me"


# -- 5. eval on a damaged run folder ------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """A run folder with every file eval reads: a tiny int8 model, its student, labels."""
    import tensorflow as tf

    from tfkd.data.frontend import FeatureParams, feature_shape

    root = tmp_path_factory.mktemp("evalrun") / "run"
    fp = FeatureParams()
    for sub in ("data", "quantize", "prune", "distill"):
        (root / sub).mkdir(parents=True)
    (root / "data" / "features.json").write_text(json.dumps(fp.to_dict()))
    (root / "data" / "labels.json").write_text(json.dumps(["yes", "no", "_unknown_"]))
    keras.utils.set_random_seed(0)
    inp = keras.Input(feature_shape(fp))
    student = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inp)))
    student.save(root / "prune" / "student.keras")
    student.save(root / "distill" / "student.keras")
    conv = tf.lite.TFLiteConverter.from_keras_model(student)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.normal(size=(1,) + feature_shape(fp)).astype("float32")]
                                           for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    (root / "quantize" / "model_int8.tflite").write_bytes(conv.convert())
    np.save(root / "quantize" / "tflm_predictions.npy", np.zeros(1, np.int64))
    (root / "quantize" / "verification.json").write_text("{}")
    return root


@pytest.mark.parametrize("damage,name,why", [
    ("data/labels.json", b"[\"yes\", \"no\"", "damaged or unreadable (Expecting ',' delimiter"),
    ("data/features.json", b"{\"kind\": \"mfcc\", \"bogus\": 1}", "damaged or unreadable ("),
    ("quantize/model_int8.tflite", None,
     "damaged or unreadable (The model is not a valid Flatbuffer buffer)"),
    ("prune/student.keras", None, "is a damaged .keras file (File is not a zip file)"),
])
def test_eval_on_a_damaged_run_folder_is_one_line(tmp_path, fake_run, damage, name, why):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fake_run, run)
    target = run / damage
    target.write_bytes(name if name is not None else target.read_bytes()[:len(target.read_bytes()) // 2])
    clips = _folder(tmp_path / "clips")
    res = _invoke("eval", run, "--data", clips)
    assert res.exit_code == 2, res.output
    assert str(target) in _last_line(res) and why in _last_line(res)


def test_a_huge_zoo_model_is_refused_before_its_weights_exist(tmp_path, data):
    cfg = _config(tmp_path, data, "student: {model: ds_cnn, params: {channels: 200000, blocks: 1}}\n")
    cfg.write_text(cfg.read_text().replace(
        "student: {model: ds_cnn, params: {channels: 4, blocks: 1}}\n", ""))
    res = _invoke("run", cfg, "--out", tmp_path / "run", "--stop-after", "data")
    assert res.exit_code == 2, res.output
    assert _last_line(res).startswith("Error: student.params: the model has ")
    assert _last_line(res).endswith(f"parameters, more than the {limits.MAX_MODEL_PARAMS:,} limit")
    assert not (tmp_path / "run").exists()


def test_stale_tensorboard_files_of_a_killed_attempt_are_removed(tmp_path, data):
    cfg = load(_config(tmp_path, data))
    out = tmp_path / "run"
    run_pipeline(cfg, str(out), echo=lambda *_: None, tty=False, stop_after="data")
    stale = out / "logs" / "distill_gen0" / "train"
    stale.mkdir(parents=True)
    (stale / "events.out.tfevents.1.killed").write_bytes(b"half an attempt")
    run_pipeline(cfg, str(out), resume=True, echo=lambda *_: None, tty=False, stop_after="distill")
    assert not (stale / "events.out.tfevents.1.killed").exists()
    assert json.loads((out / "distill" / "done.json").read_text())["metrics"]


def test_skip_bad_files_covers_background_noise_in_the_data_stage(tmp_path, data):
    # A broken recording in _background_noise_ (here a 10 MHz header) stops the data stage
    # by name, and data.skip_bad_files lets the run go on without it.
    noise = data / "_background_noise_"
    noise.mkdir()
    write_wav(noise / "ok.wav", tone(200, 2, 16000), 16000)
    with open(noise / "broken.wav", "wb") as f:
        f.write(b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
                + (10_000_019).to_bytes(4, "little") + (20_000_038).to_bytes(4, "little")
                + (2).to_bytes(2, "little") + (16).to_bytes(2, "little") + b"data"
                + (0).to_bytes(4, "little"))
    labels = "  labels: [yes, no, _silence_]\n"
    cfg = _config(tmp_path, data)
    cfg.write_text(cfg.read_text().replace("  augment: {views: 1}\n", "  augment: {views: 1}\n" + labels))
    res = _invoke("run", cfg, "--out", tmp_path / "r1", "--stop-after", "data")
    assert res.exit_code == 1 and "broken.wav" in res.output, res.output
    res = _invoke("run", cfg, "--out", tmp_path / "r2", "--stop-after", "data",
                  "--set", "data.skip_bad_files=true")
    assert res.exit_code == 0, res.output
