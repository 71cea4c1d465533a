"""A teacher ensemble as one model: the mean of several teachers' logits.

The Distiller, the logit cache and every other step see a single ``tf_keras``
functional model with one input and one logits output, so an ensemble needs no special
case anywhere. The members keep their own weights (shared, not copied) and are frozen
together with the ensemble.
"""

from tfkd._keras import keras, require_tf_keras_model

__all__ = ["ensemble"]


def ensemble(teachers, name="teacher_ensemble"):
    """One functional model whose output is the mean of ``teachers``' logits.

    Averaging logits (rather than probabilities) keeps the output a logits tensor, which
    is what the Distiller's temperature-scaled losses and the logit cache expect.

    Args:
      teachers: a non-empty list of ``tf_keras`` models returning logits, all with the
        same input shape and output width.
      name: the ensemble's name.

    Returns:
      A functional ``tf_keras`` model (a single teacher is returned as it is).

    Raises:
      TypeError: a member is not a ``tf_keras`` model.
      ValueError: no teachers, or members whose input shapes or output widths differ.
    """
    teachers = list(teachers)
    if not teachers:
        raise ValueError("teacher.ensemble: needs at least one teacher")
    for i, t in enumerate(teachers):
        require_tf_keras_model(t, f"teacher.ensemble[{i}]")
    if len(teachers) == 1:
        return teachers[0]
    shape = tuple(teachers[0].input_shape[1:])
    width = teachers[0].output_shape[-1]
    for i, t in enumerate(teachers[1:], start=1):
        if tuple(t.input_shape[1:]) != shape:
            raise ValueError(f"teacher.ensemble[{i}]: input shape {tuple(t.input_shape[1:])} "
                             f"differs from teacher 0's {shape}")
        if t.output_shape[-1] != width:
            raise ValueError(f"teacher.ensemble[{i}]: {t.output_shape[-1]} outputs, "
                             f"teacher 0 has {width}")
    inp = keras.Input(shape, name="features")
    # Members trained by the same recipe share a name; a functional model needs unique
    # layer names, so each member is wrapped under its own name (weights shared).
    outs = [keras.Model(t.inputs, t.outputs, name=f"member{i}")(inp)
            for i, t in enumerate(teachers)]
    out = keras.layers.Average(name="logits")(outs)
    model = keras.Model(inp, out, name=name)
    model.trainable = False
    return model
