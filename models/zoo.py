"""The model registry: every zoo builder by name, and the door for users' own models."""

import functools

from tfkd.models.cnn_teacher import resnet_teacher
from tfkd.models.ds_cnn import PRESETS as DS_CNN_SIZES, ds_cnn
from tfkd.models.tiny_conv import tiny_conv
from tfkd.registry import Registry

__all__ = ["MODELS", "build", "register"]

#: name -> builder(input_shape, num_labels, **params) returning a logits model.
MODELS = Registry("model", {
    "ds_cnn": ds_cnn,
    **{f"ds_cnn_{size}": functools.partial(ds_cnn, size=size) for size in DS_CNN_SIZES},
    "tiny_conv": tiny_conv,
    "resnet_teacher": resnet_teacher,
})


def register(name, builder, *, overwrite=False):
    """Registers a user's builder ``builder(input_shape, num_labels, **params)``.

    After this, YAML can name it (YAML never imports code).
    """
    return MODELS.register(name, builder, overwrite=overwrite)


def build(name, input_shape, num_labels, **params):
    """Builds the registered model ``name``.

    Raises:
      UnknownNameError: ``name`` is not registered (the message lists the names).
      ValueError: a bad size parameter.
    """
    builder = MODELS.get(name)
    try:
        return builder(tuple(input_shape), int(num_labels), **params)
    except TypeError as e:
        raise ValueError(f"model {name!r}: bad parameters {params}: {e}") from None
