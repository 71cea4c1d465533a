"""The hard-label loss for batches that hold unlabelled clips.

Transfer clips, clips of other words and mixtures (:mod:`tfkd.data.transfer`,
:mod:`tfkd.data.online`) carry the label :data:`tfkd.data.online.NO_LABEL` (-1) and teach
through the teacher's soft targets only. :class:`MaskedSparseCategoricalCrossentropy` is
the Distiller's ``student_loss`` (reduction ``NONE``) that gives 0 for labels < 0, so
such clips contribute only to the distillation loss. The Distiller averages the
per-clip hard loss over the whole batch, so a batch with a share of transfer clips
weights the hard loss by its labelled share.

(Not in :mod:`tfkd.distill.losses`: that module is read by the config loader, which
imports no TensorFlow, and this class subclasses a Keras loss when it is defined.)
"""

import tensorflow as tf

from tfkd._keras import keras

__all__ = ["MaskedSparseCategoricalCrossentropy"]


class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy on logits that is 0 for clips with a label < 0.

    Args:
      reduction: Keras reduction; ``NONE`` (per clip), as the Distiller's
        ``student_loss=`` needs.
      name: the loss's name.
    """

    def __init__(self, reduction=keras.losses.Reduction.NONE,
                 name="masked_sparse_categorical_crossentropy"):
        super().__init__(reduction=reduction, name=name)

    def call(self, y_true, y_pred):
        y = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        labelled = y >= 0
        # A valid index for every clip; the masked ones are zeroed below, and a zero
        # factor also zeroes their gradient (no NaN: the loss itself is finite).
        safe = tf.where(labelled, y, tf.zeros_like(y))
        per_clip = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=y_pred)
        return per_clip * tf.cast(labelled, per_clip.dtype)
