"""Which test clips become golden vectors: one per label, so firmware tests see different outputs."""

import numpy as np

__all__ = ["select"]


def select(y, predictions, n):
    """Picks up to ``n`` test rows, one label at a time, preferring correctly classified clips.

    Taking the first ``n`` test clips gives golden vectors that are often all one class
    (the test split is grouped by label), so an on-device check would compare one output
    pattern ``n`` times. Here the rows go round the labels in label order: each turn
    takes, for each label that still has clips, its first correctly classified clip (by
    ``predictions``, the int8 model's own), else its first clip. With ``n`` at least the
    number of labels present, every one of them appears.

    Args:
      y: true labels ``[N]``.
      predictions: the int8 model's predicted labels ``[N]`` (same order as ``y``).
      n: how many rows at most.

    Returns:
      Row indices into ``y`` (a list, at most ``min(n, N)`` long, no repeats).

    Raises:
      ValueError: ``y`` and ``predictions`` differ in length, or ``n`` is negative.
    """
    y = np.asarray(y)
    predictions = np.asarray(predictions)
    if len(y) != len(predictions):
        raise ValueError(f"golden vectors: {len(y)} labels but {len(predictions)} predictions")
    if n < 0:
        raise ValueError(f"golden vectors: n must be >= 0, got {n}")
    queues = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        right = rows[predictions[rows] == label]
        wrong = rows[predictions[rows] != label]
        queues.append(list(right) + list(wrong))
    picked = []
    while len(picked) < min(n, len(y)):
        for q in queues:
            if q and len(picked) < n:
                picked.append(int(q.pop(0)))
    return picked
