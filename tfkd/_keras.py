"""The one place that picks Keras.

tfmot (pruning, QAT) works only with Keras 2, i.e. the ``tf_keras`` package, and in a
fresh Colab ``tf.keras`` is Keras 3 once TensorFlow was imported (``TF_USE_LEGACY_KERAS``
no longer helps then). Every tfkd module imports Keras from here and nowhere else; no
other library's globals are changed.
"""

import tf_keras as keras

__all__ = ["keras", "require_tf_keras_model"]


def require_tf_keras_model(model, name):
    """Checks that ``model`` is a ``tf_keras`` model.

    Args:
      model: the object handed to tfkd.
      name: the argument's name, used in the error.

    Returns:
      ``model`` unchanged.

    Raises:
      TypeError: ``model`` is a Keras 3 model or not a Keras model at all.
    """
    if isinstance(model, keras.Model):
        return model
    module = type(model).__module__
    if module.startswith("keras") and not module.startswith("keras.src.legacy"):
        raise TypeError(
            f"{name}: got a Keras 3 model ({type(model).__name__} from '{module}'); tfkd "
            "needs Keras 2 models: build it with `import tf_keras as keras` "
            "(tfmot does not support Keras 3)")
    raise TypeError(f"{name}: must be a tf_keras Model, got {type(model).__name__}")
