"""The pipeline schema: frozen dataclasses per stage, loaded from YAML with overrides.

``load(path, overrides)`` reads YAML with ``yaml.safe_load`` (no tags that run code),
applies ``KEY=VALUE`` overrides (values read with ``yaml.safe_load`` too), checks every
key, type and value, and reports the first problem with its full key path, e.g.
``distill.temperature: must be > 0, got -1``. Relative paths in the YAML file are
relative to that file; paths given as overrides are relative to the current directory.
"""

import dataclasses
import os
import re
import typing

import yaml

from tfkd.data.augment import AugmentParams
from tfkd.data.frontend import FeatureParams
from tfkd.data.speech import label_folders

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "TeacherConfig", "DistillConfig",
           "PruneConfig", "QuantizeConfig", "ExportConfig", "BudgetConfig", "PipelineConfig",
           "load", "to_dict", "apply_overrides"]


class ConfigError(ValueError):
    """A bad key or value; the message starts with the full key path."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 booleans: only true/false are booleans, so that
    the keywords ``yes``, ``no``, ``on`` and ``off`` stay strings in label lists."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def safe_load(text):
    """``yaml.safe_load`` with YAML 1.2 booleans (see ``_Loader``)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the clips come from and how they are split."""

    path: typing.Optional[str] = None
    """Local Speech-Commands-layout or ``<label>/*.wav`` folder; null reads TFDS."""
    labels: typing.Optional[list] = None
    """Label list in model order, or null for every sub-folder."""
    tfds_data_dir: typing.Optional[str] = None
    """TFDS data folder (when ``path`` is null)."""
    validation_pct: float = 10.0
    """Hash-split validation share in percent (used when no list files exist)."""
    testing_pct: float = 10.0
    """Hash-split test share in percent (used when no list files exist)."""
    unknown_share: float = 0.1
    """``_unknown_`` clips per keyword clip, when made from other word folders."""
    silence_share: float = 0.1
    """``_silence_`` clips per keyword clip, when synthesized from background noise."""
    skip_bad_files: bool = False
    """Skip (and count) unreadable WAV files instead of stopping."""
    augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)
    """Training-only augmentation (see ``tfkd.data.augment.AugmentParams``)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A zoo model."""

    model: str = "ds_cnn"
    """Registered model name (``tfkd.models.MODELS``)."""
    params: dict = dataclasses.field(default_factory=dict)
    """Keyword arguments of the builder (e.g. ``{size: s}``)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    """The teacher: a zoo model trained on labels, or a ``.keras`` file."""

    model: str = "resnet_teacher"
    """Registered model name to train."""
    params: dict = dataclasses.field(default_factory=dict)
    """Keyword arguments of the builder."""
    path: typing.Optional[str] = None
    """A ``.keras`` teacher to load instead of training one."""
    epochs: int = 30
    """Training epochs."""
    batch_size: int = 64
    """Batch size."""
    learning_rate: float = 0.002
    """Peak learning rate (Adam, cosine decay)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Knowledge distillation of the student."""

    epochs: int = 40
    """Distillation epochs."""
    batch_size: int = 64
    """Batch size."""
    learning_rate: float = 0.003
    """Peak learning rate (Adam, cosine decay)."""
    temperature: float = 4.0
    """Softmax temperature T (> 0)."""
    alpha: float = 0.1
    """Weight of the hard-label loss, in [0, 1]."""
    loss: str = "kl"
    """Logit loss: kl, mse, dkd or dist."""
    loss_params: dict = dataclasses.field(default_factory=dict)
    """Parameters of the logit loss (dkd: alpha, beta; dist: beta, gamma)."""
    cache: bool = True
    """Cache the teacher's logits per augmented view (not with ``features``)."""
    features: list = dataclasses.field(default_factory=list)
    """Feature pairs: ``[{teacher: LAYER, student: LAYER, loss: hint|attention, weight: W}]``."""
    generations: int = 1
    """Born-again generations; > 1 lets each generation teach the next."""
    assistants: list = dataclasses.field(default_factory=list)
    """Teacher-assistant chain: zoo models (``{model, params}``) distilled in turn."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneConfig:
    """Pruning with the teacher still teaching."""

    method: str = "structured"
    """``structured`` (remove filters), ``magnitude`` (tfmot zeros) or ``none``."""
    ratio: float = 0.25
    """structured: fraction of filters removed per layer, in [0, 1)."""
    target_sparsity: float = 0.5
    """magnitude: final fraction of zero weights, in [0, 1)."""
    schedule: str = "polynomial"
    """magnitude: polynomial or constant."""
    exclude: list = dataclasses.field(default_factory=list)
    """Layer names left unpruned."""
    epochs: int = 10
    """Fine-tuning epochs (distillation loss on)."""
    learning_rate: float = 0.001
    """Peak fine-tuning learning rate."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuantizeConfig:
    """Full-int8 post-training quantization and its host checks."""

    representative_samples: int = 500
    """Training clips that calibrate the activation ranges."""
    min_agreement: float = 0.98
    """Fail when TFLM and LiteRT argmax agree on fewer test clips than this."""
    max_step_diff: int = 1
    """Fail when TFLM and LiteRT outputs differ by more int8 steps than this."""
    qat_epochs: int = 0
    """Quantization-aware fine-tuning epochs, distillation loss on (0: post-training only).
    After magnitude pruning the prune-preserving scheme keeps the zeros."""
    qat_learning_rate: float = 0.0005
    """Peak learning rate of the quantization-aware fine-tuning."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """Firmware files."""

    name: typing.Optional[str] = None
    """Model name for files and C identifiers (default: the pipeline's name)."""
    arena_margin: float = 0.25
    """Fraction added to the host-measured arena for the target (pointers, CMSIS-NN)."""
    golden_vectors: int = 4
    """Test clips written as int8 input/output vectors for an on-device check."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """Optional limits; a run that breaks one exits 1."""

    max_flash_bytes: typing.Optional[int] = None
    """Largest ``.tflite`` size."""
    max_arena_bytes: typing.Optional[int] = None
    """Largest arena (with margin)."""
    min_int8_accuracy: typing.Optional[float] = None
    """Smallest TFLM int8 test accuracy."""
    max_int8_drop: typing.Optional[float] = None
    """Largest drop from the float student's to the TFLM int8 accuracy."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """A whole run."""

    name: str = "pipeline"
    """Run name: default output folder ``runs/<name>`` and export name."""
    seed: int = 0
    """Master seed; each stage derives its own."""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    features: FeatureParams = dataclasses.field(default_factory=FeatureParams)
    teacher: typing.Optional[TeacherConfig] = dataclasses.field(default_factory=TeacherConfig)
    """null: no teacher; the student learns from labels, and with ``distill.generations``
    > 1 each generation teaches the next (born-again networks)."""
    student: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)
    prune: PruneConfig = dataclasses.field(default_factory=PruneConfig)
    quantize: QuantizeConfig = dataclasses.field(default_factory=QuantizeConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    budgets: BudgetConfig = dataclasses.field(default_factory=BudgetConfig)


# -- building dataclasses from plain data ---------------------------------------------

def _type_name(t):
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string",
            list: "a list", dict: "a mapping", tuple: "a list"}.get(t, getattr(t, "__name__", str(t)))


def _check_value(value, hint, key):
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _check_value(value, args[0], key)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a mapping, got {value!r}")
        return _build(hint, value, key)
    if value is None:
        raise ConfigError(f"{key}: must be {_type_name(hint)}, got null")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is tuple and isinstance(value, list):
        return tuple(value)
    if hint in (int, float) and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{key}: must be {_type_name(hint)}, got {value!r}")
    return value


def _build(cls, data, prefix):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"{_join(prefix, unknown[0])}: unknown key (allowed: {', '.join(names)})")
    kwargs = {k: _check_value(v, hints[k], _join(prefix, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        msg = str(e)
        field = msg.split(":", 1)[0] if ":" in msg else ""
        if field in names:
            raise ConfigError(f"{_join(prefix, field)}:{msg.split(':', 1)[1]}") from None
        raise ConfigError(f"{prefix or 'config'}: {msg}") from None


def _join(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)


def to_dict(cfg):
    """A dataclass config as plain data (tuples as lists), for ``resolved.yaml``."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


# -- semantic checks --------------------------------------------------------------------

def _require(cond, key, msg, value):
    if not cond:
        raise ConfigError(f"{key}: {msg}, got {value!r}")


def _check(cfg):
    from tfkd.distill.features import FEATURE_LOSSES
    from tfkd.distill.losses import LOSSES
    from tfkd.models import MODELS

    d = cfg.data
    if d.path is not None:
        _require(os.path.isdir(d.path), "data.path", "folder does not exist", d.path)
        _require(bool(label_folders(d.path)), "data.path", "folder has no <label>/*.wav sub-folders",
                 d.path)
    if d.labels is not None:
        _require(len(d.labels) >= 2 and all(isinstance(l, str) and l for l in d.labels),
                 "data.labels", "must be a list of at least 2 names or null", d.labels)
    for k in ("validation_pct", "testing_pct"):
        v = getattr(d, k)
        _require(0 <= v < 100, f"data.{k}", "must be in [0, 100)", v)
    for k in ("unknown_share", "silence_share"):
        _require(getattr(d, k) >= 0, f"data.{k}", "must be >= 0", getattr(d, k))
    models = [("student.model", cfg.student.model)]
    if cfg.teacher is not None:
        t = cfg.teacher
        if t.path is not None:
            _require(os.path.isfile(t.path), "teacher.path", "file does not exist", t.path)
        else:
            models.append(("teacher.model", t.model))
        _require(t.epochs >= 1, "teacher.epochs", "must be >= 1", t.epochs)
        _require(t.batch_size >= 1, "teacher.batch_size", "must be >= 1", t.batch_size)
        _require(t.learning_rate > 0, "teacher.learning_rate", "must be > 0", t.learning_rate)
    for key, name in models:
        _require(name in MODELS, key, f"unknown model (available: {', '.join(MODELS.names())})", name)
    s = cfg.distill
    _require(s.epochs >= 1, "distill.epochs", "must be >= 1", s.epochs)
    _require(s.batch_size >= 1, "distill.batch_size", "must be >= 1", s.batch_size)
    _require(s.learning_rate > 0, "distill.learning_rate", "must be > 0", s.learning_rate)
    _require(s.temperature > 0, "distill.temperature", "must be > 0", s.temperature)
    _require(0 <= s.alpha <= 1, "distill.alpha", "must be in [0, 1]", s.alpha)
    _require(s.loss in LOSSES, "distill.loss", f"unknown loss (available: {', '.join(LOSSES.names())})", s.loss)
    _require(s.generations >= 1, "distill.generations", "must be >= 1", s.generations)
    for i, f in enumerate(s.features):
        key = f"distill.features[{i}]"
        _require(isinstance(f, dict) and {"teacher", "student"} <= set(f) and
                 set(f) <= {"teacher", "student", "loss", "weight"}, key,
                 "must be {teacher: LAYER, student: LAYER, loss: hint|attention, weight: W}", f)
        _require(f.get("loss", "hint") in FEATURE_LOSSES, f"{key}.loss",
                 f"unknown feature loss (available: {', '.join(FEATURE_LOSSES.names())})", f.get("loss"))
        _require(isinstance(f.get("weight", 1.0), (int, float)) and f.get("weight", 1.0) >= 0,
                 f"{key}.weight", "must be a number >= 0", f.get("weight"))
    for i, a in enumerate(s.assistants):
        key = f"distill.assistants[{i}]"
        name = a.get("model") if isinstance(a, dict) else a
        _require(isinstance(name, str) and name in MODELS, key,
                 f"unknown model (available: {', '.join(MODELS.names())})", a)
    p = cfg.prune
    _require(p.method in ("structured", "magnitude", "none"), "prune.method",
             "must be structured, magnitude or none", p.method)
    _require(0 <= p.ratio < 1, "prune.ratio", "must be in [0, 1)", p.ratio)
    _require(0 <= p.target_sparsity < 1, "prune.target_sparsity", "must be in [0, 1)", p.target_sparsity)
    _require(p.schedule in ("polynomial", "constant"), "prune.schedule", "must be polynomial or constant", p.schedule)
    _require(p.epochs >= 0, "prune.epochs", "must be >= 0", p.epochs)
    _require(p.learning_rate > 0, "prune.learning_rate", "must be > 0", p.learning_rate)
    q = cfg.quantize
    _require(q.representative_samples >= 1, "quantize.representative_samples", "must be >= 1",
             q.representative_samples)
    _require(0 <= q.min_agreement <= 1, "quantize.min_agreement", "must be in [0, 1]", q.min_agreement)
    _require(q.max_step_diff >= 0, "quantize.max_step_diff", "must be >= 0", q.max_step_diff)
    _require(q.qat_epochs >= 0, "quantize.qat_epochs", "must be >= 0", q.qat_epochs)
    _require(q.qat_learning_rate > 0, "quantize.qat_learning_rate", "must be > 0", q.qat_learning_rate)
    _require(cfg.export.arena_margin >= 0, "export.arena_margin", "must be >= 0", cfg.export.arena_margin)
    _require(cfg.export.golden_vectors >= 0, "export.golden_vectors", "must be >= 0", cfg.export.golden_vectors)
    for k in ("max_flash_bytes", "max_arena_bytes"):
        v = getattr(cfg.budgets, k)
        _require(v is None or v > 0, f"budgets.{k}", "must be > 0 or null", v)
    for k in ("min_int8_accuracy", "max_int8_drop"):
        v = getattr(cfg.budgets, k)
        _require(v is None or 0 <= v <= 1, f"budgets.{k}", "must be in [0, 1] or null", v)


# -- loading ----------------------------------------------------------------------------

_PATH_KEYS = ("data.path", "teacher.path", "data.tfds_data_dir")


def _get(d, dotted):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _resolve_paths(raw, base, only=None):
    for key in _PATH_KEYS:
        if only is not None and key not in only:
            continue
        head, _, leaf = key.rpartition(".")
        parent = _get(raw, head)
        if isinstance(parent, dict) and isinstance(parent.get(leaf), str):
            parent[leaf] = os.path.normpath(os.path.join(base, os.path.expanduser(parent[leaf])))


def apply_overrides(raw, overrides):
    """Applies ``KEY=VALUE`` strings (values parsed with ``yaml.safe_load``) to a dict.

    Raises:
      ConfigError: a malformed override or a key path that does not exist.
    """
    defaults = to_dict(PipelineConfig())
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE")
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = safe_load(text) if text.strip() else None
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
        if key in _PATH_KEYS and isinstance(value, str):
            _resolve_paths(raw, os.getcwd(), only=(key,))
    return raw


def load(path, overrides=()):
    """Loads and checks a pipeline YAML file.

    Args:
      path: the YAML file.
      overrides: ``KEY=VALUE`` strings (``--set``).

    Returns:
      A :class:`PipelineConfig`.

    Raises:
      ConfigError: a missing file, bad YAML, unknown key, wrong type or bad value.
    """
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    try:
        raw = safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where}: not valid YAML ({problem})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    raw.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    _resolve_paths(raw, os.path.dirname(os.path.abspath(path)))
    return from_dict(apply_overrides(raw, overrides))


def from_dict(raw):
    """Builds and checks a :class:`PipelineConfig` from plain data (paths already absolute)."""
    cfg = _build(PipelineConfig, raw, "")
    _check(cfg)
    return cfg
