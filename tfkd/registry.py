"""A generic name -> builder registry, reused by losses, models and schedules."""


class UnknownNameError(ValueError):
    """A name that a registry does not hold; the message lists the valid names."""


class Registry:
    """Maps names to builders (classes or functions).

    Registries are filled explicitly, never as a side effect of importing a module:
    each module that owns a registry builds it from a literal table, and users add
    their own entries with :meth:`register`.

    Args:
      kind: what the registry holds ("loss", "model", ...), used in errors.
      items: an optional initial ``{name: builder}`` table.
    """

    def __init__(self, kind, items=None):
        self.kind = kind
        self._items = {}
        for name, builder in (items or {}).items():
            self.register(name, builder)

    def register(self, name, builder=None, *, overwrite=False):
        """Adds ``builder`` under ``name``; usable as a decorator when ``builder`` is omitted.

        Args:
          name: the lookup name (non-empty string).
          builder: the class or function to register.
          overwrite: replace an existing entry instead of raising.

        Returns:
          ``builder`` (or a decorator that registers and returns its argument).

        Raises:
          ValueError: the name is empty or already taken and ``overwrite`` is false.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if builder is None:
            return lambda b: self.register(name, b, overwrite=overwrite)
        if name in self._items and not overwrite:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = builder
        return builder

    def get(self, name):
        """Returns the builder registered under ``name``.

        Raises:
          UnknownNameError: with the list of valid names.
        """
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}. Available: {', '.join(self.names())}") from None

    def names(self):
        """The registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items

    def __repr__(self):
        return f"Registry({self.kind!r}, {self.names()})"
