"""micro_speech's ``tiny_conv``: one convolution and a fully connected layer."""

from tfkd.lazy_tf import keras  # imported on first use: the config checks model names without TensorFlow

__all__ = ["tiny_conv"]


def tiny_conv(input_shape, num_labels, filters=8, kernel=(10, 8), strides=(2, 2), dropout=0.1,
              name="tiny_conv"):
    """Builds micro_speech's tiny_conv (about 16k parameters on 49×40 with 4 labels) returning logits.

    Args:
      input_shape: ``(frames, features, 1)``.
      num_labels: output width.
      filters, kernel, strides: the single convolution.
      dropout: dropout before the classifier (training only).
      name: model name.
    """
    inp = keras.Input(input_shape, name="features")
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", name="conv0")(inp)
    x = keras.layers.ReLU(name="relu0")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(num_labels, name="logits")(x)
    return keras.Model(inp, out, name=name)
