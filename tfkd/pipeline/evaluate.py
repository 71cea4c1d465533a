"""Scores a finished run's models on any folder, with the run's own features and labels."""

import os

import numpy as np

from tfkd.data import frontend, speech
from tfkd.pipeline import artifacts
from tfkd.train.fit import accuracy
from tfkd._keras import ModelFileError, check_user_model_file, predict
from tfkd.export.micro import io_quantization
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


def _read(path, load):
    """``load()``, with any failure of a damaged run file as one line naming ``path``."""
    try:
        return load()
    except (artifacts.ArtifactError, ModelFileError) as e:
        raise EvalError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - a run folder may come from anyone: one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EvalError(f"{path}: damaged or unreadable ({msg})") from None


def _label_list(labels):
    if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(l, str) for l in labels)):
        raise ValueError("not a list of at least 2 label names")
    return labels


def _model(run, stage):
    """A stage's model from a run folder: checked as any user's file (no code), then loaded."""
    path = os.path.join(run.stage(stage), artifacts.MODEL_FILES[stage])
    if os.path.exists(path):
        _read(path, lambda: check_user_model_file(path, "run folder"))
    return _read(path, lambda: run.load(stage))


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
    data_dir, quant_dir = run.stage("data"), run.stage("quantize")
    fp = _read(os.path.join(data_dir, artifacts.FEATURE_PARAMS),
               lambda: artifacts.load_feature_params(data_dir))
    labels = _read(os.path.join(data_dir, artifacts.LABELS),
                   lambda: _label_list(artifacts.load_labels(data_dir)))
    int8 = os.path.join(quant_dir, artifacts.INT8)
    flat = _read(int8, lambda: artifacts.load_quantized(quant_dir).flat)
    # LiteRT verifies the flatbuffer; TFLite Micro does not, so it never sees one that fails.
    _read(int8, lambda: io_quantization(flat))
    student = _model(run, "prune")
    index, entries = eval_entries(data_path, labels, split)
    waves, y, _ = speech.load_waves(index, entries, fp.sample_rate, fp.clip_samples)
    x = frontend.compute(waves, fp)
    scores, tflm_pred = score_int8(flat, x, y)
    # What each stage cost on these clips: the teacher, the student before pruning, and
    # how often the shipped int8 model (as TFLM runs it) says what the teacher says.
    teacher_acc = agreement = None
    if os.path.isdir(run.stage("teacher")):
        teacher = _model(run, "teacher")
        teacher_pred = predict(teacher, x).argmax(-1)
        teacher_acc = float(np.mean(teacher_pred == y))
        agreement = float(np.mean(teacher_pred == tflm_pred))
    distilled = _model(run, "distill")
    return {"accuracy_int8": scores["accuracy_int8"], "accuracy_tflm": scores["accuracy_tflm"],
            "accuracy_float": accuracy(student, x, y),
            "accuracy_teacher": teacher_acc, "accuracy_distilled": accuracy(distilled, x, y),
            "teacher_int8_agreement": agreement,
            "tflm_litert_agreement": scores["tflm_litert_agreement"], "n": int(len(y)),
            "split": split}
