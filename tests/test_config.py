import dataclasses
import os

import pytest
import yaml

from tfkd.config import ConfigError, PipelineConfig, from_dict, load, to_dict
from tfkd.distill.features import FeaturePair

ROOT = os.path.join(os.path.dirname(__file__), "..")
MINI = os.path.abspath(os.path.join(ROOT, "tfkd", "assets", "speech_commands_mini"))


def _load(tmp_path, *overrides, raw=None):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw or {"data": {"path": MINI}}))
    return load(str(path), list(overrides))


@pytest.mark.parametrize("override,message", [
    ("distill.alpha=1.01", "distill.alpha: must be in [0, 1], got 1.01"),
    ("distill.alpha=-0.01", "distill.alpha: must be in [0, 1], got -0.01"),
    ("prune.ratio=1", "prune.ratio: must be in [0, 1), got 1.0"),
    ("prune.batch_size=0", "prune.batch_size: must be >= 1 or null, got 0"),
    ("quantize.qat_batch_size=0", "quantize.qat_batch_size: must be >= 1 or null, got 0"),
    ("prune.method=magnitude", None),
    ("prune.epochs=0", None),
    ("quantize.max_step_diff=-1", "quantize.max_step_diff: must be >= 0, got -1"),
    ("export.arena_margin=-0.1", "export.arena_margin: must be >= 0, got -0.1"),
    ("budgets.min_int8_accuracy=1.5", "budgets.min_int8_accuracy: must be in [0, 1] or null, got 1.5"),
    ("data.labels=[yes]", "data.labels: must be a list of at least 2 names or null, got ['yes']"),
    ("data.labels=[yes, 3]", "data.labels[1]: must be a string, got 3"),
    ("prune.exclude=[1]", "prune.exclude[0]: must be a string, got 1"),
    ("prune.exclude=logits", "prune.exclude: must be a list, got 'logits'"),
    ("teacher.path=/no/such.keras", "teacher.path: file does not exist, got '/no/such.keras'"),
    ("data.augment.views=0", "data.augment.views: must be an integer >= 1, got 0"),
])
def test_each_rule_lives_with_its_field(tmp_path, override, message):
    if message is None:  # the valid side of a boundary
        _load(tmp_path, override)
        return
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, override)
    assert str(e.value) == message


def test_magnitude_pruning_needs_a_fine_tuning_epoch(tmp_path):
    with pytest.raises(ConfigError, match=r"^prune.epochs: must be >= 0 \(>= 1 for magnitude pruning"):
        _load(tmp_path, "prune.method=magnitude", "prune.epochs=0")
    assert _load(tmp_path, "prune.method=magnitude", "prune.epochs=1").prune.epochs == 1


def test_loss_parameters_are_checked_by_the_loss_itself(tmp_path):
    with pytest.raises(ConfigError, match=r"^distill.loss_params: .*must be .*>= 0, got -1"):
        _load(tmp_path, "distill.loss=dkd", "distill.loss_params={beta: -1}")
    with pytest.raises(ConfigError, match=r"^distill.loss_params: .*gamma"):
        _load(tmp_path, "distill.loss=dkd", "distill.loss_params={gamma: 1}")
    assert _load(tmp_path, "distill.loss=dist", "distill.loss_params={beta: 2}").distill.loss_params == {"beta": 2}


def test_list_fields_are_typed(tmp_path):
    cfg = _load(tmp_path, "distill.features=[{teacher: a, student: b, weight: 2}]",
                "distill.assistants=[{model: ds_cnn, params: {channels: 8}}]")
    assert cfg.distill.features == (FeaturePair(teacher="a", student="b", weight=2.0),)
    assert cfg.distill.assistants[0].model == "ds_cnn" and cfg.distill.assistants[0].params == {"channels": 8}
    cases = [("distill.assistants=[{model: ds_cnn, parms: {}}]",
              "distill.assistants[0].parms: unknown key (allowed: model, params)"),
             ("distill.assistants=[{model: ds_cnn_xl}]", "distill.assistants[0].model: unknown model"),
             ("distill.features=[{teacher: a}]", "distill.features[0].student: required"),
             ("distill.features=[{teacher: a, student: b, loss: hnt}]", "distill.features[0]: Unknown feature loss 'hnt'")]
    for override, message in cases:
        with pytest.raises(ConfigError) as e:
            _load(tmp_path, override)
        assert str(e.value).startswith(message), str(e.value)


def test_resolved_config_round_trips(tmp_path):
    cfg = _load(tmp_path, "distill.features=[{teacher: a, student: b}]", "prune.exclude=[logits]",
                "data.labels=[yes, no]")
    raw = to_dict(cfg)
    assert raw["prune"]["exclude"] == ["logits"] and raw["distill"]["features"][0]["teacher"] == "a"
    assert from_dict(yaml.safe_load(yaml.safe_dump(raw))) == cfg


def test_configs_are_frozen_and_defaults_are_valid():
    cfg = PipelineConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1
    assert cfg.prune.batch_size is None and cfg.quantize.qat_batch_size is None


def test_yes_no_on_off_stay_strings(tmp_path):
    cfg = _load(tmp_path, raw={"data": {"path": MINI, "labels": ["yes", "no", "on", "off"]}})
    assert cfg.data.labels == ("yes", "no", "on", "off")
