"""The pipeline schema: frozen dataclasses per stage, loaded from YAML with overrides.

``load(path, overrides)`` reads YAML with a bounded safe loader (no tags that run code),
applies ``KEY=VALUE`` overrides (values read the same way) and builds the
dataclasses. Each field's rule lives with its field (the ``__post_init__`` of its class),
and the first problem is reported with its full key path, e.g.
``distill.temperature: must be > 0, got -1``. What needs models built (model parameters,
feature taps, pruned layer names) is checked by :func:`tfkd.pipeline.checks.dry_build`.
Relative paths in the YAML file are relative to that file; paths given as overrides are
relative to the current directory.
"""

import dataclasses
import os
import typing

from tfkd.data.augment import AugmentParams
from tfkd.data.frontend import FeatureParams
from tfkd.data.online import MixupParams
from tfkd.data.speech import label_folders
from tfkd.distill.features import FeaturePair
from tfkd.distribute import STRATEGIES
from tfkd import limits, schema, yamlio
from tfkd.schema import (ConfigError, build, require, require_positive, require_rate,
                         resolve_paths, to_dict)
# Bounded loading for config files and --set values: size, UTF-8, nesting, alias
# expansion, duplicate keys (see SECURITY.md).
from tfkd.yamlio import loads as safe_load

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "TeacherConfig", "DistillConfig",
           "PruneConfig", "QuantizeConfig", "ExportConfig", "BudgetConfig", "PipelineConfig",
           "load", "from_dict", "to_dict", "apply_overrides"]


def _model_name(name, field="model"):
    from tfkd.models import MODELS

    require(name in MODELS, field, f"unknown model (available: {', '.join(MODELS.names())})", name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the clips come from and how they are split."""

    path: typing.Optional[str] = None
    """Local Speech-Commands-layout or ``<label>/*.wav`` folder; null reads TFDS."""
    labels: typing.Optional[tuple[str, ...]] = None
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

    def __post_init__(self):
        if self.path is not None:
            require(os.path.isdir(self.path), "path", "folder does not exist", self.path)
            require(bool(label_folders(self.path)), "path",
                    "folder has no <label>/*.wav sub-folders", self.path)
        if self.labels is not None:
            require(len(self.labels) >= 2 and all(self.labels), "labels",
                    "must be a list of at least 2 names or null", list(self.labels))
        for k in ("validation_pct", "testing_pct"):
            require(0 <= getattr(self, k) < 100, k, "must be in [0, 100)", getattr(self, k))
        for k in ("unknown_share", "silence_share"):
            require(getattr(self, k) >= 0, k, "must be >= 0", getattr(self, k))
        if self.path is not None:
            # What the data stage will index, without reading audio: labels that are not in
            # the data, empty label folders, duplicate labels, an empty split.
            from tfkd.data.speech import SPLITS, scan

            index = scan(self.path, self.labels, validation_pct=self.validation_pct,
                         testing_pct=self.testing_pct, unknown_share=self.unknown_share,
                         silence_share=self.silence_share)
            for split in SPLITS:
                require(bool(index.split(split)), "path", f"the {split} split would be empty",
                        self.path)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A zoo model."""

    model: str = "ds_cnn"
    """Registered model name (``tfkd.models.MODELS``)."""
    params: dict = dataclasses.field(default_factory=dict)
    """Keyword arguments of the builder (e.g. ``{size: s}``)."""

    def __post_init__(self):
        _model_name(self.model)


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
    mode: str = "cached"
    """``cached``: train on the data stage's K fixed views per clip; ``consistent``: on
    views augmented afresh every epoch (``data.augment``'s shift, noise and SpecAugment,
    no mixup), read from the clip files (needs ``data.path``)."""
    ensemble: int = 1
    """Teachers trained with seeds seed, seed+1, ...; the teacher is the mean of their
    logits (each one's accuracy is in ``metrics.json`` under ``teacher.ensemble``)."""

    def __post_init__(self):
        if self.path is None:
            _model_name(self.model)
        else:
            require(os.path.isfile(self.path), "path", "file does not exist", self.path)
            from tfkd._keras import check_user_model_file  # .keras only; no code in the file

            check_user_model_file(self.path, "path")
        require_positive(self, "epochs", "batch_size", "ensemble")
        require_rate(self, "learning_rate")
        require(self.mode in ("cached", "consistent"), "mode", "must be cached or consistent",
                self.mode)
        require(self.path is None or self.ensemble == 1, "ensemble",
                "must be 1 with teacher.path (an ensemble is trained, not loaded)", self.ensemble)


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
    features: tuple[FeaturePair, ...] = ()
    """Feature pairs: ``[{teacher: LAYER, student: LAYER, loss: hint|attention, weight: W}]``."""
    generations: int = 1
    """Born-again generations; > 1 lets each generation teach the next."""
    assistants: tuple[ModelConfig, ...] = ()
    """Teacher-assistant chain: zoo models (``{model, params}``) distilled in turn."""
    mode: str = "cached"
    """``cached``: the teacher's logits are cached per fixed view (K views from the data
    stage); ``consistent``: function matching (Beyer et al. 2022): views augmented afresh
    every epoch from the clip files (needs ``data.path``), the live teacher labelling the
    student's exact batch. Pruning and QAT fine-tuning stay cached."""
    mixup: MixupParams = dataclasses.field(default_factory=MixupParams)
    """Mixup of two clips (``{prob, alpha}``; consistent mode): mixed clips teach through
    the soft targets only (hard label -1)."""
    transfer: typing.Optional[str] = None
    """A folder of unlabelled WAV clips (searched recursively) added to every epoch for
    the soft-target loss only (consistent mode)."""
    other_words: bool = False
    """Add the training-split clips of words outside ``data.labels`` (not already drawn
    as ``_unknown_``) as unlabelled transfer clips (consistent mode)."""

    def __post_init__(self):
        from tfkd.distill.losses import LOSSES, get_loss

        require_positive(self, "epochs", "batch_size", "generations")
        require_rate(self, "learning_rate")
        require_rate(self, "temperature")
        require(0 <= self.alpha <= 1, "alpha", "must be in [0, 1]", self.alpha)
        require(self.loss in LOSSES, "loss", f"unknown loss (available: {', '.join(LOSSES.names())})",
                self.loss)
        try:  # the loss checks its own parameters
            get_loss(dict(self.loss_params, name=self.loss))
        except (TypeError, ValueError) as e:
            raise ValueError(f"loss_params: {e}") from None
        require(self.mode in ("cached", "consistent"), "mode", "must be cached or consistent",
                self.mode)
        soft_only = {"mixup": self.mixup.prob, "transfer": self.transfer,
                     "other_words": self.other_words}
        for key, value in soft_only.items():
            if value:
                require(self.mode == "consistent", key,
                        "needs distill.mode: consistent (the teacher must label new inputs)", value)
                # DKD splits the loss at the true class, which unlabelled clips lack.
                require(self.loss != "dkd", key,
                        "cannot be used with loss dkd (it needs a label for every clip)", value)
        if self.transfer is not None:
            require(os.path.isdir(self.transfer), "transfer", "folder does not exist",
                    self.transfer)


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
    exclude: tuple[str, ...] = ()
    """Layer names left unpruned."""
    epochs: int = 10
    """Fine-tuning epochs; the distillation loss is on, with distill's temperature, alpha,
    loss, loss_params, features and cache (labels alone without a teacher)."""
    learning_rate: float = 0.001
    """Peak fine-tuning learning rate."""
    batch_size: typing.Optional[int] = None
    """Fine-tuning batch size; null: ``distill.batch_size``."""

    def __post_init__(self):
        require(self.method in ("structured", "magnitude", "none"), "method",
                "must be structured, magnitude or none", self.method)
        require(0 <= self.ratio < 1, "ratio", "must be in [0, 1)", self.ratio)
        require(0 <= self.target_sparsity < 1, "target_sparsity", "must be in [0, 1)",
                self.target_sparsity)
        require(self.schedule in ("polynomial", "constant"), "schedule",
                "must be polynomial or constant", self.schedule)
        require(self.epochs >= (1 if self.method == "magnitude" else 0), "epochs",
                "must be >= 0 (>= 1 for magnitude pruning, which prunes while it fine-tunes)",
                self.epochs)
        require_rate(self, "learning_rate")
        require(self.batch_size is None or self.batch_size >= 1, "batch_size",
                "must be >= 1 or null", self.batch_size)


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
    """Quantization-aware fine-tuning epochs (0: post-training only); the distillation loss
    is on, with distill's temperature, alpha, loss, loss_params, features and cache. After
    magnitude pruning the prune-preserving scheme keeps the zeros."""
    qat_learning_rate: float = 0.0005
    """Peak learning rate of the quantization-aware fine-tuning."""
    qat_batch_size: typing.Optional[int] = None
    """Batch size of the quantization-aware fine-tuning; null: ``distill.batch_size``."""

    def __post_init__(self):
        require_positive(self, "representative_samples")
        require(0 <= self.min_agreement <= 1, "min_agreement", "must be in [0, 1]", self.min_agreement)
        require(self.max_step_diff >= 0, "max_step_diff", "must be >= 0", self.max_step_diff)
        require(self.qat_epochs >= 0, "qat_epochs", "must be >= 0", self.qat_epochs)
        require_rate(self, "qat_learning_rate")
        require(self.qat_batch_size is None or self.qat_batch_size >= 1, "qat_batch_size",
                "must be >= 1 or null", self.qat_batch_size)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """Firmware files."""

    name: typing.Optional[str] = None
    """Model name for files and C identifiers (default: the pipeline's name)."""
    arena_margin: float = 0.25
    """Fraction added to the host-measured arena for the target (pointers, CMSIS-NN)."""
    golden_vectors: int = 4
    """Test clips written as int8 input/output vectors for an on-device check."""

    def __post_init__(self):
        require(self.arena_margin >= 0, "arena_margin", "must be >= 0", self.arena_margin)
        require(self.golden_vectors >= 0, "golden_vectors", "must be >= 0", self.golden_vectors)


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

    def __post_init__(self):
        for k in ("max_flash_bytes", "max_arena_bytes"):
            v = getattr(self, k)
            require(v is None or v > 0, k, "must be > 0 or null", v)
        for k in ("min_int8_accuracy", "max_int8_drop"):
            v = getattr(self, k)
            require(v is None or 0 <= v <= 1, k, "must be in [0, 1] or null", v)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistributeConfig:
    """How training spreads over devices and machines (see ``tfkd.distribute``)."""

    strategy: str = "auto"
    """``auto``, ``none``, ``mirrored``, ``multi_worker`` or ``tpu``. ``auto`` picks
    multi_worker when ``TF_CONFIG`` is set, tpu when one is attached, mirrored with more
    than one GPU, and none otherwise. Every ``batch_size`` is the global batch."""
    tpu: typing.Optional[str] = None
    """The TPU's name or ``grpc://`` address for ``tpu`` (null: found from the environment)."""

    def __post_init__(self):
        require(self.strategy in STRATEGIES, "strategy", f"must be one of {', '.join(STRATEGIES)}",
                self.strategy)


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
    distribute: DistributeConfig = dataclasses.field(default_factory=DistributeConfig)
    """Training strategy: an execution setting, so not part of any stage's resume key."""
    search: typing.Optional[dict] = None
    """``tfkd search`` budget and space (checked by ``tfkd.search.space``, see
    docs/search.md); ``tfkd run`` ignores it, and no stage's resume key includes it."""

    def __post_init__(self):
        if not self.name or self.name in (".", "..") or any(c in self.name for c in "/\\\0"):
            raise ConfigError(f"name: must be a plain name (no / or \\, not . or ..), "
                              f"got {self.name!r}")
        try:  # the documented upper bounds (tfkd/limits.py, SECURITY.md)
            limits.check_finite(self)
            limits.check_features(self.features)
            limits.check_training(self)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        # Consistent modes re-read the clip files every epoch; TFDS clips are no files.
        for key, section in (("distill.mode", self.distill), ("teacher.mode", self.teacher)):
            if section is not None and section.mode == "consistent" and self.data.path is None:
                raise ConfigError(f"{key}: consistent reads the clip files every epoch: it needs "
                                 "data.path (a folder); the TFDS source is not supported")


# -- loading ----------------------------------------------------------------------------

_PATH_KEYS = ("data.path", "teacher.path", "data.tfds_data_dir", "distill.transfer")


def apply_overrides(raw, overrides):
    """Applies ``KEY=VALUE`` strings (values read as YAML) to a dict (see
    :func:`tfkd.schema.apply_overrides`); a path value is relative to the working directory.

    Raises:
      ConfigError: a malformed override or a key path that does not exist.
    """
    return schema.apply_overrides(raw, overrides, to_dict(PipelineConfig()), safe_load, _PATH_KEYS)


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
        raw = yamlio.load_file(path)
    except yamlio.YamlError as e:
        raise ConfigError(str(e)) from None
    if raw is None:  # an empty file would silently mean "download Speech Commands from TFDS"
        raise ConfigError(f"{path}: the config is empty; give at least data.path (a folder), "
                          "or data.path: null to download Speech Commands from TFDS (2.4 GB)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    raw.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    resolve_paths(raw, os.path.dirname(os.path.abspath(path)), _PATH_KEYS)
    return from_dict(apply_overrides(raw, overrides))


def from_dict(raw):
    """Builds and checks a :class:`PipelineConfig` from plain data (paths already absolute)."""
    return build(PipelineConfig, raw)
