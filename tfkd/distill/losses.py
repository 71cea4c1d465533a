"""Logit distillation losses: small objects found by name.

Each loss maps ``(labels, teacher_logits, student_logits, temperature)`` to one value per
sample; the :class:`~tfkd.Distiller` reduces them over the batch. The value is the whole
distillation term as logged under ``distillation_loss`` (for ``kl`` that includes the T²
factor of Hinton et al. 2015, which keeps the soft-target gradients on the same scale as
the hard-label ones when T changes).

Presets reproduce a paper's weighting: ``get_loss({"name": "dkd", "preset": "paper"})``
sets the loss's own parameters and carries the Distiller settings (``temperature`` and
``alpha``) that give the paper's CE : distillation ratio in tfkd's
``alpha · CE + (1 − alpha) · distillation`` form (ratio 1 : w ⇒ ``alpha = 1 / (1 + w)``;
the total is the paper's divided by ``1 + w``, which Adam does not notice; with SGD
multiply the learning rate by ``1 + w``).
"""

import inspect

from tfkd.lazy_tf import tf
from tfkd.registry import Registry

__all__ = ["KL", "MSE", "DKD", "DIST", "LOSSES", "LogitsDistillation", "get_loss"]

_EPS = 1e-12


def _kl(p_logits, q_logits, temperature):
    """Per-sample KL(softmax(p/T) || softmax(q/T)), computed from log-probabilities."""
    log_p = tf.nn.log_softmax(p_logits / temperature, axis=-1)
    log_q = tf.nn.log_softmax(q_logits / temperature, axis=-1)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def _non_negative(value, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{key}: must be a number >= 0, got {value!r}")
    return float(value)


def _renamed(new, old, new_key, old_key, default):
    """Resolves a parameter that also has an old spelling (kept for existing configs)."""
    if new is not None and old is not None:
        raise ValueError(f"{new_key}: given twice (also as its old name {old_key!r})")
    if new is not None:
        return new
    return default if old is None else old


class KL:
    """Hinton et al. 2015: T² · KL(softmax(teacher/T) ‖ softmax(student/T))."""

    name = "kl"
    needs_labels = False
    uses_epoch = False

    def __call__(self, labels, teacher_logits, student_logits, temperature):
        t = tf.cast(temperature, student_logits.dtype)
        return t * t * _kl(teacher_logits, student_logits, t)

    def get_config(self):
        return {"name": self.name}


class MSE:
    """Mean squared error between raw logits (Ba & Caruana 2014); temperature unused."""

    name = "mse"
    needs_labels = False
    uses_epoch = False

    def __call__(self, labels, teacher_logits, student_logits, temperature):
        return tf.reduce_mean(tf.square(teacher_logits - student_logits), axis=-1)

    def get_config(self):
        return {"name": self.name}


class DKD:
    """Decoupled KD (Zhao et al. 2022): w · T² · (tckd_weight · TCKD + nckd_weight · NCKD).

    TCKD is the binary KL between the target-class probability of teacher and student;
    NCKD the KL between their distributions over the non-target classes alone. As in the
    reference code (mdistiller), the term is ramped in linearly:
    ``w = min(epoch / warmup_epochs, 1)`` with ``epoch`` counted from 1, which the
    Distiller passes in during ``fit``; called without ``epoch`` the loss is not ramped.

    Args:
      tckd_weight: weight of the target-class term (paper: 1.0).
      nckd_weight: weight of the non-target term (paper: 8.0 on CIFAR-100).
      warmup_epochs: epochs over which the term ramps in (paper: 20); 0 turns it off.
      alpha, beta: old names of ``tckd_weight`` and ``nckd_weight``, still accepted.
      preset: ``"paper"`` for the published setting (see :data:`DKD.PRESETS`).
    """

    name = "dkd"
    needs_labels = True
    uses_epoch = True
    #: Published settings: loss parameters plus the Distiller's temperature and alpha.
    #: Paper (CIFAR-100): CE 1 : DKD 1, α = 1, β = 8, T = 4, warm-up 20 ⇒ alpha = 0.5.
    PRESETS = {"paper": {"loss": {"tckd_weight": 1.0, "nckd_weight": 8.0, "warmup_epochs": 20},
                         "distiller": {"temperature": 4.0, "alpha": 0.5}}}

    def __init__(self, tckd_weight=None, nckd_weight=None, warmup_epochs=20, *, alpha=None,
                 beta=None):
        self.tckd_weight = _non_negative(
            _renamed(tckd_weight, alpha, "dkd tckd_weight", "alpha", 1.0), "dkd tckd_weight")
        self.nckd_weight = _non_negative(
            _renamed(nckd_weight, beta, "dkd nckd_weight", "beta", 8.0), "dkd nckd_weight")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) \
                or warmup_epochs < 0:
            raise ValueError(f"dkd warmup_epochs: must be an integer >= 0, got {warmup_epochs!r}")
        self.warmup_epochs = warmup_epochs

    def __call__(self, labels, teacher_logits, student_logits, temperature, epoch=None):
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
        value = t * t * (self.tckd_weight * tckd + self.nckd_weight * nckd)
        if epoch is not None and self.warmup_epochs:
            ramp = tf.minimum(tf.cast(epoch, value.dtype) / self.warmup_epochs, 1.0)
            value = ramp * value
        return value

    def get_config(self):
        return {"name": self.name, "tckd_weight": self.tckd_weight,
                "nckd_weight": self.nckd_weight, "warmup_epochs": self.warmup_epochs}


def _pearson_distance(a, b, axis):
    a = a - tf.reduce_mean(a, axis=axis, keepdims=True)
    b = b - tf.reduce_mean(b, axis=axis, keepdims=True)
    num = tf.reduce_sum(a * b, axis=axis)
    den = tf.norm(a, axis=axis) * tf.norm(b, axis=axis) + 1e-8
    return 1.0 - num / den


class DIST:
    """DIST (Huang et al. 2022): Pearson-correlation matching, inter- and intra-class.

    T² · (inter_weight · inter + intra_weight · intra). The inter-class term is per sample
    (correlation across classes); the intra-class term is per class across the batch and
    is added to every sample's value.

    Args:
      inter_weight: weight of the inter-class term (reference code: β = 1).
      intra_weight: weight of the intra-class term (reference code: γ = 1).
      beta, gamma: old names of ``inter_weight`` and ``intra_weight``, still accepted.
      preset: ``"paper"`` for the published setting (see :data:`DIST.PRESETS`).
    """

    name = "dist"
    needs_labels = False
    uses_epoch = False
    #: Published settings. Reference (CIFAR-100): CE 1 : DIST 2 with τ = 4 and β = γ = 1
    #: inside the loss ⇒ alpha = 1 / (1 + 2) = 1/3.
    PRESETS = {"paper": {"loss": {"inter_weight": 1.0, "intra_weight": 1.0},
                         "distiller": {"temperature": 4.0, "alpha": 1.0 / 3.0}}}

    def __init__(self, inter_weight=None, intra_weight=None, *, beta=None, gamma=None):
        self.inter_weight = _non_negative(
            _renamed(inter_weight, beta, "dist inter_weight", "beta", 1.0), "dist inter_weight")
        self.intra_weight = _non_negative(
            _renamed(intra_weight, gamma, "dist intra_weight", "gamma", 1.0), "dist intra_weight")

    def __call__(self, labels, teacher_logits, student_logits, temperature):
        t = tf.cast(temperature, student_logits.dtype)
        p_t = tf.nn.softmax(teacher_logits / t, axis=-1)
        p_s = tf.nn.softmax(student_logits / t, axis=-1)
        inter = _pearson_distance(p_s, p_t, axis=-1)
        intra = tf.reduce_mean(_pearson_distance(p_s, p_t, axis=0))
        return t * t * (self.inter_weight * inter + self.intra_weight * intra)

    def get_config(self):
        return {"name": self.name, "inter_weight": self.inter_weight,
                "intra_weight": self.intra_weight}


LOSSES = Registry("loss", {"kl": KL, "mse": MSE, "dkd": DKD, "dist": DIST})

# keras.distillation / keras.losses spellings of the logit losses tfkd has.
_KERAS_NAMES = {"kl_divergence": "kl", "kld": "kl", "kullback_leibler_divergence": "kl"}


def get_loss(spec):
    """Builds a distillation loss from a name, a ``{"name": ..., **params}`` dict or an object.

    A dict may hold ``"preset"`` (e.g. ``{"name": "dkd", "preset": "paper"}``): the
    preset's parameters are used, any other key in the dict overrides them, and the
    returned loss carries the preset's Distiller settings in ``distiller_settings``.

    Raises:
      UnknownNameError: the name or preset is not registered (the message lists the
        valid ones).
      ValueError: a bad parameter value.
    """
    if isinstance(spec, str):
        return LOSSES.get(_KERAS_NAMES.get(spec, spec))()
    if isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("name", None)
        cls = LOSSES.get(_KERAS_NAMES.get(name, name) if isinstance(name, str) else name)
        preset_name = params.pop("preset", None)
        settings = None
        if preset_name is not None:
            presets = Registry(f"{cls.name} preset", getattr(cls, "PRESETS", {}))
            preset = presets.get(preset_name)
            params = {**preset["loss"], **params}
            settings = dict(preset["distiller"])
        unknown = sorted(set(params) - set(inspect.signature(cls).parameters))
        if unknown:
            raise ValueError(f"loss {cls.name}: unknown parameter {unknown[0]!r}; "
                             f"known: {', '.join(inspect.signature(cls).parameters)}, preset")
        loss = cls(**params)
        loss.preset = preset_name
        loss.distiller_settings = settings
        return loss
    if callable(spec) and hasattr(spec, "get_config"):
        return spec
    raise TypeError(f"loss: must be a name ({', '.join(LOSSES.names())}) or a loss object, "
                    f"got {spec!r}")


def loss_config(loss):
    """``loss.get_config()`` plus its preset name, so that a saved config rebuilds it."""
    config = dict(loss.get_config())
    if getattr(loss, "preset", None) is not None:
        config["preset"] = loss.preset
    return config


class LogitsDistillation:
    """keras.distillation's name for the logit term, accepted by the :class:`~tfkd.Distiller`.

    ``Distiller(distillation_losses=[LogitsDistillation(temperature=3.0)])`` is tfkd's
    ``Distiller(loss="kl", temperature=3.0)``.

    Args:
      temperature: softmax temperature T > 0 (keras.distillation's default 3.0).
      loss: ``"kl_divergence"`` (default, tfkd's ``kl``; a ``keras.losses.KLDivergence()``
        object means the same) or any tfkd logit loss: a name (kl, mse, dkd, dist), a
        ``{"name": ..., **params}`` dict or a loss object.
    """

    def __init__(self, temperature=3.0, loss="kl_divergence"):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not temperature > 0:
            raise ValueError(f"LogitsDistillation temperature: must be a number > 0, "
                             f"got {temperature!r}")
        self.temperature = float(temperature)
        # keras.distillation applies T² · KL on softened probabilities for a KLDivergence
        # object: that is tfkd's kl.
        self.loss = "kl_divergence" if type(loss).__name__ == "KLDivergence" else loss
        get_loss(self.loss)  # fail here, not at fit time

    def get_config(self):
        loss = self.loss if isinstance(self.loss, (str, dict)) else loss_config(self.loss)
        return {"temperature": self.temperature, "loss": loss}
