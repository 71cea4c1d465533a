"""The Distiller: a Keras model that trains a student on labels and a frozen teacher."""

import dataclasses
import math

import tensorflow as tf

from tfkd._keras import keras, require_tf_keras_model
from tfkd.distill import features as feats
from tfkd.distill.losses import LogitsDistillation, get_loss, loss_config

__all__ = ["Distiller", "INPUTS_KEY", "TEACHER_LOGITS_KEY"]

#: Keys of an input dict that carries cached teacher logits (see tfkd.distill.cache).
INPUTS_KEY = "inputs"
TEACHER_LOGITS_KEY = "teacher_logits"

_DEFAULT_TEMPERATURE = 4.0
_DEFAULT_ALPHA = 0.1
# keras.distillation.Distiller's default student_loss_weight, used with its vocabulary.
_KERAS_STUDENT_LOSS_WEIGHT = 0.5
# Keras' names for cross-entropy; tfkd students output logits, so they mean from_logits=True.
_LOGIT_CROSSENTROPY = {
    "sparse_categorical_crossentropy": lambda: keras.losses.SparseCategoricalCrossentropy(
        from_logits=True),
    "categorical_crossentropy": lambda: keras.losses.CategoricalCrossentropy(from_logits=True),
}


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


def _number(value, key, low, high=None):
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) \
        and math.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ValueError(f"{key}: must be a number {bound}, got {value!r}")
    return float(value)


def _hard_label_loss(spec, key):
    """A hard-label loss from compile(loss=)/student_loss=: a name, Loss or function."""
    if spec is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(spec, str):
        if spec in _LOGIT_CROSSENTROPY:
            return _LOGIT_CROSSENTROPY[spec]()
        return keras.losses.get(spec)
    if isinstance(spec, keras.losses.Loss):
        if spec.get_config().get("from_logits") is False:
            raise ValueError(f"{key}: {type(spec).__name__}(from_logits=False), but the student "
                             "outputs logits: use from_logits=True")
        return spec
    if callable(spec):
        return spec
    raise TypeError(f"{key}: must be a loss name, a keras Loss or a function, got {spec!r}")


def _per_sample(loss_fn, y, y_pred):
    # Loss.call() is the unreduced per-sample loss; the Distiller applies the reduction.
    if isinstance(loss_fn, keras.losses.Loss):
        return loss_fn.call(y, y_pred)
    return loss_fn(y, y_pred)


def _batch_mean(per_sample, sample_weight):
    """Keras' SUM_OVER_BATCH_SIZE: weighted sum over the local batch / its size (0 if empty)."""
    per_sample = tf.reshape(tf.cast(per_sample, tf.float32), [-1])
    if sample_weight is not None:
        per_sample = per_sample * tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    # divide_no_nan as Keras: a replica can get an empty slice of a short last batch.
    return tf.math.divide_no_nan(tf.reduce_sum(per_sample),
                                 tf.cast(tf.size(per_sample), tf.float32))


class _EpochCounter(keras.callbacks.Callback):
    """Writes the 1-based epoch of ``fit`` into the Distiller (DKD's warm-up reads it)."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(float(epoch + 1))


# Registered so that keras.models.load_model("d.keras") finds the class after `import tfkd`
# (the config holds names and numbers only: nothing in the file is run).
@keras.saving.register_keras_serializable(package="tfkd")
class Distiller(keras.Model):
    """Knowledge distillation (Hinton, Vinyals & Dean 2015) as a ``keras.Model``.

    ``fit`` trains the student on::

        loss = alpha * student_loss + (1 - alpha) * distillation_loss
               + sum(weight_i * feature_loss_i) + the student's regularization losses

    where ``student_loss`` is the hard-label loss (sparse categorical cross-entropy on
    logits by default, or the ``loss`` given to ``compile``) and ``distillation_loss`` the
    chosen logit loss; for ``kl`` it is T² · KL(softmax(teacher/T) ‖ softmax(student/T)).
    The teacher runs in inference mode and gets no gradient (its ``trainable`` flag is left
    as it was); gradients reach the student and the feature adapters only.
    ``call``/``predict`` use the student alone. The loss lives in ``compute_loss``, so
    Keras does the rest as for any model: mixed-precision loss scaling, distribution
    strategies, sample-weighted epoch means, checkpoints and ``save``/``load_model``.

    Logged keys in ``fit`` and ``evaluate`` (``val_``-prefixed for validation data):
    ``loss`` (the total, regularization included, as Keras logs it), ``student_loss``,
    ``distillation_loss`` (before its weight), one key per feature pair
    (``hint_<layer>``, ``attention_<layer>``, unweighted) and the compiled metrics.

    Inputs may be arrays or ``tf.data`` datasets of ``(x, y)`` or ``(x, y, sample_weight)``
    with sparse integer labels. When ``x`` is a dict ``{"inputs": x, "teacher_logits": t}``
    (as built by :func:`tfkd.distill.cache.cache_teacher_logits`), the cached logits are
    used and the teacher is not run.

    keras.distillation (Keras 3) spells the same model ``Distiller(teacher, student,
    distillation_losses=[LogitsDistillation(temperature=T), FeatureDistillation(...)],
    distillation_loss_weights=[...], student_loss_weight=a)`` and ``compile(loss=...)``;
    those arguments are accepted too (see docs/distiller.md), with keras.distillation's
    defaults (student_loss_weight 0.5, temperature 3).

    Args:
      student: a ``tf_keras`` model returning logits (no softmax layer).
      teacher: a ``tf_keras`` model returning logits of the same width; it is frozen.
      temperature: softmax temperature T > 0 (default 4.0, or the loss preset's).
      alpha: weight of the hard-label loss, 0 <= alpha <= 1 (default 0.1, or the loss
        preset's).
      loss: the distillation loss: ``"kl"`` (default), ``"mse"``, ``"dkd"``, ``"dist"``, a
        dict ``{"name": ..., **params}`` (``"preset": "paper"`` for a paper's setting) or
        a loss object.
      student_loss: hard-label loss (a name, ``keras.losses.Loss`` or per-sample
        function); default sparse categorical cross-entropy on logits.
        ``compile(loss=...)`` overrides it.
      features: optional list of :class:`tfkd.distill.features.FeaturePair` (or dicts
        with keys teacher, student, loss, weight) for feature-map distillation; needs
        functional models and the live teacher.
      distillation_losses: keras.distillation's spelling: a ``LogitsDistillation`` (at
        most one) and ``FeatureDistillation`` objects, instead of ``loss``/``features``.
      distillation_loss_weights: one weight per entry of ``distillation_losses``.
      student_loss_weight: keras.distillation's name for ``alpha``.
      logit_weight: weight of the logit term inside its ``1 - alpha`` share (set from
        ``distillation_loss_weights``; default 1).
      **kwargs: passed to ``keras.Model``.

    Raises:
      TypeError: student or teacher is not a ``tf_keras`` model (a Keras 3 model
        included).
      ValueError: a bad temperature, alpha, loss or feature pair; a softmax output;
        output widths that differ; or one setting given in both vocabularies.
    """

    def __init__(self, student, teacher, temperature=None, alpha=None, loss=None,
                 student_loss=None, features=None, *, distillation_losses=None,
                 distillation_loss_weights=None, student_loss_weight=None, logit_weight=1.0,
                 **kwargs):
        super().__init__(**kwargs)
        require_tf_keras_model(student, "student")
        require_tf_keras_model(teacher, "teacher")
        for model, role in ((student, "student"), (teacher, "teacher")):
            if _last_layer_is_softmax(model):
                raise ValueError(f"{role}: its last layer is a softmax; tfkd needs logits: "
                                 "drop the softmax (use from_logits losses)")
        n_s, n_t = _num_outputs(student), _num_outputs(teacher)
        if n_s is not None and n_t is not None and n_s != n_t:
            raise ValueError(f"student/teacher: output widths differ: student has {n_s}, "
                             f"teacher has {n_t}")
        if {id(v) for v in student.weights} & {id(v) for v in teacher.weights}:
            raise ValueError("student/teacher: they share weights, and the teacher's are "
                             "frozen: give the student its own copy "
                             "(keras.models.clone_model + set_weights)")
        if student_loss_weight is not None:
            if alpha is not None:
                raise ValueError("student_loss_weight: keras.distillation's name for alpha; "
                                 "give one of them")
            alpha = student_loss_weight
        if distillation_losses is not None:
            loss, features, temperature, alpha, logit_weight = self._from_keras_vocabulary(
                distillation_losses, distillation_loss_weights, loss, features, temperature,
                alpha)
        elif distillation_loss_weights is not None:
            raise ValueError("distillation_loss_weights: needs distillation_losses")
        self.distillation_loss_fn = get_loss("kl" if loss is None else loss)
        logit_loss = self.distillation_loss_fn
        preset = getattr(logit_loss, "distiller_settings", None) or {}
        for key, given in (("temperature", temperature), ("alpha", alpha)):
            # A 3-digit spelling (alpha: 0.333 in YAML) names the preset's value.
            if given is not None and key in preset and abs(float(given) - preset[key]) > 1e-3:
                raise ValueError(
                    f"{key}: the {logit_loss.name} '{logit_loss.preset}' preset sets "
                    f"{key}={preset[key]:.4g}; got {given!r}: leave {key} unset or give "
                    f"{preset[key]:.4g}")
        temperature = preset.get("temperature", _DEFAULT_TEMPERATURE if temperature is None
                                 else temperature)
        alpha = preset.get("alpha", _DEFAULT_ALPHA if alpha is None else alpha)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature: must be a number > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.alpha = _number(alpha, "alpha", 0.0, 1.0)
        self.logit_weight = _number(logit_weight, "logit_weight", 0.0)
        self.student = student
        # The teacher's `trainable` flag is left alone: trainable_weights leaves it out.
        self.teacher = teacher
        self._student_loss_arg = student_loss
        self.student_loss_fn = _hard_label_loss(student_loss, "student_loss")
        self._compile_loss_arg = None
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
        # The 1-based epoch of fit, for losses that change over training (DKD warm-up).
        self.epoch = self.add_weight(name="epoch", shape=(), dtype="float32",
                                     initializer="zeros", trainable=False)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.feature_trackers = [keras.metrics.Mean(name=p.key) for p in pairs]
        if student.built:
            self.build(None)

    @staticmethod
    def _from_keras_vocabulary(losses, weights, loss, features, temperature, alpha):
        """Maps keras.distillation's arguments onto tfkd's loss, features and weights."""
        if loss is not None:
            raise ValueError("loss: give loss= or distillation_losses=, not both")
        if features:
            raise ValueError("features: give features= or FeatureDistillation entries in "
                             "distillation_losses=, not both")
        losses = list(losses) if isinstance(losses, (list, tuple)) else [losses]
        if not losses:
            raise ValueError("distillation_losses: must not be empty")
        weights = [1.0] * len(losses) if weights is None else list(weights)
        if len(weights) != len(losses):
            raise ValueError(f"distillation_loss_weights: {len(weights)} weights for "
                             f"{len(losses)} distillation_losses")
        alpha = _KERAS_STUDENT_LOSS_WEIGHT if alpha is None else alpha
        soft = 1.0 - _number(alpha, "student_loss_weight", 0.0, 1.0)
        logits = [(l, w) for l, w in zip(losses, weights) if isinstance(l, LogitsDistillation)]
        pairs = []
        for item, weight in zip(losses, weights):
            weight = _number(weight, "distillation_loss_weights", 0.0)
            if isinstance(item, feats.FeatureDistillation):
                pairs.append(feats.FeaturePair(teacher=item.teacher_layer_name,
                                               student=item.student_layer_name,
                                               loss=item.tfkd_loss, weight=soft * weight))
            elif not isinstance(item, LogitsDistillation):
                raise TypeError(f"distillation_losses: expected tfkd.LogitsDistillation or "
                                f"tfkd.FeatureDistillation, got {type(item).__name__}")
        if len(logits) > 1:
            raise ValueError("distillation_losses: at most one LogitsDistillation")
        if logits:
            item, logit_weight = logits[0]
            if temperature is not None and float(temperature) != item.temperature:
                raise ValueError(f"temperature: {temperature!r} differs from "
                                 f"LogitsDistillation(temperature={item.temperature})")
            return item.loss, pairs, item.temperature, alpha, logit_weight
        # Feature terms only: no logit term.
        return None, pairs, temperature, alpha, 0.0

    @property
    def student_loss_weight(self):
        """keras.distillation's name for ``alpha``."""
        return self.alpha

    # -- weights --------------------------------------------------------------------------
    def build(self, input_shape=None):
        """Marks the model built: the student and teacher build themselves when called."""
        self.built = True

    def _teacher_ids(self):
        teacher = getattr(self, "teacher", None)
        return {id(v) for v in teacher.weights} if teacher is not None else set()

    @property
    def trainable_weights(self):
        """The student's and the adapters' trainable weights: the teacher is frozen."""
        frozen = self._teacher_ids()
        return [v for v in super().trainable_weights if id(v) not in frozen]

    @property
    def non_trainable_weights(self):
        """Non-trainable weights, all of the teacher's included."""
        teacher = getattr(self, "teacher", None)
        moved = [] if teacher is None or not self.trainable else teacher.trainable_weights
        seen, out = set(), []
        for v in super().non_trainable_weights + moved:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    # -- forward and loss ---------------------------------------------------------------
    def call(self, inputs, training=False):
        """Runs the student alone."""
        if isinstance(inputs, dict) and INPUTS_KEY in inputs:
            inputs = inputs[INPUTS_KEY]
        return self.student(inputs, training=training)

    def _student_forward(self, x, training):
        """Student logits (and the tapped feature maps when there are feature pairs)."""
        if not self.feature_pairs:
            return self(x, training=training), None
        inputs = x[INPUTS_KEY] if isinstance(x, dict) and INPUTS_KEY in x else x
        out = self._student_taps(inputs, training=training)
        return out[0], out[1:]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True,
                     student_features=None):
        """The distillation loss of one batch, as Keras' ``compute_loss``.

        Updates the loss trackers and returns the total divided by the number of
        replicas, as Keras does (gradients are summed over replicas).

        Args:
          x: the inputs, or a dict with ``inputs`` and cached ``teacher_logits``.
          y: sparse labels.
          y_pred: the student's logits for ``x``.
          sample_weight: optional per-sample weights.
          training: the student's mode when feature maps must be recomputed.
          student_features: the student's tapped feature maps, when already computed.

        Returns:
          The scalar loss to differentiate.
        """
        cached = None
        inputs = x
        if isinstance(x, dict) and TEACHER_LOGITS_KEY in x:
            cached, inputs = x[TEACHER_LOGITS_KEY], x[INPUTS_KEY]
        elif isinstance(x, dict) and INPUTS_KEY in x:
            inputs = x[INPUTS_KEY]
        if y_pred is None:
            y_pred, student_features = self._student_forward(inputs, training)
        # Loss maths in float32: under mixed_float16 the logits are float16.
        s_logits = tf.cast(y_pred, tf.float32)
        t_feats = ()
        if self.feature_pairs:
            if cached is not None:
                raise ValueError("features: feature-map distillation needs the live teacher; "
                                 "cached teacher logits carry no feature maps")
            t_out = self._teacher_taps(inputs, training=False)
            t_logits, t_feats = t_out[0], t_out[1:]
            if student_features is None:
                student_features = self._student_taps(inputs, training=training)[1:]
        else:
            t_logits = cached if cached is not None else self.teacher(inputs, training=False)
        t_logits = tf.stop_gradient(tf.cast(t_logits, tf.float32))

        hard = _batch_mean(_per_sample(self._hard_loss(), y, s_logits), sample_weight)
        soft = tf.zeros([], tf.float32)
        if self.logit_weight:
            kwargs = {"epoch": self.epoch} if getattr(self.distillation_loss_fn, "uses_epoch",
                                                      False) else {}
            soft = _batch_mean(self.distillation_loss_fn(y, t_logits, s_logits, self.temperature,
                                                         **kwargs), sample_weight)
        terms = []
        if self.feature_pairs:
            terms = [_batch_mean(f, sample_weight) for f in feats.feature_terms(
                self.feature_pairs, self._adapter_per_pair, self._feature_losses, t_feats,
                student_features)]
        total = self.alpha * hard + (1.0 - self.alpha) * self.logit_weight * soft
        for pair, term in zip(self.feature_pairs, terms):
            total = total + pair.weight * term
        regularization = [tf.cast(r, tf.float32) for r in self._regularization_losses()]
        if regularization:
            total = total + tf.add_n(regularization)

        # Epoch means weighted by the number of samples, as Keras' own loss metric.
        batch = tf.shape(s_logits)[0]
        self.loss_tracker.update_state(total, sample_weight=batch)
        self.student_loss_tracker.update_state(hard, sample_weight=batch)
        self.distillation_loss_tracker.update_state(soft, sample_weight=batch)
        for tracker, term in zip(self.feature_trackers, terms):
            tracker.update_state(term, sample_weight=batch)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / tf.cast(replicas, total.dtype)

    def _hard_loss(self):
        return self._compile_loss_fn if self._compile_loss_arg is not None \
            else self.student_loss_fn

    def _regularization_losses(self):
        losses = list(self.student.losses)
        for adapter in self.adapters:
            losses += adapter.losses
        return losses

    def train_step(self, data):
        """One step of Keras' own ``train_step``, with one student pass for feature maps."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred, s_feats = self._student_forward(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, True, s_feats)
        # minimize() scales the loss under a LossScaleOptimizer (mixed precision).
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        """Evaluation: the same loss terms as ``fit`` plus the compiled metrics."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred, s_feats = self._student_forward(x, training=False)
        self.compute_loss(x, y, y_pred, sample_weight, False, s_feats)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

    @property
    def metrics(self):
        metrics = [self.loss_tracker, self.student_loss_tracker,
                   self.distillation_loss_tracker, *self.feature_trackers]
        if self.compiled_metrics is not None:
            metrics += self.compiled_metrics.metrics
        return metrics

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``, plus a callback that tells the losses the epoch."""
        counter = _EpochCounter(self.epoch)
        args = list(args)
        if len(args) > 5:  # callbacks given positionally
            args[5] = self._with_callback(args[5], counter)
        else:
            kwargs["callbacks"] = self._with_callback(kwargs.get("callbacks"), counter)
        return super().fit(*args, **kwargs)

    @staticmethod
    def _with_callback(callbacks, callback):
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks.append(callback)
            return callbacks
        return [*(callbacks or []), callback]

    # -- compile, config, saving ---------------------------------------------------------
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configures training, as ``keras.Model.compile``.

        Args:
          optimizer: the optimizer (wrapped in a ``LossScaleOptimizer`` by Keras under a
            mixed-precision policy).
          loss: optional hard-label loss (a name, ``keras.losses.Loss`` or function); it
            replaces ``student_loss``. ``"sparse_categorical_crossentropy"`` and
            ``"categorical_crossentropy"`` mean their ``from_logits=True`` form, because
            tfkd students output logits.
          metrics: metrics of the student's logits.
          **kwargs: passed to ``keras.Model.compile`` (``loss_weights`` excepted: use
            ``alpha``).

        Raises:
          ValueError: ``loss_weights`` is given, or a loss with ``from_logits=False``.
        """
        if kwargs.get("loss_weights") is not None:
            raise ValueError("compile loss_weights: the Distiller weighs its terms with "
                             "alpha (student_loss_weight) and the loss/feature weights")
        kwargs.pop("loss_weights", None)
        self._compile_loss_fn = _hard_label_loss(loss, "compile loss") if loss is not None \
            else None
        self._compile_loss_arg = loss
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None and self._compile_loss_arg is not None:
            config["loss"] = keras.saving.serialize_keras_object(self._compile_loss_arg)
        return config

    def compile_from_config(self, config):
        """Compiles from a saved compile config (optimizer state is restored after)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if isinstance(self.optimizer, keras.optimizers.Optimizer) and self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        student_loss = self._student_loss_arg
        if student_loss is not None and not isinstance(student_loss, str):
            student_loss = keras.saving.serialize_keras_object(student_loss)
        return {
            "name": self.name,
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "loss": loss_config(self.distillation_loss_fn),
            "logit_weight": self.logit_weight,
            "student_loss": student_loss,
            "features": [dataclasses.asdict(p) for p in self.feature_pairs],
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("student", "teacher"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects)
        if isinstance(config.get("student_loss"), dict):
            config["student_loss"] = keras.saving.deserialize_keras_object(
                config["student_loss"], custom_objects=custom_objects)
        return cls(**config)

    def save(self, filepath, *args, **kwargs):
        """Saves the whole Distiller (``.keras``); ship the student alone with
        ``distiller.student.save(...)``.

        Raises:
          NotImplementedError: an HDF5 path, as for any subclassed Keras model.
        """
        # positional arguments after filepath: overwrite, save_format
        fmt = kwargs.get("save_format") or (args[1] if len(args) > 1 else None)
        if fmt == "h5" or str(filepath).endswith((".h5", ".hdf5")):
            raise NotImplementedError(
                f"{filepath}: HDF5 cannot hold a subclassed model such as the Distiller "
                "(as in plain Keras): save to a .keras file, use save_weights_only=True, or "
                "save the student: distiller.student.save(...)")
        return super().save(filepath, *args, **kwargs)
