"""Training helpers shared by the stages: datasets of views, schedules, best weights."""

import numpy as np
import tensorflow as tf

from tfkd._keras import keras
from tfkd.distill.cache import cached_dataset, teacher_logits
from tfkd.distill.distiller import INPUTS_KEY, TEACHER_LOGITS_KEY, Distiller

__all__ = ["BestWeights", "views_dataset", "cosine_adam", "fit_plain", "fit_distill", "accuracy",
           "EpochLine"]


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation accuracy and restores them.

    Args:
      model_to_save: the model whose weights are kept (the student inside a Distiller).
      monitor: the logged metric.
    """

    def __init__(self, model_to_save, monitor="val_accuracy"):
        super().__init__()
        self.target = model_to_save
        self.monitor = monitor
        self.best = -np.inf
        self.best_weights = None
        self.best_epoch = -1

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best, self.best_epoch = value, epoch
            self.best_weights = self.target.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.target.set_weights(self.best_weights)


class EpochLine(keras.callbacks.Callback):
    """One line per epoch (for logs that are not a terminal)."""

    def __init__(self, label, echo):
        super().__init__()
        self.label, self.echo = label, echo

    def on_epoch_end(self, epoch, logs=None):
        parts = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items())
                         if isinstance(v, (int, float, np.floating)))
        self.echo(f"  {self.label} epoch {epoch + 1}: {parts}")


def views_dataset(x_views, y, batch_size, seed, logits=None):
    """Training batches that draw one augmented view per clip each epoch.

    Args:
      x_views: ``[N, K, ...]`` features of K views per clip.
      y: labels ``[N]``.
      batch_size: batch size.
      seed: order and view seed.
      logits: optional cached teacher logits ``[N, K, C]``; then batches carry them.
    """
    if logits is None:
        dummy = np.zeros(x_views.shape[:2] + (1,), np.float32)
        ds = cached_dataset(x_views, y, dummy, batch_size, seed=seed)
        return ds.map(lambda x, yy: (x["inputs"], yy))
    return cached_dataset(x_views, y, logits, batch_size, seed=seed)


def cosine_adam(learning_rate, steps):
    """Adam with a cosine-decayed learning rate over ``steps``."""
    sched = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps), alpha=0.02)
    return keras.optimizers.Adam(sched)


def fit_plain(model, data, epochs, batch_size, learning_rate, seed, *, callbacks=(),
              tty=False, echo=print, label="train", log_dir=None, keep_best=True):
    """Trains a model on labels alone, keeping the best validation epoch.

    Args:
      model: the model (logits).
      data: a dict with ``x_train`` ``[N, K, ...]``, ``y_train``, ``x_val``, ``y_val``.
      epochs, batch_size, learning_rate, seed: training settings.
      callbacks: extra callbacks.
      tty, echo, label: progress output.
      log_dir: TensorBoard folder or None.
      keep_best: restore the best validation epoch (off while pruning).

    Returns:
      The Keras history dict.
    """
    keras.utils.set_random_seed(seed)
    ds = views_dataset(data["x_train"], data["y_train"], batch_size, seed)
    model.compile(optimizer=cosine_adam(learning_rate, _steps(data, epochs, batch_size)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return _fit(model, model, ds, (data["x_val"], data["y_val"]), epochs, callbacks, keep_best,
                tty, echo, label, log_dir)


def fit_distill(student, teacher, data, cfg, epochs, learning_rate, seed, *, callbacks=(),
                tty=False, echo=print, label="distill", log_dir=None, keep_best=True):
    """Distils ``teacher`` into ``student`` (cached logits per view when allowed).

    Args:
      student, teacher: Keras models.
      data: see :func:`fit_plain`.
      cfg: the ``DistillConfig`` (temperature, alpha, loss, cache, features, batch_size).
      epochs, learning_rate, seed: training settings.
      callbacks: extra callbacks (e.g. tfmot's pruning step).
      keep_best: restore the best validation epoch (off while pruning, whose masks
        change between epochs).

    Returns:
      The Keras history dict.
    """
    keras.utils.set_random_seed(seed)
    loss = dict(cfg.loss_params, name=cfg.loss) if cfg.loss_params else cfg.loss
    d = Distiller(student=student, teacher=teacher, temperature=cfg.temperature,
                  alpha=cfg.alpha, loss=loss, features=cfg.features or None)
    use_cache = cfg.cache and not cfg.features
    logits = teacher_logits(teacher, data["x_train"]) if use_cache else None
    ds = views_dataset(data["x_train"], data["y_train"], cfg.batch_size, seed, logits)
    d.compile(optimizer=cosine_adam(learning_rate, _steps(data, epochs, cfg.batch_size)),
              metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    val_x = data["x_val"]
    if use_cache:  # validation reads cached logits too: no teacher pass per epoch
        val_x = {INPUTS_KEY: val_x, TEACHER_LOGITS_KEY: teacher_logits(teacher, val_x)}
    return _fit(d, student, ds, (val_x, data["y_val"]), epochs, callbacks, keep_best,
                tty, echo, label, log_dir)


def _steps(data, epochs, batch_size):
    return epochs * int(np.ceil(len(data["y_train"]) / batch_size))


def _fit(trainer, kept, ds, validation, epochs, callbacks, keep_best, tty, echo, label, log_dir):
    """Fits ``trainer`` with the shared callbacks: best epoch of ``kept``, progress, TensorBoard."""
    cbs = list(callbacks) + ([BestWeights(kept)] if keep_best else [])
    cbs += [] if tty else [EpochLine(label, echo)]
    if log_dir:
        cbs.append(keras.callbacks.TensorBoard(log_dir, write_graph=False, profile_batch=0))
    hist = trainer.fit(ds, epochs=epochs, validation_data=validation, callbacks=cbs,
                       verbose=1 if tty else 0)
    return hist.history


def accuracy(model, x, y, batch_size=256):
    """Top-1 accuracy of a logits model."""
    if len(y) == 0:
        return float("nan")
    pred = model.predict(x, batch_size=batch_size, verbose=0).argmax(-1)
    return float(np.mean(pred == y))
