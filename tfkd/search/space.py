"""The budgets and the search space of ``tfkd search``, read from the ``search`` section.

A pipeline YAML may carry a ``search`` section (``tfkd run`` ignores it)::

    search:
      budget: {flash: 23KB, arena: 32KB, macs: 2M}
      trials: 20
      sampler: tpe            # tpe or nsga2 (Optuna, multi-objective)
      space:
        channels: [16, 64]    # [low, high]; or {low, high, step, log}; or {choices: [...]}
        temperature: {low: 1, high: 8, log: true}
        alpha: 0.1            # one value: fixed; null: the dimension is off

Byte budgets take ``B``, ``KB`` and ``MB`` (1 KB = 1024 B, as MCU datasheets count
flash and RAM; ``KiB``/``MiB`` are accepted too); MACs take ``K``, ``M`` and ``G``
(decimal: 2M = 2,000,000). Every error is one line that starts with the key it names
(``search.budget.flash: …`` or ``--budget flash=…: …``).
"""

import dataclasses
import re
import typing

import yaml

from tfkd.config import ConfigError, from_dict, load, to_dict
from tfkd.models.ds_cnn import PRESETS as DS_CNN_SIZES
from tfkd.schema import safe_load

__all__ = ["Budget", "Dimension", "SearchSettings", "parse_size", "parse_budget",
           "parse_search", "load_search", "split_overrides", "candidate_config", "DEFAULT_SPACE",
           "BUDGET_NAMES"]

_BYTE_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024 ** 2, "mib": 1024 ** 2}
_COUNT_UNITS = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9}
#: budget name -> the units it takes.
BUDGET_NAMES = {"flash": _BYTE_UNITS, "arena": _BYTE_UNITS, "macs": _COUNT_UNITS}
_UNIT_HELP = {"flash": "B, KB, MB; 1 KB = 1024 B", "arena": "B, KB, MB; 1 KB = 1024 B",
              "macs": "K, M, G; 2M = 2,000,000"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    """What the device can hold; ``None`` leaves a figure unbounded."""

    flash: typing.Optional[int] = None
    """Largest int8 ``.tflite`` in bytes (the model array the firmware links)."""
    arena: typing.Optional[int] = None
    """Largest tensor arena in bytes: TFLite Micro's host-measured arena plus
    ``export.arena_margin``, i.e. the ``TensorArenaSize`` the export writes."""
    macs: typing.Optional[int] = None
    """Most multiply-accumulates per inference (convolutions and dense layers)."""

    def constraints(self, flash, arena, macs):
        """Optuna constraint values: relative excess per budget, feasible when all <= 0."""
        out = []
        for limit, value in ((self.flash, flash), (self.arena, arena), (self.macs, macs)):
            out.append(0.0 if limit is None else float(value) / limit - 1.0)
        return out

    def broken(self, flash, arena, macs):
        """``["flash 30.1 KB > 23.0 KB", ...]`` for each budget the figures break."""
        out = []
        for name, limit, value in (("flash", self.flash, flash), ("arena", self.arena, arena),
                                   ("macs", self.macs, macs)):
            if limit is not None and value > limit:
                out.append(f"{name} {format_figure(name, value)} > {format_figure(name, limit)}")
        return out

    def describe(self):
        """``flash 23.0 KB, arena 32.0 KB`` (or ``none``)."""
        parts = [f"{n} {format_figure(n, getattr(self, n))}" for n in BUDGET_NAMES
                 if getattr(self, n) is not None]
        return ", ".join(parts) or "none"


def format_figure(name, value):
    """A budget figure for people: KB for bytes, M for MACs."""
    if name == "macs":
        return f"{value / 1e6:.2f} M"
    return f"{value / 1024:.1f} KB"


def parse_size(value, name, key):
    """Reads one budget figure (``23KB``, ``23552``, ``2M``) as an integer.

    Args:
      value: a number or a string with a unit.
      name: the budget (``flash``, ``arena`` or ``macs``), which picks the units.
      key: the key named in errors.

    Raises:
      ConfigError: ``<key>: …`` for a malformed value, an unknown unit or a value <= 0.
    """
    units = BUDGET_NAMES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{key}: must be a size such as 23KB or 2M, got {value!r}")
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", value)
        if not m:
            raise ConfigError(f"{key}: must be a size such as 23KB or 2M, got {value!r}")
        number, unit = float(m.group(1)), m.group(2)
        if unit.lower() not in units:
            raise ConfigError(f"{key}: unknown unit {unit!r} ({name} takes {_UNIT_HELP[name]})")
        value = number * units[unit.lower()]
    if value <= 0:
        raise ConfigError(f"{key}: must be > 0, got {value!r}")
    return int(round(value))


def parse_budget(text, key="--budget"):
    """Reads ``flash=23KB,arena=32KB,macs=2M`` into ``{name: int}``.

    Raises:
      ConfigError: ``--budget <item>: …`` naming the bad item.
    """
    out = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not eq or not value.strip():
            raise ConfigError(f"{key} {item}: expected NAME=SIZE (e.g. flash=23KB)")
        if name not in BUDGET_NAMES:
            raise ConfigError(f"{key} {item}: unknown budget {name!r} "
                              f"(allowed: {', '.join(BUDGET_NAMES)})")
        out[name] = parse_size(value.strip(), name, f"{key} {item}")
    if not out:
        raise ConfigError(f"{key}: empty (expected e.g. flash=23KB,arena=32KB,macs=2M)")
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Dimension:
    """One searched setting: a range or a list of choices, and the config key it sets."""

    name: str
    """Name in ``search.space`` and in the Optuna study."""
    key: str
    """Dotted config path it sets (``student.params.channels``)."""
    low: typing.Optional[float] = None
    """Lower end of a range (inclusive)."""
    high: typing.Optional[float] = None
    """Upper end of a range (inclusive)."""
    step: typing.Optional[float] = None
    """Grid step of a range (None: continuous for floats, 1 for integers)."""
    log: bool = False
    """Sample the range on a log scale."""
    integer: bool = False
    """Whole numbers only."""
    choices: typing.Optional[tuple] = None
    """Categorical values, used instead of ``low``/``high``."""

    def suggest(self, trial):
        """Asks an Optuna trial for this dimension's value (config-ready: lists stay lists)."""
        if self.choices is not None:
            labels = [_label(c) for c in self.choices]
            picked = trial.suggest_categorical(self.name, labels)
            return self.choices[labels.index(picked)]
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step,
                                   log=self.log)

    def describe(self):
        """``[16, 64] step 8``, ``[1, 8] log`` or ``{2x1, 2x2}`` for logs and reports."""
        if self.choices is not None:
            return "{" + ", ".join(str(_label(c)) for c in self.choices) + "}"
        step = f" step {self.step:g}" if self.step else ""
        return f"[{self.low:g}, {self.high:g}]{step}{' log' if self.log else ''}"


def _label(value):
    # Optuna's categorical values must be scalars: a stride [2, 1] is stored as "2x1".
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return value


#: name -> (config key, or the student parameter role in ``_MODEL_PARAMS``; default range).
DEFAULT_SPACE = {
    "channels": ("@width", {"low": 16, "high": 64, "step": 8}),
    "blocks": ("@depth", {"low": 1, "high": 4}),
    "first_stride": ("@stride", {"choices": [[2, 1], [2, 2], [3, 2]]}),
    "num_channels": ("features.num_channels", {"choices": [20, 40]}),
    "stride_ms": ("features.stride_ms", {"choices": [20, 40]}),
    "prune_ratio": ("prune.ratio", {"low": 0.0, "high": 0.5}),
    "temperature": ("distill.temperature", {"low": 1.0, "high": 8.0, "log": True}),
    "alpha": ("distill.alpha", {"low": 0.0, "high": 0.5}),
}
_INTEGER = {"channels", "blocks", "num_channels", "stride_ms"}

#: zoo model -> the builder parameter behind each size role.
_MODEL_PARAMS = {
    **{m: {"@width": "channels", "@depth": "blocks", "@stride": "first_stride"}
       for m in ("ds_cnn", *(f"ds_cnn_{size}" for size in DS_CNN_SIZES))},
    "tiny_conv": {"@width": "filters", "@stride": "strides"},
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchSettings:
    """Everything ``tfkd search`` reads besides the pipeline itself."""

    budget: Budget = dataclasses.field(default_factory=Budget)
    """The device budget."""
    trials: int = 20
    """Trials to run (each feasible one trains; infeasible ones take seconds)."""
    sampler: str = "tpe"
    """Optuna sampler: ``tpe`` (multi-objective TPE) or ``nsga2`` (NSGA-II)."""
    seed: int = 0
    """Sampler seed (default: the pipeline seed), so that a search repeats."""
    startup_trials: int = 10
    """TPE: random trials before it models the space; NSGA-II: population size."""
    samples: int = 32
    """``--dry-run``: configurations sampled from the space."""
    space: tuple = ()
    """The :class:`Dimension` objects searched, in order."""
    off: tuple = ()
    """Dimensions left out, with why (``"blocks: tiny_conv has no depth parameter"``)."""


def load_search(path, overrides=(), budget_text=None, *, optional=False):
    """Loads a pipeline YAML and its search settings, as ``tfkd search`` reads them.

    ``tfkd validate`` calls it too (with ``optional=True``), so that a ``search`` section
    it accepts is one ``tfkd search`` accepts. Neither step imports TensorFlow.

    Args:
      path: the pipeline YAML file.
      overrides: ``--set`` strings; ``search.*`` ones go to the search section, the
        others to the pipeline.
      budget_text: ``--budget`` (see :func:`parse_budget`), or None.
      optional: return ``(cfg, None)`` when the pipeline has no ``search`` section and
        no ``search.*`` override (a pipeline meant only for ``tfkd run``).

    Returns:
      ``(PipelineConfig, SearchSettings or None)``.

    Raises:
      ConfigError: one line starting with the bad key (pipeline or search).
    """
    mine, theirs = split_overrides(overrides)
    cfg = load(path, theirs)
    section = getattr(cfg, "search", None)
    if optional and section is None and not mine and budget_text is None:
        return cfg, None
    return cfg, parse_search(cfg, section, mine, budget_text)


def split_overrides(overrides):
    """Splits ``--set`` items into ``search.*`` ones and the pipeline's own."""
    mine = [o for o in overrides if o.strip().startswith("search.")]
    return mine, [o for o in overrides if o not in mine]


def _apply_search_overrides(section, overrides):
    section = dict(section or {})
    for item in overrides:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        try:
            value = safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: cannot parse value {text!r} ({e.problem})") from None
        parts = key.split(".")[1:]
        if not parts or not all(parts):
            raise ConfigError(f"{key}: expected search.<key>=VALUE")
        node = section
        for part in parts[:-1]:
            node[part] = dict(node[part]) if isinstance(node.get(part), dict) else {}
            node = node[part]
        node[parts[-1]] = value
    return section


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _dimension(name, key, spec, default, prefix):
    """Builds a :class:`Dimension` from its YAML form (see the module docstring)."""
    k = f"{prefix}.{name}"
    integer = name in _INTEGER
    pair = name == "first_stride"
    if spec is None:
        return None
    if isinstance(spec, dict):
        if pair and set(spec) != {"choices"}:
            raise ConfigError(f"{k}: give {{choices: [[time, frequency], ...]}} or one "
                              "[time, frequency] pair")
        allowed = {"low", "high", "step", "log", "choices"}
        bad = [x for x in spec if x not in allowed]
        if bad:
            raise ConfigError(f"{k}.{bad[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
        if "choices" in spec:
            if set(spec) != {"choices"}:
                raise ConfigError(f"{k}: give either choices or low/high, not both")
            return _choices(name, key, spec["choices"], k, integer, pair)
        merged = {**{x: default.get(x) for x in ("step", "log")}, **spec} \
            if "choices" not in default else dict(spec)
        if "low" not in merged or "high" not in merged:
            raise ConfigError(f"{k}: needs low and high (or choices)")
        return _range(name, key, merged, k, integer)
    if pair:
        if isinstance(spec, list) and spec and all(isinstance(c, list) for c in spec):
            return _choices(name, key, spec, k, integer, pair)
        return _choices(name, key, [spec], k, integer, pair)
    if isinstance(spec, list):
        if len(spec) != 2:
            raise ConfigError(f"{k}: a range is [low, high], got {spec!r}")
        return _range(name, key, {"low": spec[0], "high": spec[1], "step": default.get("step"),
                                  "log": default.get("log", False)}, k, integer)
    return _choices(name, key, [spec], k, integer, pair)


def _range(name, key, spec, k, integer):
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log") or False
    if not (_number(low) and _number(high)) or low > high:
        raise ConfigError(f"{k}: need numbers low <= high, got {low!r}..{high!r}")
    if integer and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{k}: must be whole numbers, got {low!r}..{high!r}")
    if step is not None and (not _number(step) or step <= 0):
        raise ConfigError(f"{k}.step: must be > 0, got {step!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{k}.log: must be true/false, got {log!r}")
    if log and (low <= 0 or step):
        raise ConfigError(f"{k}.log: needs low > 0 and no step")
    if integer:
        if low < 1:  # the zoo reads 0 channels or blocks as "the preset"
            raise ConfigError(f"{k}: must be >= 1, got {low!r}..{high!r}")
        low, high, step = int(low), int(high), int(step) if step else None
    return Dimension(name=name, key=key, low=low, high=high, step=step, log=log, integer=integer)


def _choices(name, key, values, k, integer, pair):
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{k}.choices: must be a non-empty list, got {values!r}")
    for v in values:
        if pair:
            ok = isinstance(v, list) and len(v) == 2 and all(_whole(x) for x in v)
        else:
            ok = _whole(v) if integer else _number(v)
        if not ok:
            what = "[time, frequency] strides >= 1" if pair else \
                ("whole numbers >= 1" if integer else "numbers")
            raise ConfigError(f"{k}: choices must be {what}, got {v!r}")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"{k}: duplicate choices in {values!r}")
    return Dimension(name=name, key=key, choices=tuple(values), integer=integer)


def parse_search(cfg, section, overrides=(), budget_text=None):
    """Builds :class:`SearchSettings` from the ``search`` section and the command line.

    Args:
      cfg: the checked :class:`tfkd.config.PipelineConfig` (it decides which dimensions
        apply: the student's size parameters, structured pruning, distillation).
      section: the YAML ``search`` mapping (or None).
      overrides: ``search.*=VALUE`` strings from ``--set``.
      budget_text: ``--budget``; its figures replace the section's.

    Raises:
      ConfigError: one line starting with the bad key.
    """
    p = "search"
    section = _apply_search_overrides(section, overrides)
    if not isinstance(section, dict):
        raise ConfigError(f"{p}: must be a mapping, got {section!r}")
    allowed = ("budget", "trials", "sampler", "seed", "startup_trials", "samples", "space")
    bad = [x for x in section if x not in allowed]
    if bad:
        raise ConfigError(f"{p}.{bad[0]}: unknown key (allowed: {', '.join(allowed)})")
    budget = section.get("budget") or {}
    if isinstance(budget, str):
        budget = parse_budget(budget, key=f"{p}.budget")
    elif isinstance(budget, dict):
        unknown = [x for x in budget if x not in BUDGET_NAMES]
        if unknown:
            raise ConfigError(f"{p}.budget.{unknown[0]}: unknown budget "
                              f"(allowed: {', '.join(BUDGET_NAMES)})")
        budget = {n: parse_size(v, n, f"{p}.budget.{n}") for n, v in budget.items()
                  if v is not None}
    else:
        raise ConfigError(f"{p}.budget: must be a mapping or flash=..,arena=..,macs=.., "
                          f"got {budget!r}")
    if budget_text is not None:
        budget.update(parse_budget(budget_text))
    ints = {}
    for name, default, low in (("trials", 20, 1), ("seed", cfg.seed, 0), ("startup_trials", 10, 1),
                               ("samples", 32, 1)):
        v = section.get(name, default)
        if v is None:
            v = default
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ConfigError(f"{p}.{name}: must be an integer >= {low}, got {v!r}")
        ints[name] = v
    sampler = section.get("sampler") or "tpe"
    if sampler not in ("tpe", "nsga2"):
        raise ConfigError(f"{p}.sampler: must be tpe or nsga2, got {sampler!r}")
    space_raw = section.get("space") or {}
    if not isinstance(space_raw, dict):
        raise ConfigError(f"{p}.space: must be a mapping of dimensions, got {space_raw!r}")
    unknown = [x for x in space_raw if x not in DEFAULT_SPACE]
    if unknown:
        raise ConfigError(f"{p}.space.{unknown[0]}: unknown dimension "
                          f"(allowed: {', '.join(DEFAULT_SPACE)})")
    dims, off = [], []
    roles = _MODEL_PARAMS.get(cfg.student.model, {})
    distills = cfg.teacher is not None or cfg.distill.generations > 1
    for name, (key, default) in DEFAULT_SPACE.items():
        spec = space_raw.get(name, default)
        if key.startswith("@"):
            if key not in roles:
                if name in space_raw and spec is not None:
                    raise ConfigError(f"{p}.space.{name}: student.model {cfg.student.model} has "
                                      "no such size parameter (searchable: "
                                      f"{', '.join(_MODEL_PARAMS)})")
                off.append(f"{name}: student.model {cfg.student.model} has no such parameter")
                continue
            key = f"student.params.{roles[key]}"
        if name == "prune_ratio" and cfg.prune.method != "structured":
            off.append(f"{name}: prune.method is {cfg.prune.method}, not structured")
            continue
        if name in ("temperature", "alpha") and not distills:
            off.append(f"{name}: the pipeline has no teacher")
            continue
        dim = _dimension(name, key, spec, default, f"{p}.space")
        if dim is None:
            off.append(f"{name}: off (search.space.{name}: null)")
            continue
        dims.append(dim)
    if not dims:
        raise ConfigError(f"{p}.space: every dimension is off; nothing to search")
    _check_ends(cfg, dims)
    try:
        b = Budget(**budget)
    except TypeError as e:  # pragma: no cover - names were checked above
        raise ConfigError(f"{p}.budget: {e}") from None
    return SearchSettings(budget=b, sampler=sampler, space=tuple(dims), off=tuple(off), **ints)


def _check_ends(cfg, dims):
    """Builds the pipeline config at each end (or choice) of every dimension, so that a
    range the pipeline refuses is reported now, under its search key, not at a trial."""
    for d in dims:
        for value in d.choices if d.choices is not None else (d.low, d.high):
            if d.integer and d.choices is None:
                value = int(value)
            try:
                candidate_config(cfg, {d.name: value}, Budget())
            except ConfigError as e:
                raise ConfigError(f"search.space.{d.name}: {value!r} is refused ({e})") from None


def _set(raw, dotted, value):
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def candidate_config(cfg, values, budget, name=None):
    """The pipeline config of one candidate: ``cfg`` with the searched values set.

    Args:
      cfg: the base :class:`tfkd.config.PipelineConfig`.
      values: ``{dimension_name: value}`` as :meth:`Dimension.suggest` returns them.
      budget: the :class:`Budget`; its flash and arena become ``budgets.max_flash_bytes``
        and ``budgets.max_arena_bytes``, so that ``tfkd run`` of the candidate checks them.
      name: the run name (default: the base name).

    Returns:
      ``(PipelineConfig, keys)`` where ``keys`` maps each dimension name to its config key.

    Raises:
      ConfigError: a value the pipeline refuses (the message names the config key).
    """
    space = dict(values)
    raw = to_dict(cfg)
    raw.pop("search", None)
    keys = {}
    roles = _MODEL_PARAMS.get(cfg.student.model, {})
    for dim_name, value in space.items():
        key = DEFAULT_SPACE[dim_name][0]
        key = f"student.params.{roles[key]}" if key.startswith("@") else key
        keys[dim_name] = key
        _set(raw, key, list(value) if isinstance(value, tuple) else value)
    if name:
        raw["name"] = name
    if budget.flash is not None:
        raw.setdefault("budgets", {})["max_flash_bytes"] = int(budget.flash)
    if budget.arena is not None:
        raw.setdefault("budgets", {})["max_arena_bytes"] = int(budget.arena)
    return from_dict(raw), keys
