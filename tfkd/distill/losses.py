"""Logit distillation losses: small objects found by name.

Each loss maps ``(labels, teacher_logits, student_logits, temperature)`` to one value per
sample; the :class:`~tfkd.Distiller` reduces them over the batch. The value is the whole
distillation term as logged under ``distillation_loss`` (for ``kl`` that includes the T²
factor of Hinton et al. 2015, which keeps the soft-target gradients on the same scale as
the hard-label ones when T changes).
"""

import tensorflow as tf

from tfkd.registry import Registry

__all__ = ["KL", "MSE", "DKD", "DIST", "LOSSES", "get_loss"]

_EPS = 1e-12


def _kl(p_logits, q_logits, temperature):
    """Per-sample KL(softmax(p/T) || softmax(q/T)), computed from log-probabilities."""
    log_p = tf.nn.log_softmax(p_logits / temperature, axis=-1)
    log_q = tf.nn.log_softmax(q_logits / temperature, axis=-1)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


class KL:
    """Hinton et al. 2015: T² · KL(softmax(teacher/T) ‖ softmax(student/T))."""

    name = "kl"
    needs_labels = False

    def __call__(self, labels, teacher_logits, student_logits, temperature):
        t = tf.cast(temperature, student_logits.dtype)
        return t * t * _kl(teacher_logits, student_logits, t)

    def get_config(self):
        return {"name": self.name}


class MSE:
    """Mean squared error between raw logits (Ba & Caruana 2014); temperature unused."""

    name = "mse"
    needs_labels = False

    def __call__(self, labels, teacher_logits, student_logits, temperature):
        return tf.reduce_mean(tf.square(teacher_logits - student_logits), axis=-1)

    def get_config(self):
        return {"name": self.name}


class DKD:
    """Decoupled KD (Zhao et al. 2022): T² · (alpha · TCKD + beta · NCKD).

    TCKD is the binary KL between the target-class probability of teacher and student;
    NCKD the KL between their distributions over the non-target classes alone.

    Args:
      alpha: weight of the target-class term (paper: 1.0).
      beta: weight of the non-target term (paper: 8.0).
    """

    name = "dkd"
    needs_labels = True

    def __init__(self, alpha=1.0, beta=8.0):
        if alpha < 0:
            raise ValueError(f"dkd alpha: must be >= 0, got {alpha}")
        if beta < 0:
            raise ValueError(f"dkd beta: must be >= 0, got {beta}")
        self.alpha = float(alpha)
        self.beta = float(beta)

    def __call__(self, labels, teacher_logits, student_logits, temperature):
        t = tf.cast(temperature, student_logits.dtype)
        n = tf.shape(student_logits)[-1]
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        mask = tf.one_hot(labels, n, dtype=student_logits.dtype)
        p_t = tf.nn.softmax(teacher_logits / t, axis=-1)
        p_s = tf.nn.softmax(student_logits / t, axis=-1)
        bt = tf.stack([tf.reduce_sum(p_t * mask, -1), tf.reduce_sum(p_t * (1 - mask), -1)], -1)
        bs = tf.stack([tf.reduce_sum(p_s * mask, -1), tf.reduce_sum(p_s * (1 - mask), -1)], -1)
        tckd = tf.reduce_sum(bt * (tf.math.log(bt + _EPS) - tf.math.log(bs + _EPS)), -1)
        # Non-target distributions: push the target logit to -inf (a large negative
        # offset keeps it finite under float32).
        big = tf.cast(1000.0, student_logits.dtype) * mask
        nckd = _kl(teacher_logits / t - big, student_logits / t - big, 1.0)
        return t * t * (self.alpha * tckd + self.beta * nckd)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha, "beta": self.beta}


def _pearson_distance(a, b, axis):
    a = a - tf.reduce_mean(a, axis=axis, keepdims=True)
    b = b - tf.reduce_mean(b, axis=axis, keepdims=True)
    num = tf.reduce_sum(a * b, axis=axis)
    den = tf.norm(a, axis=axis) * tf.norm(b, axis=axis) + 1e-8
    return 1.0 - num / den


class DIST:
    """DIST (Huang et al. 2022): Pearson-correlation matching, inter- and intra-class.

    The inter-class term is per sample (correlation across classes); the intra-class
    term is per class across the batch and is added to every sample's value.

    Args:
      beta: weight of the inter-class term (paper: 1.0).
      gamma: weight of the intra-class term (paper: 1.0).
    """

    name = "dist"
    needs_labels = False

    def __init__(self, beta=1.0, gamma=1.0):
        if beta < 0:
            raise ValueError(f"dist beta: must be >= 0, got {beta}")
        if gamma < 0:
            raise ValueError(f"dist gamma: must be >= 0, got {gamma}")
        self.beta = float(beta)
        self.gamma = float(gamma)

    def __call__(self, labels, teacher_logits, student_logits, temperature):
        t = tf.cast(temperature, student_logits.dtype)
        p_t = tf.nn.softmax(teacher_logits / t, axis=-1)
        p_s = tf.nn.softmax(student_logits / t, axis=-1)
        inter = _pearson_distance(p_s, p_t, axis=-1)
        intra = tf.reduce_mean(_pearson_distance(p_s, p_t, axis=0))
        return t * t * (self.beta * inter + self.gamma * intra)

    def get_config(self):
        return {"name": self.name, "beta": self.beta, "gamma": self.gamma}


LOSSES = Registry("loss", {"kl": KL, "mse": MSE, "dkd": DKD, "dist": DIST})


def get_loss(spec):
    """Builds a distillation loss from a name, a ``{"name": ..., **params}`` dict or an object.

    Raises:
      UnknownNameError: the name is not registered (the message lists the valid ones).
    """
    if isinstance(spec, str):
        return LOSSES.get(spec)()
    if isinstance(spec, dict):
        params = dict(spec)
        return LOSSES.get(params.pop("name", None))(**params)
    if callable(spec) and hasattr(spec, "get_config"):
        return spec
    raise TypeError(f"loss: must be a name ({', '.join(LOSSES.names())}) or a loss object, "
                    f"got {spec!r}")
