"""Feature-map distillation: match intermediate activations of teacher and student.

A :class:`FeaturePair` names a teacher layer and a student layer. The student's map is
resized to the teacher's spatial size when they differ, and, for ``hint``, a learnable
1×1 convolution (dense for 2-D features) maps its channels to the teacher's. Adapters
train with the student and are never part of the exported student.
"""

import dataclasses
import typing

from tfkd.lazy_tf import keras, tf
from tfkd.registry import Registry

__all__ = ["FeaturePair", "FeatureDistillation", "HintLoss", "AttentionLoss", "FEATURE_LOSSES",
           "build_taps", "feature_terms"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeaturePair:
    """One feature-distillation term."""

    teacher: str
    """Name of the teacher layer whose output is the target."""
    student: str
    """Name of the student layer whose output is matched to it."""
    loss: str = "hint"
    """Feature loss: ``hint`` (FitNets MSE) or ``attention`` (attention transfer)."""
    weight: typing.Optional[float] = None
    """Weight of this term in the total loss (>= 0); None: the loss's reference weight
    (hint 1, attention 500: see :class:`AttentionLoss`)."""

    def __post_init__(self):
        loss = FEATURE_LOSSES.get(self.loss)
        if self.weight is None:
            object.__setattr__(self, "weight", loss.default_weight)
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) \
                or not self.weight >= 0:
            raise ValueError(f"features weight: must be a number >= 0, got {self.weight!r}")

    @property
    def key(self):
        """The metric name this term is logged under."""
        return f"{self.loss}_{self.student}"


def _match_spatial(s, t_shape):
    """Resizes a 4-D student map to the teacher's height and width (bilinear)."""
    if len(s.shape) == 4 and tuple(s.shape[1:3]) != tuple(t_shape[1:3]):
        s = tf.image.resize(s, t_shape[1:3], method="bilinear")
    return s


class HintLoss:
    """FitNets hints (Romero et al. 2015): MSE between adapted student and teacher maps."""

    name = "hint"
    needs_adapter = True
    default_weight = 1.0

    def __call__(self, teacher_feat, student_feat):
        axes = list(range(1, len(teacher_feat.shape)))
        return tf.reduce_mean(tf.square(teacher_feat - student_feat), axis=axes)

    def get_config(self):
        return {"name": self.name}


def attention_map(feat):
    """Zagoruyko & Komodakis 2017: L2-normalized mean over channels of the squared map."""
    if len(feat.shape) == 4:
        q = tf.reduce_mean(tf.square(feat), axis=-1)
    else:
        q = tf.square(feat)
    q = tf.reshape(q, [tf.shape(q)[0], -1])
    return tf.math.l2_normalize(q, axis=-1)


class AttentionLoss:
    """Attention transfer: squared distance between normalized attention maps.

    The value is the mean over the map's positions of the squared difference, as
    ``at_loss`` in the reference code (Zagoruyko & Komodakis, attention-transfer), which
    averages over batch and positions. The paper adds ``β/2 · Σ_j at_loss_j`` with
    β = 1000, hence the default weight 500 per pair.
    """

    name = "attention"
    needs_adapter = False
    default_weight = 500.0

    def __call__(self, teacher_feat, student_feat):
        diff = attention_map(teacher_feat) - attention_map(student_feat)
        return tf.reduce_mean(tf.square(diff), -1)

    def get_config(self):
        return {"name": self.name}


FEATURE_LOSSES = Registry("feature loss", {"hint": HintLoss, "attention": AttentionLoss})


def _tap_model(model, layer_names, role):
    outputs = [model.output]
    for name in layer_names:
        try:
            outputs.append(model.get_layer(name).output)
        except ValueError:
            names = ", ".join(l.name for l in model.layers)
            raise ValueError(f"features: {role} has no layer {name!r}. Layers: {names}") from None
    return keras.Model(model.inputs, outputs, name=f"{model.name}_taps")


def build_taps(student, teacher, pairs):
    """Builds the tapped models, adapters and losses for a list of feature pairs.

    Args:
      student, teacher: functional ``tf_keras`` models.
      pairs: a sequence of :class:`FeaturePair`.

    Returns:
      ``(student_taps, teacher_taps, adapters, losses)``: models returning
      ``[logits, feat_1, ...]``, one adapter (or None) per pair and one loss per pair.

    Raises:
      ValueError: a named layer does not exist, or a model is not functional.
    """
    for model, role in ((student, "student"), (teacher, "teacher")):
        if not getattr(model, "_is_graph_network", False):
            raise ValueError(f"features: the {role} must be a functional or Sequential "
                             "model so that its layers can be tapped")
    s_taps = _tap_model(student, [p.student for p in pairs], "student")
    t_taps = _tap_model(teacher, [p.teacher for p in pairs], "teacher")
    adapters, losses = [], []
    for i, pair in enumerate(pairs):
        loss = FEATURE_LOSSES.get(pair.loss)()
        s_shape = s_taps.outputs[i + 1].shape
        t_shape = t_taps.outputs[i + 1].shape
        if len(s_shape) != len(t_shape):
            raise ValueError(f"features: {pair.student} ({s_shape}) and {pair.teacher} "
                             f"({t_shape}) have different ranks")
        adapter = None
        if loss.needs_adapter and s_shape[-1] != t_shape[-1]:
            if len(t_shape) == 4:
                adapter = keras.layers.Conv2D(t_shape[-1], 1, name=f"adapter_{i}_{pair.student}")
            else:
                adapter = keras.layers.Dense(t_shape[-1], name=f"adapter_{i}_{pair.student}")
            adapter.build(tf.TensorShape([None, *s_shape[1:]]))
        adapters.append(adapter)
        losses.append(loss)
    return s_taps, t_taps, adapters, losses


def feature_terms(pairs, adapters, losses, teacher_feats, student_feats):
    """Per-sample feature losses, one tensor per pair (unweighted)."""
    terms = []
    for pair, adapter, loss, t, s in zip(pairs, adapters, losses, teacher_feats, student_feats):
        s = _match_spatial(s, t.shape)
        if adapter is not None:
            s = adapter(s)
        # float32 maths under mixed precision: float16 squares of activations overflow.
        terms.append(loss(tf.stop_gradient(tf.cast(t, tf.float32)), tf.cast(s, tf.float32)))
    return terms


# keras.losses spellings that mean tfkd's hint loss (MSE between feature maps).
_KERAS_FEATURE_LOSSES = {"mse": "hint", "mean_squared_error": "hint"}


class FeatureDistillation:
    """keras.distillation's name for a feature term, accepted by the :class:`~tfkd.Distiller`.

    ``FeatureDistillation(loss="mse", teacher_layer_name="t", student_layer_name="s")``
    with weight ``w`` in ``distillation_loss_weights`` is tfkd's
    ``FeaturePair(teacher="t", student="s", loss="hint", weight=(1 - student_loss_weight) * w)``
    (keras.distillation weights every distillation term by ``1 - student_loss_weight``).

    Args:
      loss: ``"mse"`` (default; tfkd's ``hint``, which adds a 1×1 adapter only when the
        channel counts differ), ``"hint"`` or ``"attention"``.
      teacher_layer_name: the teacher layer (required by tfkd).
      student_layer_name: the student layer (required by tfkd).

    Raises:
      ValueError: a layer name is missing.
      UnknownNameError: an unknown loss.
    """

    def __init__(self, loss="mse", teacher_layer_name=None, student_layer_name=None):
        if not teacher_layer_name or not student_layer_name:
            raise ValueError("FeatureDistillation: tfkd needs teacher_layer_name and "
                             "student_layer_name (for final outputs use LogitsDistillation)")
        self.loss = loss
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        FEATURE_LOSSES.get(self.tfkd_loss)

    @property
    def tfkd_loss(self):
        """The tfkd feature-loss name this loss maps onto."""
        return _KERAS_FEATURE_LOSSES.get(self.loss, self.loss)

    def get_config(self):
        return {"loss": self.loss, "teacher_layer_name": self.teacher_layer_name,
                "student_layer_name": self.student_layer_name}
