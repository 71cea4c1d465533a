import os

import numpy as np

from tfkd.pipeline import artifacts
from tfkd.pipeline.artifacts import Quantized, RunFolder, Trained
from tfkd.pipeline.report import format_table, summary_rows, write_report

METRICS = {
    "teacher": {"accuracy": 0.9, "params": 1000},
    "distill": {"accuracy": 0.85, "params": 100, "generations": [0.8, 0.85]},
    "prune": {"method": "structured", "accuracy": 0.84, "params": 60, "sparsity": 0.0},
    "quantize": {"accuracy_int8": 0.83, "accuracy_tflm": 0.82, "tflm_litert_agreement": 0.99,
                 "int8_float_agreement": 0.97, "tflm_litert_max_step_diff": 1, "weight_sparsity": 0.0,
                 "ops": ["CONV_2D", "FULLY_CONNECTED"]},
    "export": {"tflite_bytes": 4096, "arena_bytes": 2000, "arena_bytes_host": 1600,
               "arena_margin_bytes": 400, "files": {"cc": "m.cc", "h": "m.h"}},
}


def test_summary_rows_and_table():
    rows = summary_rows(METRICS)
    assert rows[0] == ("teacher (float)", 0.9, "1000 params")
    assert rows[2] == ("student, pruned: structured (float)", 0.84, "60 params, sparsity 0.00")
    assert rows[4] == ("int8 in TFLite Micro", 0.82, "agreement 0.9900")
    assert rows[-1] == ("firmware", None, "4096 B flash, 2000 B arena")
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["stage", "test", "acc", "size"] and len(lines) == len(rows) + 1
    assert lines[1].split()[-3:] == ["0.9000", "1000", "params"]
    assert summary_rows({"distill": {"accuracy": 0.5, "params": 3}}) == [
        ("student, distilled (float)", 0.5, "3 params")]  # no teacher, no later stages
    unpruned = dict(METRICS, prune={"method": "none", "accuracy": 0.85, "params": 100})
    assert [r[0] for r in summary_rows(unpruned)] == [
        "teacher (float)", "student, distilled (float)", "int8 in LiteRT", "int8 in TFLite Micro",
        "firmware"]  # prune.method none: no "pruned" row repeating the distilled model


def test_report_reads_histories_and_predictions_from_the_run(tmp_path, tiny_data, make_cnn):
    run = RunFolder(tmp_path)
    for stage, history in (("teacher", {"loss": [2.0, 1.0], "val_accuracy": [0.3, 0.6]}),
                           ("distill", {"gen0": {"loss": [1.5], "val_accuracy": [0.5]}})):
        os.makedirs(run.stage(stage))
        artifacts.save(stage, run.stage(stage), Trained(model=make_cnn(), history=history))
    os.makedirs(run.stage("data"))
    artifacts.save("data", run.stage("data"), tiny_data)
    y = tiny_data.arrays("test")[1]
    os.makedirs(run.stage("quantize"))
    artifacts.save("quantize", run.stage("quantize"),
                   Quantized(flat=b"x", predictions=np.zeros_like(y), verification={}))
    path = write_report(str(tmp_path), {**METRICS, "data": {"labels": list(tiny_data.labels)}})
    text = open(path).read()
    assert path == run.report and text.startswith("# tfkd run report")
    assert "- born-again generations (test accuracy): [0.8, 0.85]" in text
    assert "- ops: CONV_2D, FULLY_CONNECTED" in text
    assert "1600 B measured on the host + 400 B margin = 2000 B" in text
    for name in ("training_curves", "accuracy_per_stage", "size_per_stage", "confusion_int8"):
        assert f"(plots/{name}.png)" in text
        assert open(run.plot(f"{name}.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_of_a_run_without_later_stages(tmp_path):
    path = write_report(str(tmp_path), {"distill": {"accuracy": 0.5, "params": 3}})
    text = open(path).read()
    assert "confusion" not in text and "firmware" not in text and "student, distilled" in text
