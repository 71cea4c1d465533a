"""The Distiller: a Keras model whose ``train_step`` does knowledge distillation."""

import math

import tensorflow as tf

from tfkd._keras import keras, require_tf_keras_model
from tfkd.distill import features as feats
from tfkd.distill.losses import get_loss

__all__ = ["Distiller", "INPUTS_KEY", "TEACHER_LOGITS_KEY"]

#: Keys of an input dict that carries cached teacher logits (see tfkd.distill.cache).
INPUTS_KEY = "inputs"
TEACHER_LOGITS_KEY = "teacher_logits"


def _last_layer_is_softmax(model):
    layers = getattr(model, "layers", None)
    if not layers:
        return False
    last = layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    act = getattr(last, "activation", None)
    return act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"


def _num_outputs(model):
    try:
        shape = model.output_shape
    except (AttributeError, RuntimeError):
        return None
    if isinstance(shape, list) or not shape:
        return None
    return shape[-1]


class Distiller(keras.Model):
    """Knowledge distillation (Hinton, Vinyals & Dean 2015) as a ``keras.Model``.

    ``fit`` trains the student on::

        loss = alpha * student_loss + (1 - alpha) * distillation_loss
               + sum(weight_i * feature_loss_i)

    where ``student_loss`` is the hard-label loss (sparse categorical cross-entropy on
    logits by default) and ``distillation_loss`` is the chosen logit loss; for ``kl`` it
    is T² · KL(softmax(teacher/T) ‖ softmax(student/T)). The teacher runs in inference
    mode and its weights never change; gradients reach the student (and the feature
    adapters) only. ``call``/``predict`` use the student alone.

    Logged keys in ``fit`` and ``evaluate`` (``val_``-prefixed for validation data):
    ``loss`` (the total), ``student_loss``, ``distillation_loss`` (before the
    ``1 - alpha`` weight), one key per feature pair (``hint_<layer>``,
    ``attention_<layer>``, unweighted) and the metrics given to ``compile``.

    Inputs may be arrays or ``tf.data`` datasets of ``(x, y)`` or ``(x, y, sample_weight)``
    with sparse integer labels. When ``x`` is a dict ``{"inputs": x, "teacher_logits": t}``
    (as built by :func:`tfkd.distill.cache.cache_teacher_logits`), the cached logits are
    used and the teacher is not run.

    Args:
      student: a ``tf_keras`` model returning logits (no softmax layer).
      teacher: a ``tf_keras`` model returning logits of the same width; it is frozen.
      temperature: softmax temperature T > 0 for the soft targets (default 4.0).
      alpha: weight of the hard-label loss, 0 <= alpha <= 1 (default 0.1).
      loss: the distillation loss: ``"kl"`` (default), ``"mse"``, ``"dkd"``, ``"dist"``, a
        dict ``{"name": ..., **params}`` or a loss object.
      student_loss: hard-label loss with reduction ``NONE``; default sparse categorical
        cross-entropy on logits.
      features: optional list of :class:`tfkd.distill.features.FeaturePair` (or dicts
        with keys teacher, student, loss, weight) for feature-map distillation; needs
        functional models and the live teacher.
      **kwargs: passed to ``keras.Model``.

    Raises:
      TypeError: student or teacher is not a ``tf_keras`` model (a Keras 3 model
        included).
      ValueError: a bad temperature, alpha, loss or feature pair; a softmax output; or
        output widths that differ.
    """

    def __init__(self, student, teacher, temperature=4.0, alpha=0.1, loss="kl",
                 student_loss=None, features=None, **kwargs):
        super().__init__(**kwargs)
        require_tf_keras_model(student, "student")
        require_tf_keras_model(teacher, "teacher")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature: must be a number > 0, got {temperature!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
                or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: must be a number in [0, 1], got {alpha!r}")
        for model, role in ((student, "student"), (teacher, "teacher")):
            if _last_layer_is_softmax(model):
                raise ValueError(f"{role}: its last layer is a softmax; tfkd needs logits: "
                                 "drop the softmax (use from_logits losses)")
        n_s, n_t = _num_outputs(student), _num_outputs(teacher)
        if n_s is not None and n_t is not None and n_s != n_t:
            raise ValueError(f"student/teacher: output widths differ: student has {n_s}, "
                             f"teacher has {n_t}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.distillation_loss_fn = get_loss(loss)
        self.student_loss_fn = student_loss or keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction=keras.losses.Reduction.NONE)
        pairs = [p if isinstance(p, feats.FeaturePair) else feats.FeaturePair(**p)
                 for p in (features or [])]
        self.feature_pairs = tuple(pairs)
        if pairs:
            (self._student_taps, self._teacher_taps, adapters,
             self._feature_losses) = feats.build_taps(student, teacher, pairs)
            self.adapters = [a for a in adapters if a is not None]
            self._adapter_per_pair = adapters
        else:
            self.adapters = []
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.feature_trackers = [keras.metrics.Mean(name=p.key) for p in pairs]

    # -- forward ----------------------------------------------------------------------
    def call(self, inputs, training=False):
        """Runs the student alone."""
        if isinstance(inputs, dict) and INPUTS_KEY in inputs:
            inputs = inputs[INPUTS_KEY]
        return self.student(inputs, training=training)

    def _loss_terms(self, x, y, training):
        cached = None
        if isinstance(x, dict) and TEACHER_LOGITS_KEY in x:
            cached = x[TEACHER_LOGITS_KEY]
            x = x[INPUTS_KEY]
        t_feats = s_feats = ()
        if self.feature_pairs:
            if cached is not None:
                raise ValueError("features: feature-map distillation needs the live teacher; "
                                 "cached teacher logits carry no feature maps")
            t_out = self._teacher_taps(x, training=False)
            s_out = self._student_taps(x, training=training)
            t_logits, t_feats = t_out[0], t_out[1:]
            s_logits, s_feats = s_out[0], s_out[1:]
        else:
            t_logits = cached if cached is not None else self.teacher(x, training=False)
            s_logits = self.student(x, training=training)
        t_logits = tf.stop_gradient(tf.cast(t_logits, s_logits.dtype))
        hard = self.student_loss_fn(y, s_logits)
        soft = self.distillation_loss_fn(y, t_logits, s_logits, self.temperature)
        feature_terms = []
        if self.feature_pairs:
            feature_terms = feats.feature_terms(self.feature_pairs, self._adapter_per_pair,
                                                self._feature_losses, t_feats, s_feats)
        return s_logits, hard, soft, feature_terms

    def _reduce(self, per_sample, sample_weight):
        # Keras' SUM_OVER_BATCH_SIZE: weighted sum divided by the (local) batch size.
        per_sample = tf.reshape(per_sample, [-1])
        if sample_weight is not None:
            per_sample = per_sample * tf.reshape(tf.cast(sample_weight, per_sample.dtype), [-1])
        return tf.reduce_sum(per_sample) / tf.cast(tf.size(per_sample), per_sample.dtype)

    def _step(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        s_logits, hard, soft, feature_terms = self._loss_terms(x, y, training)
        hard = self._reduce(hard, sample_weight)
        soft = self._reduce(soft, sample_weight)
        feature_terms = [self._reduce(f, sample_weight) for f in feature_terms]
        total = self.alpha * hard + (1.0 - self.alpha) * soft
        for pair, term in zip(self.feature_pairs, feature_terms):
            total = total + pair.weight * term
        return x, y, sample_weight, s_logits, total, hard, soft, feature_terms

    def _update_metrics(self, y, sample_weight, s_logits, total, hard, soft, feature_terms):
        self.loss_tracker.update_state(total)
        self.student_loss_tracker.update_state(hard)
        self.distillation_loss_tracker.update_state(soft)
        for tracker, term in zip(self.feature_trackers, feature_terms):
            tracker.update_state(term)
        self.compiled_metrics.update_state(y, s_logits, sample_weight)
        logs = {m.name: m.result() for m in self._own_trackers()}
        for m in self.compiled_metrics.metrics:
            result = m.result()
            if isinstance(result, dict):
                logs.update(result)
            else:
                logs[m.name] = result
        return logs

    def _own_trackers(self):
        return [self.loss_tracker, self.student_loss_tracker,
                self.distillation_loss_tracker, *self.feature_trackers]

    def train_step(self, data):
        """One distillation step: teacher in inference mode, student in training mode."""
        with tf.GradientTape() as tape:
            x, y, sw, s_logits, total, hard, soft, fterms = self._step(data, training=True)
            regularization = tf.add_n(self.student.losses) if self.student.losses else 0.0
            objective = total + regularization
            # Under a distribution strategy each replica's gradient is summed: scale as
            # Keras does so that the result is the mean over the global batch.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = objective / tf.cast(replicas, objective.dtype)
        variables = self.student.trainable_variables + [
            v for a in self.adapters for v in a.trainable_variables]
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return self._update_metrics(y, sw, s_logits, total, hard, soft, fterms)

    def test_step(self, data):
        """Evaluation: the same loss terms as ``fit`` plus the compiled metrics."""
        x, y, sw, s_logits, total, hard, soft, fterms = self._step(data, training=False)
        return self._update_metrics(y, sw, s_logits, total, hard, soft, fterms)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

    @property
    def metrics(self):
        metrics = self._own_trackers()
        if self.compiled_metrics is not None:
            metrics += self.compiled_metrics.metrics
        return metrics

    def compile(self, optimizer="adam", metrics=None, **kwargs):
        """Configures training; only ``optimizer`` and ``metrics`` are needed.

        A ``loss`` argument is refused: the losses are the Distiller's own (set
        ``student_loss=`` and ``loss=`` in the constructor).
        """
        if kwargs.get("loss") is not None:
            raise ValueError("compile: the Distiller computes its own loss; pass "
                             "student_loss=/loss= to Distiller(...) instead of compile(loss=)")
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def get_config(self):
        return {
            "temperature": self.temperature,
            "alpha": self.alpha,
            "loss": self.distillation_loss_fn.name,
            "loss_config": self.distillation_loss_fn.get_config(),
            "features": [dict(p.__dict__) for p in self.feature_pairs],
        }

    def save(self, *args, **kwargs):
        """Refused: the Distiller is a training wrapper; save its student."""
        raise TypeError(
            "Saving a Distiller is not supported: save the student instead, "
            "e.g. distiller.student.save('student.keras')")
