"""Two local workers (TF_CONFIG on localhost ports) run a whole pipeline together."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tfkd import distribute
from tfkd.export import micro
from tinyrun import tiny

TINY = tiny(teacher={"model": "ds_cnn", "params": {"channels": 8, "blocks": 1}, "epochs": 1,
                     "batch_size": 16},
            distill={"epochs": 2, "batch_size": 16}, distribute={"strategy": "multi_worker"})


@pytest.mark.slow
@pytest.mark.skipif(not micro.tflm_available(), reason="tflite-micro not installed")
def test_two_local_workers_finish_the_pipeline(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump(TINY, sort_keys=False))
    out = tmp_path / "run"
    procs = []
    for tf_config in distribute.local_cluster(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=tf_config)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tfkd.cli", "run", str(cfg), "--out", str(out), "--verbose"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True))
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["distribute"] == {"strategy": "multi_worker", "replicas": 2}
    assert (out / "export" / "tiny.tflite").is_file()
    # The other worker trained every stage with the chief, then left the rest to it.
    assert "[teacher] done (worker 1)" in logs[1] and "[prune] done (worker 1)" in logs[1]
    assert "[quantize] running" not in logs[1] and "[quantize] running" in logs[0]
    assert not (out / ".backup").exists()
    # The two replicas trained in sync: the same loss on both workers, epoch by epoch.
    lines = [[l for l in log.splitlines() if "distill epoch" in l] for log in logs]
    assert lines[0] == lines[1] and len(lines[0]) == 2
