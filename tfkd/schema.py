"""Frozen dataclasses from plain data: types checked per field, errors with the key path.

:func:`build` turns a mapping into a dataclass, checking each value against its field's
type hint (nested dataclasses, ``Optional``, typed tuples such as
``tuple[FeaturePair, ...]``) and naming the full key path of any problem. Value rules
live with their fields, in each dataclass's ``__post_init__``: a ``ValueError`` whose
message starts with ``<field>:`` is reported under that field's key path.
"""

import dataclasses
import os
import typing

import yaml

__all__ = ["ConfigError", "safe_load", "build", "to_dict", "require", "require_positive",
           "require_rate", "resolve_paths", "apply_overrides"]


class ConfigError(ValueError):
    """A bad key or value; the message starts with the full key path."""


def safe_load(text):
    """A YAML value (a ``--set`` value, a search range) through tfkd's bounded loader.

    Same rules as config files (:mod:`tfkd.yamlio`): YAML 1.2 booleans, no code tags,
    aliases, depth and size bounded, duplicate keys refused.

    Raises:
      tfkd.yamlio.YamlError: a refused value (a ``yaml.YAMLError`` and a ``ValueError``).
    """
    from tfkd import yamlio

    return yamlio.loads(text, "--set value")


def require(cond, field, msg, value):
    """Raises ``ValueError("<field>: <msg>, got <value>")`` unless ``cond`` (for ``__post_init__``)."""
    if not cond:
        raise ValueError(f"{field}: {msg}, got {value!r}")


def require_positive(obj, *names):
    """Each named field of ``obj`` must be >= 1."""
    for n in names:
        require(getattr(obj, n) >= 1, n, "must be >= 1", getattr(obj, n))


def require_rate(obj, name):
    """The named field of ``obj`` must be > 0 (a learning rate, a temperature)."""
    require(getattr(obj, name) > 0, name, "must be > 0", getattr(obj, name))


def _type_name(t):
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string",
            list: "a list", dict: "a mapping", tuple: "a list"}.get(t, getattr(t, "__name__", str(t)))


def _check_value(value, hint, key):
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _check_value(value, args[0], key)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a mapping, got {value!r}")
        return build(hint, value, key)
    if origin is tuple:  # tuple[X, ...]: a list in YAML, each item checked as an X
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: must be a list, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_check_value(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if value is None:
        raise ConfigError(f"{key}: must be {_type_name(hint)}, got null")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is tuple and isinstance(value, list):
        return tuple(value)
    if hint in (int, float) and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{key}: must be {_type_name(hint)}, got {value!r}")
    return value


def build(cls, data, prefix=""):
    """Builds dataclass ``cls`` from a mapping, checking every key and value.

    Raises:
      ConfigError: an unknown or missing key, a wrong type, or a value its field's rule
        refuses; the message starts with the key path.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"{_join(prefix, unknown[0])}: unknown key (allowed: {', '.join(fields)})")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{_join(prefix, missing[0])}: required")
    kwargs = {k: _check_value(v, hints[k], _join(prefix, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        msg = str(e)
        field = msg.split(":", 1)[0] if ":" in msg else ""
        if field in fields:
            raise ConfigError(f"{_join(prefix, field)}:{msg.split(':', 1)[1]}") from None
        raise ConfigError(f"{prefix or 'config'}: {msg}") from None


def _join(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)


def to_dict(cfg):
    """A dataclass config as plain data (tuples as lists), for ``resolved.yaml``."""
    def plain(v):
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def _get(d, dotted):
    """The value at a dotted key of nested dicts, or None."""
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def resolve_paths(raw, base, keys, only=None):
    """Makes the string values at the dotted ``keys`` of ``raw`` absolute, relative to ``base``."""
    for key in keys:
        if only is not None and key not in only:
            continue
        head, _, leaf = key.rpartition(".")
        parent = _get(raw, head)
        if isinstance(parent, dict) and isinstance(parent.get(leaf), str):
            parent[leaf] = os.path.normpath(os.path.join(base, os.path.expanduser(parent[leaf])))


def apply_overrides(raw, overrides, defaults, parse, path_keys=()):
    """Applies ``KEY=VALUE`` strings to ``raw``, a config as plain data.

    Args:
      raw: the config as nested dicts (changed in place).
      overrides: ``KEY=VALUE`` strings with dotted keys.
      defaults: the default config as plain data: the keys that exist.
      parse: reads a value's text (a bounded YAML loader).
      path_keys: dotted keys whose string values are paths, made absolute relative to the
        working directory.

    Returns:
      ``raw``.

    Raises:
      ConfigError: a malformed override or a key path that does not exist.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = parse(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: cannot parse value {text!r} ({e.problem})") from None
        parts = key.split(".")
        node, ref = raw, defaults
        for i, part in enumerate(parts):
            known = isinstance(ref, dict) and part in ref
            if not known:
                allowed = ", ".join(ref) if isinstance(ref, dict) else "none"
                raise ConfigError(f"{'.'.join(parts[:i + 1])}: unknown key (allowed: {allowed})")
            if i == len(parts) - 1:
                node[part] = value
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node, ref = node[part], ref[part] if isinstance(ref[part], dict) else {}
        if key in path_keys and isinstance(value, str):
            resolve_paths(raw, os.getcwd(), path_keys, only=(key,))
    return raw
