"""Scores a finished run's models on any folder, with the run's own features and labels."""

import json
import os

import numpy as np

from tfkd._keras import keras
from tfkd.data import frontend, speech
from tfkd.compress import quantize as q
from tfkd.pipeline.training import accuracy

__all__ = ["EvalError", "evaluate_run"]


class EvalError(ValueError):
    """A run folder or data folder that cannot be scored; the message names it."""


def _entries(path, run_labels, split):
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise EvalError(f"--data: folder {root} does not exist")
    index = speech.scan(root, None)
    names = index.labels
    unknown = run_labels.index(speech.UNKNOWN) if speech.UNKNOWN in run_labels else None
    strangers = [n for n in names if n not in run_labels]
    if strangers and unknown is None:
        raise EvalError(f"--data: folders {', '.join(strangers)} are not labels of this model "
                        f"({', '.join(run_labels)}) and it has no {speech.UNKNOWN} label")
    remap = [run_labels.index(n) if n in run_labels else unknown for n in names]
    entries = [speech.Entry(e.path, remap[e.label], e.split) for e in index.split(split)]
    if not entries:
        raise EvalError(f"--data: no clips in split {split!r} of {root}")
    return index, entries


def evaluate_run(run_dir, data_path, split="test"):
    """Scores the run's int8 model (LiteRT and TFLM) and its float student.

    Returns:
      ``{"accuracy_int8", "accuracy_tflm", "accuracy_float", "tflm_litert_agreement", "n"}``.

    Raises:
      EvalError: a missing run artifact or unusable data folder.
    """
    need = {"features": os.path.join(run_dir, "data", "features.json"),
            "labels": os.path.join(run_dir, "data", "labels.json"),
            "int8 model": os.path.join(run_dir, "quantize", "model_int8.tflite"),
            "student": os.path.join(run_dir, "prune", "student.keras")}
    for what, p in need.items():
        if not os.path.exists(p):
            raise EvalError(f"{run_dir}: no {what} ({p}); is it a finished tfkd run?")
    fp = frontend.FeatureParams.load(need["features"])
    with open(need["labels"]) as f:
        labels = json.load(f)
    index, entries = _entries(data_path, labels, split)
    waves, y, _ = speech.load_waves(index, entries, fp.sample_rate, fp.clip_samples)
    x = frontend.compute(waves, fp)
    with open(need["int8 model"], "rb") as f:
        flat = f.read()
    scores, _ = q.score_int8(flat, x, y)
    student = keras.models.load_model(need["student"], compile=False)
    return {"accuracy_int8": scores["accuracy_int8"], "accuracy_tflm": scores["accuracy_tflm"],
            "accuracy_float": accuracy(student, x, y),
            "tflm_litert_agreement": scores["tflm_litert_agreement"], "n": int(len(y)),
            "split": split}
