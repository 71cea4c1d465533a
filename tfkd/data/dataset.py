"""The data a training stage sees: one small object in front of the feature arrays.

Stages reach their data only through :class:`Data`: the labels, the feature settings,
``tf.data`` training batches that draw one augmented view per clip each epoch, and the
validation and test splits. Today it is backed by in-memory arrays (the data stage's
``features.npz``); a streaming feature store can stand behind the same methods.
"""

import numpy as np
import tensorflow as tf

from tfkd._keras import predict
from tfkd.data import frontend

__all__ = ["Data", "views_dataset", "sample_rows", "INPUTS_KEY", "TEACHER_LOGITS_KEY"]

#: Keys of an input dict that carries cached teacher logits (the Distiller reads them).
INPUTS_KEY = "inputs"
TEACHER_LOGITS_KEY = "teacher_logits"

#: The evaluation splits (the training split has K views per clip and its own methods).
SPLITS = ("validation", "test")


def views_dataset(x, y, batch_size, *, views=False, seed=0, shuffle=True, logits=None,
                  sample_weight=None):
    """``tf.data`` batches that draw one of K fixed views per clip each epoch.

    Args:
      x: inputs ``[N, ...]``, or ``[N, K, ...]`` for K augmented views per clip.
      y: integer labels ``[N]``.
      batch_size: batch size.
      views: ``x`` (and ``logits``) have a view axis after the clip axis.
      seed: seed of the clip order and of the view drawn per clip and epoch.
      shuffle: reshuffle the clips every epoch (deterministic under ``seed``).
      logits: optional teacher logits ``[N, C]`` (or ``[N, K, C]``); then the inputs are
        ``{"inputs": x, "teacher_logits": t}`` as the Distiller reads them.
      sample_weight: optional ``[N]`` weights.

    Returns:
      A dataset of ``(x, y[, w])`` batches.

    Raises:
      ValueError: the first dimensions (or view counts) of the arrays disagree.
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    n = len(y)
    if logits is not None:
        logits = np.asarray(logits, np.float32)
        if len(logits) != n:
            raise ValueError(f"views_dataset: x has {len(x)} rows, y {n}, logits {len(logits)}")
        if views and x.shape[1] != logits.shape[1]:
            raise ValueError(f"views_dataset: x has {x.shape[1]} views, logits {logits.shape[1]}")
    if len(x) != n:
        raise ValueError(f"views_dataset: x has {len(x)} rows, y {n}")
    xs, ys = tf.constant(x), tf.constant(y)
    ls = None if logits is None else tf.constant(logits)
    ws = None if sample_weight is None else tf.constant(np.asarray(sample_weight, np.float32))
    k = x.shape[1] if views else 1

    def pick(i, r):
        # Gathers a whole batch at once: per-element maps cost more than the student step.
        if views:
            iv = tf.stack([i, tf.math.floormod(r, k)], axis=-1)
            xi = tf.gather_nd(xs, iv)
            li = None if ls is None else tf.gather_nd(ls, iv)
        else:
            xi = tf.gather(xs, i)
            li = None if ls is None else tf.gather(ls, i)
        inputs = xi if li is None else {INPUTS_KEY: xi, TEACHER_LOGITS_KEY: li}
        out = (inputs, tf.gather(ys, i))
        return out if ws is None else out + (tf.gather(ws, i),)

    idx = tf.data.Dataset.range(n)
    if shuffle:
        idx = idx.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    rnd = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((idx, rnd)).batch(batch_size).map(pick).prefetch(1)
    # One input thread, no autotuning: a batch gather is tiny, and on a small CPU the
    # extra threads only take cores from the training step (measured 9.4 s vs 13.9 s
    # for 6 epochs of the ResNet teacher on 2 cores; plain NumPy fit: 11.1 s).
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    return ds.with_options(options)


class Data:
    """Features and labels of one run, as the training and checking steps read them.

    Args:
      labels: label names in model order.
      features: the :class:`tfkd.data.frontend.FeatureParams` the features were made with.
      train: ``(x [N, K, ...], y [N])``: K augmented views per training clip.
      validation: ``(x [N, ...], y [N])``.
      test: ``(x [N, ...], y [N])``.
    """

    def __init__(self, labels, features, train, validation, test):
        self.labels = tuple(labels)
        self.features = features
        self._train = tuple(np.asarray(a) for a in train)
        self._eval = {"validation": tuple(np.asarray(a) for a in validation),
                      "test": tuple(np.asarray(a) for a in test)}

    @property
    def num_train(self):
        """Training clips (N; each has K views)."""
        return len(self._train[1])

    @property
    def views(self):
        """Augmented views per training clip (K)."""
        return int(self._train[0].shape[1])

    @property
    def input_shape(self):
        """The model input shape ``(frames, channels, 1)``."""
        return frontend.feature_shape(self.features)

    def steps_per_epoch(self, batch_size):
        """Training batches per epoch (one view per clip)."""
        return int(np.ceil(self.num_train / batch_size))

    def train_dataset(self, batch_size, seed, logits=None):
        """Training batches, one augmented view per clip per epoch (see :func:`views_dataset`).

        Args:
          batch_size: batch size.
          seed: clip order and view seed.
          logits: optional cached teacher logits ``[N, K, C]`` from :meth:`logits`.
        """
        return views_dataset(*self._train, batch_size, views=True, seed=seed, logits=logits)

    def dataset(self, split, batch_size, logits=None):
        """Validation or test batches in file order, with optional cached logits ``[N, C]``."""
        x, y = self.arrays(split)
        return views_dataset(x, y, batch_size, shuffle=False, logits=logits)

    def arrays(self, split):
        """``(x, y)`` of the validation or test split (small enough for memory)."""
        if split not in SPLITS:
            raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
        return self._eval[split]

    def train_arrays(self):
        """``(x [N, K, ...], y [N])`` of the training split (for saving the in-memory set)."""
        return self._train

    def logits(self, model, split="train", batch_size=256):
        """``model``'s outputs over every training view ``[N, K, C]`` or an eval split ``[N, C]``."""
        if split == "train":
            x = self._train[0]
            n, k = x.shape[:2]
            flat = predict(model, x.reshape((n * k,) + x.shape[2:]), batch_size)
            return flat.reshape(n, k, -1).astype(np.float32)
        return predict(model, self.arrays(split)[0], batch_size)

    def representative(self, n, seed):
        """``n`` clean training inputs (view 0), drawn without replacement under ``seed``."""
        return sample_rows(self._train[0][:, 0], n, seed)


def sample_rows(x, n, seed=0):
    """``n`` rows of ``x`` drawn without replacement under ``seed``, in their order."""
    x = np.asarray(x)
    if n >= len(x):
        return x
    idx = np.random.default_rng(seed).choice(len(x), size=n, replace=False)
    return x[np.sort(idx)]
