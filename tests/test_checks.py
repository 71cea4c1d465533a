import os
import re

import pytest
import yaml
from click.testing import CliRunner

from tfkd import keras, limits
from tfkd.cli import cli
from tfkd.config import ConfigError, load
from tfkd.pipeline.checks import check_model_size, dry_build, num_labels

ROOT = os.path.join(os.path.dirname(__file__), "..")
MINI = os.path.abspath(os.path.join(ROOT, "tfkd", "assets", "speech_commands_mini"))
SMALL = {"data": {"path": MINI, "labels": ["yes", "no", "_silence_", "_unknown_"]},
         "teacher": {"model": "ds_cnn", "params": {"channels": 16, "blocks": 2}},
         "student": {"model": "ds_cnn", "params": {"channels": 8, "blocks": 2}}}


def _cfg(tmp_path, *overrides, raw=SMALL):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load(str(path), list(overrides))


def _check(tmp_path, *overrides, **kw):
    return dry_build(_cfg(tmp_path, *overrides, **kw))


@pytest.mark.parametrize("overrides,message", [
    (["student.params={size: xl}"], "student.params: size: must be one of xs, s, m, l, got 'xl'"),
    (["teacher.params={widht: 3}"], "teacher.params: model 'ds_cnn': bad parameters"),
    (["prune.exclude=[nope]"], "prune.exclude: the student has no layer 'nope' (layers: features, conv0,"),
    (["distill.features=[{teacher: nope, student: relu_pw1}]"],
     "distill.features[0]: features: teacher has no layer 'nope'"),
    (["distill.features=[{teacher: relu_pw1, student: nope}]"],
     "distill.features[0]: features: student has no layer 'nope'"),
    (["distill.assistants=[{model: ds_cnn, params: {blocks: -1}}]"],
     "distill.assistants[0].params: channels/blocks: must be positive"),
    (["teacher=null", "distill.features=[{teacher: relu_pw1, student: relu_pw1}]"],
     "distill.features: feature distillation needs a teacher (teacher is null)"),
])
def test_dry_build_names_the_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as e:
        _check(tmp_path, *overrides)
    assert str(e.value).startswith(message), str(e.value)


def test_the_issue_cases_fail_before_any_data_is_read(tmp_path):
    """The five cases `tfkd validate` used to pass (issue 11), each with its key path."""
    cases = {"student.params={size: xl}": "student.params:",
             "distill.loss_params={beta: -1}": "distill.loss_params:",
             "prune.exclude=[nope]": "prune.exclude:",
             "distill.features=[{teacher: nope, student: relu_pw1}]": "distill.features[0]:",
             "distill.assistants=[{model: ds_cnn, parms: {}}]": "distill.assistants[0].parms:"}
    for override, key in cases.items():
        extra = ["distill.loss=dkd"] if "beta" in override else []
        with pytest.raises(ConfigError) as e:
            _check(tmp_path, override, *extra)
        assert str(e.value).startswith(key), str(e.value)


def test_valid_configs_build(tmp_path):
    student = _check(tmp_path, "prune.exclude=[logits]", "distill.generations=2",
                     "distill.features=[{teacher: relu_pw2, student: relu_pw2}]",
                     "distill.assistants=[{model: ds_cnn, params: {channels: 12, blocks: 2}}]")
    assert student.output_shape == (None, 4) and student.get_layer("logits")


@pytest.mark.slow
def test_shipped_pipelines_build():
    for name in ("kws_micro.yaml", "kws_quickstart.yaml"):
        dry_build(load(os.path.join(ROOT, "pipelines", name), [f"data.path={MINI}"]))


def test_a_teacher_file_is_loaded_and_checked(tmp_path):
    wrong = keras.Sequential([keras.layers.Input((49, 40, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(4, name="out")])
    wrong.save(tmp_path / "t.keras")
    _check(tmp_path, f"teacher={{path: {tmp_path / 't.keras'}}}")
    with pytest.raises(ConfigError, match=r"^distill: student/teacher: output widths differ"):
        _check(tmp_path, f"teacher={{path: {tmp_path / 't.keras'}}}", "data.labels=[yes, no]")
    with pytest.raises(ConfigError, match=r"^distill.features\[0\]: features: teacher has no layer 'x'"):
        _check(tmp_path, f"teacher={{path: {tmp_path / 't.keras'}}}",
               "distill.features=[{teacher: x, student: relu_pw1}]")


def test_a_huge_zoo_model_is_refused_before_it_is_allocated(tmp_path):
    # 200,000 channels: about 1.6e11 weights; building them for real would take all memory.
    with pytest.raises(ConfigError, match=r"^student.params: the model has [\d,]+ parameters, "
                                          r"more than the [\d,]+ limit$"):
        _check(tmp_path, "student.params={channels: 200000, blocks: 4}")


def test_the_label_count_follows_the_data_section(tmp_path):
    # Reference: the clip folders of the bundled set, counted here by hand.
    folders = [d for d in os.listdir(MINI) if os.path.isdir(os.path.join(MINI, d))
               and d != "_background_noise_"]
    no_labels = {**SMALL, "data": {"path": MINI}}
    assert len(folders) == 11
    assert num_labels(_cfg(tmp_path, raw=no_labels).data) == len(folders)
    assert _check(tmp_path, raw=no_labels).output_shape == (None, len(folders))
    assert num_labels(_cfg(tmp_path).data) == 4
    assert num_labels(_cfg(tmp_path, "data.path=null", raw=no_labels).data) == 12  # KWS-12 (TFDS)


@pytest.mark.parametrize("override,key", [
    ("student.params={channels: 200000, blocks: 4}", "student.params"),
    ("distill.assistants=[{model: ds_cnn, params: {channels: 200000, blocks: 1}}]",
     "distill.assistants[0].params"),
])
def test_validate_and_run_refuse_a_huge_model_with_the_same_line(tmp_path, override, key):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    lines = []
    for args in (["validate", str(path)],
                 ["run", str(path), "--out", str(tmp_path / "run"), "--stop-after", "data"]):
        r = CliRunner().invoke(cli, [*args, "--set", override])
        assert r.exit_code == 2, (args, r.output)
        lines.append(r.output.strip().splitlines()[-1])
    assert lines[0] == lines[1], lines
    assert re.fullmatch(rf"Error: {re.escape(key)}: the model has [\d,]+ parameters, more than "
                        rf"the {limits.MAX_MODEL_PARAMS:,} limit", lines[0]), lines[0]
    assert not (tmp_path / "run").exists()


def test_check_model_size_names_the_key_and_counts_as_keras(tmp_path):
    student = _check(tmp_path)  # 4 labels, channels 8, blocks 2
    shape = student.input_shape[1:]
    with pytest.raises(ConfigError, match=r"^student.params: size: must be one of"):
        check_model_size("student.params", "ds_cnn", {"size": "xl"}, shape, 4)
    assert check_model_size("student.params", "ds_cnn", {"channels": 8, "blocks": 2},
                            shape, 4) == student.count_params()
