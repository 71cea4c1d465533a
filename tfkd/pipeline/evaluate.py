"""Scores a finished run's models on any folder, with the run's own features and labels."""

import os

import numpy as np

from tfkd.data import frontend, speech
from tfkd.pipeline import artifacts
from tfkd.pipeline.training import accuracy
from tfkd.verify import score_int8

__all__ = ["EvalError", "evaluate_run", "eval_entries"]


class EvalError(ValueError):
    """A run folder or data folder that cannot be scored; the message names it."""


def eval_entries(path, run_labels, split):
    """The clips of ``split`` in a folder, with labels mapped to the run's label order.

    Folders that are not labels of the run map to ``_unknown_`` when the run has it.

    Returns:
      ``(index, entries)`` for :func:`tfkd.data.speech.load_waves`.

    Raises:
      EvalError: the folder does not exist, has strangers and no ``_unknown_``, or no clips.
    """
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
      ``{"accuracy_int8", "accuracy_tflm", "accuracy_float" (the pruned float student),
      "accuracy_teacher", "accuracy_distilled" (the student before pruning),
      "teacher_int8_agreement" (argmax agreement of the teacher and the int8 model on
      TFLite Micro), "tflm_litert_agreement", "n", "split"}``; the teacher keys are null
      for a run without a teacher.

    Raises:
      EvalError: a missing run artifact or unusable data folder.
    """
    run = artifacts.RunFolder(run_dir)
    try:
        fp = artifacts.load_feature_params(run.stage("data"))
        labels = artifacts.load_labels(run.stage("data"))
        flat = artifacts.load_quantized(run.stage("quantize")).flat
        student = run.load("prune")
    except (artifacts.ArtifactError, OSError) as e:
        raise EvalError(str(e)) from None
    index, entries = eval_entries(data_path, labels, split)
    waves, y, _ = speech.load_waves(index, entries, fp.sample_rate, fp.clip_samples)
    x = frontend.compute(waves, fp)
    scores, tflm_pred = score_int8(flat, x, y)
    # What each stage cost on these clips: the teacher, the student before pruning, and
    # how often the shipped int8 model (as TFLM runs it) says what the teacher says.
    teacher_acc = agreement = None
    if os.path.isdir(run.stage("teacher")):
        try:
            teacher = run.load("teacher")
        except (artifacts.ArtifactError, OSError) as e:
            raise EvalError(str(e)) from None
        teacher_pred = teacher.predict(x, batch_size=256, verbose=0).argmax(-1)
        teacher_acc = float(np.mean(teacher_pred == y))
        agreement = float(np.mean(teacher_pred == tflm_pred))
    try:
        distilled = run.load("distill")
    except (artifacts.ArtifactError, OSError) as e:
        raise EvalError(str(e)) from None
    return {"accuracy_int8": scores["accuracy_int8"], "accuracy_tflm": scores["accuracy_tflm"],
            "accuracy_float": accuracy(student, x, y),
            "accuracy_teacher": teacher_acc, "accuracy_distilled": accuracy(distilled, x, y),
            "teacher_int8_agreement": agreement,
            "tflm_litert_agreement": scores["tflm_litert_agreement"], "n": int(len(y)),
            "split": split}
