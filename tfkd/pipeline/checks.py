"""Checks that need models built but no data read: ``tfkd validate`` runs them.

:func:`dry_build` builds the teacher, the assistants and the student as the run would,
the distillation losses and the feature taps between each pair, and checks the pruned
layer names against the student, so that a bad model parameter or layer name is
reported (with its key path) before any data is read or any stage runs.
"""

from tfkd import limits
from tfkd.config import ConfigError
from tfkd.data import frontend, speech
from tfkd.distill.distiller import Distiller
from tfkd.models import build as build_model
from tfkd.registry import UnknownNameError

__all__ = ["dry_build", "num_labels", "check_model_size", "ModelSizeError"]


class ModelSizeError(ConfigError):
    """A zoo model beyond :data:`tfkd.limits.MAX_MODEL_PARAMS`; the message names its key."""


def num_labels(data):
    """The number of classes a run trains, from its ``data`` section alone.

    Args:
      data: a :class:`tfkd.config.DataConfig`.

    Returns:
      ``len(data.labels)`` when given; else the sub-folders of ``data.path`` (at least
      two); else the twelve Speech Commands classes of the TFDS source.
    """
    if data.labels is not None:
        return len(data.labels)
    if data.path is not None:  # every sub-folder is a label; the count is all a build needs
        return max(2, len(speech.label_folders(data.path)))
    return len(speech.KWS12)


def check_model_size(key, model, params, shape, n):
    """Counts a zoo model's parameters without allocating them and checks the bound.

    Args:
      key: the config key named in errors (``student.params``).
      model: the zoo model name.
      params: its builder parameters.
      shape: the input feature shape.
      n: the number of classes.

    Returns:
      The parameter count.

    Raises:
      ConfigError: ``<key>: <why>`` when the model cannot be built with ``params``.
      ModelSizeError: the model has more than ``limits.MAX_MODEL_PARAMS`` parameters.
    """
    # Count in a graph that is never run: a zoo model of billions of parameters would
    # otherwise take all memory before any bound is checked.
    try:
        count = limits.count_params_unallocated(lambda: build_model(model, shape, n, **params))
    except (TypeError, ValueError, UnknownNameError) as e:
        raise ConfigError(f"{key}: {e}") from None
    try:
        limits.check_model_params(count, key)
    except ValueError as e:
        raise ModelSizeError(str(e)) from None
    return count


def _build(key, model, params, shape, n):
    check_model_size(key, model, params, shape, n)
    return build_model(model, shape, n, **params)


def _load_teacher(path):
    from tfkd._keras import ModelFileError, load_user_model

    try:
        return load_user_model(path, "teacher.path")
    except ModelFileError as e:
        raise ConfigError(str(e)) from None


def dry_build(cfg):
    """Builds what a run of ``cfg`` builds, without data, and checks names against it.

    Args:
      cfg: a loaded :class:`tfkd.config.PipelineConfig`.

    Returns:
      The student model (built, untrained).

    Raises:
      ConfigError: a model parameter, feature layer or pruned layer name that does not
        work, with its key path (``student.params: ...``, ``distill.features[0]: ...``,
        ``prune.exclude: ...``).
    """
    shape, n = frontend.feature_shape(cfg.features), num_labels(cfg.data)
    chain = []  # (key of the model, model) in teaching order
    if cfg.teacher is not None:
        t = cfg.teacher
        chain.append(("teacher", _load_teacher(t.path) if t.path is not None
                      else _build("teacher.params", t.model, t.params, shape, n)))
    dc = cfg.distill
    for i, a in enumerate(dc.assistants):
        chain.append((f"distill.assistants[{i}]",
                      _build(f"distill.assistants[{i}].params", a.model, a.params, shape, n)))
    student = _build("student.params", cfg.student.model, cfg.student.params, shape, n)
    chain.append(("student", student))
    if dc.generations > 1:
        chain.append(("student", _build("student.params", cfg.student.model, cfg.student.params,
                                        shape, n)))
    if dc.features and cfg.teacher is None and not dc.assistants and dc.generations == 1:
        raise ConfigError("distill.features: feature distillation needs a teacher "
                          "(teacher is null)")
    loss = dict(dc.loss_params, name=dc.loss) if dc.loss_params else dc.loss
    for (t_key, teacher), (s_key, learner) in zip(chain, chain[1:]):
        for i, pair in enumerate(dc.features):
            try:
                Distiller(student=learner, teacher=teacher, temperature=dc.temperature,
                          alpha=dc.alpha, loss=loss, features=[pair])
            except (TypeError, ValueError) as e:
                raise ConfigError(f"distill.features[{i}]: {e} ({t_key} teaching {s_key})") from None
        if not dc.features:
            try:
                Distiller(student=learner, teacher=teacher, temperature=dc.temperature,
                          alpha=dc.alpha, loss=loss)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"distill: {e} ({t_key} teaching {s_key})") from None
    names = [layer.name for layer in student.layers]
    unknown = [x for x in cfg.prune.exclude if x not in names]
    if unknown:
        raise ConfigError(f"prune.exclude: the student has no layer {unknown[0]!r} "
                          f"(layers: {', '.join(names)})")
    return student
