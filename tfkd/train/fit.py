"""One training entry for every stage: :func:`fit`, plain or distilled, on ``tf.data``."""

import dataclasses
import os
import typing

import numpy as np

from tfkd import distribute
from tfkd._keras import keras, predict
from tfkd.distill.distiller import Distiller
from tfkd.distill.masked_loss import MaskedSparseCategoricalCrossentropy
from tfkd.train import replicas

__all__ = ["FitSettings", "Progress", "fit", "BestWeights", "EpochLine", "cosine_adam", "accuracy"]


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation accuracy and restores them.

    Args:
      model_to_save: the model whose weights are kept (the student inside a Distiller).
      monitor: the logged metric.
    """

    def __init__(self, model_to_save, monitor="val_accuracy", backup=None):
        super().__init__()
        self.target = model_to_save
        self.monitor = monitor
        self.backup = backup
        self.best = -np.inf
        self.best_weights = None
        self.best_epoch = -1

    def on_train_begin(self, logs=None):
        # After an interruption, BackupAndRestore brings back the last epoch; the best
        # epoch so far comes back from this file.
        if self.backup and os.path.isfile(self.backup):
            with np.load(self.backup) as z:
                self.best, self.best_epoch = float(z["best"]), int(z["epoch"])
                self.best_weights = [z[f"w{i}"] for i in range(len(z.files) - 2)]

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best, self.best_epoch = value, epoch
            self.best_weights = self.target.get_weights()
            if self.backup and distribute.is_chief():
                tmp = self.backup + ".tmp.npz"
                np.savez(tmp, best=self.best, epoch=epoch,
                         **{f"w{i}": w for i, w in enumerate(self.best_weights)})
                os.replace(tmp, self.backup)

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


def cosine_adam(learning_rate, steps):
    """Adam with a cosine-decayed learning rate over ``steps``."""
    sched = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, steps), alpha=0.02)
    return keras.optimizers.Adam(sched)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FitSettings:
    """How one training run goes; built from a stage's config section."""

    epochs: int
    """Training epochs."""
    batch_size: int
    """Batch size (one augmented view per clip per epoch)."""
    learning_rate: float
    """Peak learning rate (Adam, cosine decay over all steps)."""
    temperature: float = 4.0
    """Distillation: softmax temperature (unused without a teacher)."""
    alpha: float = 0.1
    """Distillation: weight of the hard-label loss."""
    loss: str = "kl"
    """Distillation: the logit loss's registered name."""
    loss_params: dict = dataclasses.field(default_factory=dict)
    """Distillation: the logit loss's parameters."""
    features: tuple = ()
    """Distillation: feature pairs (:class:`tfkd.distill.features.FeaturePair`)."""
    cache: bool = True
    """Distillation: cache the teacher's logits per view (not with ``features``)."""
    keep_best: bool = True
    """Restore the epoch with the best validation accuracy (off while pruning, whose
    masks change between epochs)."""

    @classmethod
    def distilling(cls, distill, **kw):
        """Settings that inherit temperature, alpha, loss, features and cache from a
        ``DistillConfig``; ``kw`` gives epochs, batch_size, learning_rate (and keep_best)."""
        return cls(temperature=distill.temperature, alpha=distill.alpha, loss=distill.loss,
                   loss_params=dict(distill.loss_params), features=tuple(distill.features),
                   cache=distill.cache, **kw)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Progress:
    """Where training progress goes."""

    label: str = "train"
    """Prefix of the per-epoch lines."""
    echo: typing.Callable = print
    """Line printer (used when ``tty`` is false)."""
    tty: bool = False
    """Keras progress bars instead of one line per epoch."""
    log_dir: typing.Optional[str] = None
    """TensorBoard folder, or None."""
    backup_dir: typing.Optional[str] = None
    """Per-epoch checkpoint folder (Keras ``BackupAndRestore``): an interrupted fit
    continues from its last finished epoch. None: no checkpoints."""


def fit(model, data, settings, teacher=None, callbacks=(), *, seed=0, progress=Progress()):
    """Trains ``model`` on ``data``: from labels alone, or distilled from ``teacher``.

    This is the one place that decides between plain and distilled training. Batches
    come from ``data`` as ``tf.data`` datasets; with a teacher and ``settings.cache`` its
    logits are computed once per augmented view and read from the batches.

    Args:
      model: the model to train (logits).
      data: a :class:`tfkd.data.dataset.Data` (``train_dataset``, ``dataset``, ``logits``,
        ``steps_per_epoch``).
      settings: :class:`FitSettings`.
      teacher: a logits model, or None for labels alone.
      callbacks: extra callbacks (e.g. tfmot's pruning step).
      seed: order, view and initialization seed.
      progress: :class:`Progress`.

    Returns:
      The Keras history dict.
    """
    keras.utils.set_random_seed(seed)
    acc = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    optimizer = cosine_adam(settings.learning_rate,
                            settings.epochs * data.steps_per_epoch(settings.batch_size))
    logits = val_logits = None
    if teacher is None:
        trainer = model
        model.compile(optimizer=optimizer, metrics=acc,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        loss = dict(settings.loss_params, name=settings.loss) if settings.loss_params \
            else settings.loss
        # Clips labelled -1 (mixtures, transfer clips) teach through the soft targets
        # only; for labels >= 0 this is the plain sparse cross-entropy.
        trainer = Distiller(student=model, teacher=teacher, temperature=settings.temperature,
                            alpha=settings.alpha, loss=loss, features=list(settings.features) or None,
                            student_loss=MaskedSparseCategoricalCrossentropy())
        trainer.compile(optimizer=optimizer, metrics=acc)
        if settings.cache and not settings.features:  # feature maps need the live teacher
            logits, val_logits = data.logits(teacher), data.logits(teacher, "validation")
    backup = progress.backup_dir
    # BackupAndRestore first: it restores the last finished epoch before the others start.
    cbs = [keras.callbacks.BackupAndRestore(backup)] if backup else []
    cbs += list(callbacks) + ([BestWeights(model, backup=backup and os.path.join(backup, "best.npz"))]
                              if settings.keep_best else [])
    cbs += [] if progress.tty else [EpochLine(progress.label, progress.echo)]
    if progress.log_dir:
        cbs.append(keras.callbacks.TensorBoard(progress.log_dir, write_graph=False, profile_batch=0))
    # Over several replicas: batch statistics and dropout masks of the global batch, so
    # that the replicas take the steps one device would (nothing changes on one).
    with replicas.global_batch(model, trainer=trainer):
        hist = trainer.fit(data.train_dataset(settings.batch_size, seed, logits),
                           epochs=settings.epochs,
                           validation_data=data.dataset("validation", 256, val_logits),
                           callbacks=cbs, verbose=1 if progress.tty else 0)
    if backup and os.path.isfile(os.path.join(backup, "best.npz")):  # finished: nothing to resume
        os.remove(os.path.join(backup, "best.npz"))
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def accuracy(model, x, y, batch_size=256):
    """Top-1 accuracy of a logits model."""
    if len(y) == 0:
        return float("nan")
    pred = predict(model, x, batch_size).argmax(-1)
    return float(np.mean(pred == y))
