"""Keras training that the pipeline's stages call: :mod:`~tfkd.train.fit` (settings,
callbacks, the one ``fit``) and :mod:`~tfkd.train.replicas` (replicas that step like one
device)."""
