"""Long runs survive preemption: an interrupted training stage resumes from its last epoch."""

import json
import os
import re

import pytest
import yaml
from click.testing import CliRunner

from tfkd.cli import cli
from tfkd.train import fit as training
from tinyrun import tiny

TINY = tiny(teacher={"model": "ds_cnn", "params": {"channels": 8, "blocks": 1}, "epochs": 1,
                     "batch_size": 16},
            distill={"epochs": 4, "batch_size": 16})


class Preempted(Exception):
    """Stands in for a machine going away mid-stage."""


def _run(tmp_path, *extra):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "run"),
                                    "--stop-after", "distill", "--verbose", *extra])


@pytest.mark.slow
def test_interrupted_distill_stage_resumes_from_its_last_epoch(tmp_path, monkeypatch):
    line = training.EpochLine.on_epoch_end

    def preempt_after_two(self, epoch, logs=None):
        line(self, epoch, logs)
        if self.label == "distill" and epoch == 1:
            raise Preempted("machine preempted")

    monkeypatch.setattr(training.EpochLine, "on_epoch_end", preempt_after_two)
    first = _run(tmp_path)
    assert isinstance(first.exception, Preempted)
    assert "distill epoch 2:" in first.output
    run = tmp_path / "run"
    assert (run / "teacher" / "done.json").is_file() and not (run / "distill").exists()
    assert os.listdir(run / ".backup" / "distill" / "distill")  # the epoch-2 checkpoint
    teacher_record = (run / "teacher" / "done.json").read_text()
    monkeypatch.undo()

    second = _run(tmp_path, "--resume")
    assert second.exit_code == 0, second.output
    assert "[teacher] unchanged" in second.output
    epochs = [int(e) for e in re.findall(r"distill epoch (\d+):", second.output)]
    assert epochs == [3, 4]  # epochs 1 and 2 are not trained again
    assert (run / "teacher" / "done.json").read_text() == teacher_record  # untouched
    assert not (run / ".backup").exists()  # removed once the stage finished
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["distribute"] == {"strategy": "none", "replicas": 1}


def test_a_changed_shard_stops_the_next_stage_with_its_name(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    out = tmp_path / "run"
    first = CliRunner().invoke(cli, ["run", str(path), "--out", str(out), "--stop-after", "data"])
    assert first.exit_code == 0, first.output
    shard = out / "data" / "store" / "train-00000.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    second = CliRunner().invoke(cli, ["run", str(path), "--out", str(out), "--resume",
                                      "--stop-after", "teacher"])
    assert second.exit_code == 1
    assert "store: shard train-00000.tfrecord" in second.output
    assert "does not match its manifest checksum" in second.output
