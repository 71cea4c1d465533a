"""TensorFlow, imported on first use.

Importing TensorFlow takes seconds (about 3 s on a quiet 2-core machine, more under load),
and ``tfkd --version`` or a ``tfkd validate`` that finds a bad key should answer at once.
The modules that the config loader reaches (feature settings, strategies, feature pairs,
mixup settings) use ``tf`` only inside functions, so they hold this proxy instead of the
module: the first attribute read imports TensorFlow, later reads go straight to it.
"""

import importlib

__all__ = ["tf", "keras"]


class _LazyModule:
    """A stand-in for a module that is imported on its first attribute access."""

    def __init__(self, name, attribute=None):
        self._name = name
        self._attribute = attribute
        self._module = None

    def __getattr__(self, attr):
        if self._module is None:
            module = importlib.import_module(self._name)
            self._module = getattr(module, self._attribute) if self._attribute else module
        return getattr(self._module, attr)

    def __repr__(self):
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


#: ``tensorflow``, imported when first used.
tf = _LazyModule("tensorflow")
#: ``tfkd._keras.keras`` (tf_keras, chosen in that one place), imported when first used.
keras = _LazyModule("tfkd._keras", "keras")
