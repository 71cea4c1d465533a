"""Teacher-output cache: run the teacher once per data set, not once per step.

With cached logits an epoch of distillation costs about what plain student training
costs. Augmentation changes the input every epoch, so a cache is only correct for a
fixed input set: either the un-augmented clips, or K augmented *views* per clip computed
once (``x`` of shape ``[N, K, ...]``), from which each epoch draws one view per clip.
A ``tf.data`` pipeline that changes between passes (random augmentation) is refused.
"""

import numpy as np
import tensorflow as tf

from tfkd._keras import predict
from tfkd.data.dataset import views_dataset
from tfkd.distill.distiller import INPUTS_KEY, TEACHER_LOGITS_KEY

__all__ = ["teacher_logits", "cached_dataset", "cache_teacher_logits", "NonDeterministicDataError"]


class NonDeterministicDataError(ValueError):
    """A data set whose inputs change between passes cannot have its teacher cached."""


def teacher_logits(teacher, x, batch_size=256):
    """Runs the teacher in inference mode over ``x``.

    Args:
      teacher: a Keras model returning logits.
      x: ``[N, ...]`` inputs, or ``[N, K, ...]`` with ``views=True``-style layout (the
        second axis is flattened for the teacher and restored).
      batch_size: inference batch size.

    Returns:
      float32 logits ``[N, C]`` (or ``[N, K, C]`` for view inputs).
    """
    x = np.asarray(x)
    in_rank = len(teacher.input_shape)
    if x.ndim == in_rank + 1:  # [N, K, ...] views
        n, k = x.shape[:2]
        flat = predict(teacher, x.reshape((n * k,) + x.shape[2:]), batch_size)
        return flat.reshape(n, k, -1).astype(np.float32)
    return predict(teacher, x, batch_size)


def cached_dataset(x, y, logits, batch_size, *, shuffle=True, seed=0, sample_weight=None):
    """A ``tf.data`` dataset yielding ``({"inputs", "teacher_logits"}, y[, w])`` batches.

    Args:
      x: inputs ``[N, ...]``, or ``[N, K, ...]`` for K cached augmented views per clip.
      y: integer labels ``[N]``.
      logits: teacher logits ``[N, C]`` (or ``[N, K, C]``), e.g. from :func:`teacher_logits`.
      batch_size: batch size.
      shuffle: reshuffle the clips every epoch (deterministic under ``seed``).
      seed: seed for the order and for drawing one view per clip each epoch.
      sample_weight: optional ``[N]`` weights.

    Returns:
      A ``tf.data.Dataset`` for ``Distiller.fit``.

    Raises:
      ValueError: the first dimensions (or view counts) of the arrays disagree.
    """
    logits = np.asarray(logits, np.float32)
    return views_dataset(x, y, batch_size, views=logits.ndim == 3, seed=seed, shuffle=shuffle,
                         logits=logits, sample_weight=sample_weight)


def cache_teacher_logits(teacher, dataset):
    """Caches a finite ``tf.data`` dataset of ``(x, y[, w])`` batches with teacher logits.

    The dataset is read twice; if its inputs differ between the passes (random
    augmentation) it is refused, since one cached logit per clip would then be wrong.

    Args:
      teacher: the teacher model.
      dataset: a finite, batched ``tf.data.Dataset``.

    Returns:
      A dataset of the same batches as ``({"inputs", "teacher_logits"}, y[, w])``.

    Raises:
      NonDeterministicDataError: the two passes differ.
    """
    first = list(dataset.as_numpy_iterator())
    second = list(dataset.as_numpy_iterator())
    if len(first) != len(second) or any(
            not np.array_equal(np.asarray(a[0]), np.asarray(b[0])) for a, b in zip(first, second)):
        raise NonDeterministicDataError(
            "cache_teacher_logits: the dataset's inputs change between passes (random "
            "augmentation?); cache K fixed augmented views with cached_dataset(x[N, K, ...]) "
            "or distill with the live teacher")
    batches = []
    for batch in first:
        x = batch[0]
        t = teacher(x, training=False).numpy()
        batches.append(({INPUTS_KEY: x, TEACHER_LOGITS_KEY: t},) + tuple(batch[1:]))

    def gen():
        yield from batches

    spec = tf.nest.map_structure(lambda a: tf.TensorSpec((None,) + np.shape(a)[1:], tf.as_dtype(np.asarray(a).dtype)),
                                 batches[0])
    return tf.data.Dataset.from_generator(gen, output_signature=spec)
