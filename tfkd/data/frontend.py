"""Audio features: TFLite Micro's microfrontend (the on-device default) or log-mel/MFCC.

The feature settings belong to the model: they are saved beside it
(``FeatureParams.to_dict``), written into the exported C header, and every path that
scores a model — training, evaluation, export checks — computes features with
:func:`compute` from the same :class:`FeatureParams`, so a model is never scored on
features it was not trained on.

On the device, ``microfrontend`` is the C library in
``tensorflow/lite/experimental/microfrontend/lib`` (micro_speech's classic feature
generator, the one TensorFlow's ``audio_microfrontend`` op wraps). Its uint16 output is
scaled here by 1/25.6 (``MICROFRONTEND_SCALE``), as micro_speech's training does; the
firmware maps a frontend value ``v`` to the model's int8 input as
``round(v * feature_scale / input_scale) + input_zero_point`` with the constants in the
exported header. Newer micro_speech builds its frontend from TFLM signal ops instead;
those are not what tfkd models expect.
"""

import dataclasses
import json

import numpy as np

from tfkd.lazy_tf import tf

__all__ = ["FeatureParams", "MICROFRONTEND_SCALE", "compute", "feature_shape"]

#: Float features = microfrontend uint16 output × this (micro_speech's 10/256).
MICROFRONTEND_SCALE = 10.0 / 256.0
KINDS = ("microfrontend", "logmel", "mfcc")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureParams:
    """Feature-extraction settings; saved with the model and exported to the header."""

    kind: str = "microfrontend"
    """``microfrontend`` (TFLM's on-device frontend), ``logmel`` or ``mfcc``."""
    sample_rate: int = 16000
    """Sample rate in Hz that clips are resampled to."""
    clip_ms: int = 1000
    """Clip length in milliseconds; clips are padded or cropped to it."""
    window_ms: int = 30
    """Analysis window length in milliseconds."""
    stride_ms: int = 20
    """Hop between windows in milliseconds."""
    num_channels: int = 40
    """Filterbank channels (mel bins); the feature width."""
    lower_band_hz: float = 125.0
    """Lowest filterbank frequency."""
    upper_band_hz: float = 7500.0
    """Highest filterbank frequency."""
    enable_pcan: bool = True
    """microfrontend: per-channel amplitude normalization (PCAN)."""
    noise_reduction: bool = True
    """microfrontend: spectral-subtraction noise reduction (default smoothing constants)."""
    num_mfcc: int = 13
    """mfcc: number of cepstral coefficients kept."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("sample_rate", "clip_ms", "window_ms", "stride_ms", "num_channels", "num_mfcc"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {getattr(self, name)!r}")
        if self.window_ms > self.clip_ms:
            raise ValueError(f"window_ms: must be <= clip_ms ({self.clip_ms}), got {self.window_ms}")
        if not 0 <= self.lower_band_hz < self.upper_band_hz <= self.sample_rate / 2:
            raise ValueError(f"upper_band_hz: need 0 <= lower_band_hz < upper_band_hz <= "
                             f"sample_rate/2, got {self.lower_band_hz}..{self.upper_band_hz}")

    @property
    def clip_samples(self):
        """Samples in one clip."""
        return self.sample_rate * self.clip_ms // 1000

    @property
    def window_samples(self):
        return self.sample_rate * self.window_ms // 1000

    @property
    def stride_samples(self):
        return self.sample_rate * self.stride_ms // 1000

    @property
    def num_frames(self):
        """Feature frames per clip."""
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def feature_scale(self):
        """Float feature per unit of the on-device frontend's output (microfrontend only)."""
        return MICROFRONTEND_SCALE if self.kind == "microfrontend" else 1.0

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))


def feature_shape(params):
    """The model input shape ``(frames, channels, 1)`` for these settings."""
    width = params.num_mfcc if params.kind == "mfcc" else params.num_channels
    return (params.num_frames, width, 1)


def _microfrontend(params):
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op as op

    extra = {} if params.noise_reduction else {"min_signal_remaining": 1.0}

    def fn(clip):
        pcm = tf.cast(tf.clip_by_value(tf.round(clip * 32768.0), -32768.0, 32767.0), tf.int16)
        feats = op.audio_microfrontend(
            pcm, sample_rate=params.sample_rate, window_size=params.window_ms,
            window_step=params.stride_ms, num_channels=params.num_channels,
            upper_band_limit=params.upper_band_hz, lower_band_limit=params.lower_band_hz,
            enable_pcan=params.enable_pcan, out_scale=1, out_type=tf.float32, **extra)
        return feats * MICROFRONTEND_SCALE
    return fn


def _spectral(params):
    def fn(clip):
        stft = tf.signal.stft(clip, params.window_samples, params.stride_samples,
                              fft_length=None, pad_end=False)
        power = tf.abs(stft) ** 2
        mel = tf.signal.linear_to_mel_weight_matrix(
            params.num_channels, power.shape[-1], params.sample_rate,
            params.lower_band_hz, params.upper_band_hz)
        logmel = tf.math.log(tf.tensordot(power, mel, 1) + 1e-6)
        if params.kind == "mfcc":
            return tf.signal.mfccs_from_log_mel_spectrograms(logmel)[..., :params.num_mfcc]
        return logmel
    return fn


def compute(clips, params, batch_size=256):
    """Features of float32 clips ``[N, clip_samples]`` → ``[N, frames, width, 1]``.

    Runs through ``tf.data`` (parallel map, batched); the single path that training,
    evaluation and export checks all use.
    """
    clips = np.asarray(clips, np.float32)
    if clips.ndim != 2 or clips.shape[1] != params.clip_samples:
        raise ValueError(f"features: expected clips of shape [N, {params.clip_samples}], "
                         f"got {clips.shape}")
    fn = _microfrontend(params) if params.kind == "microfrontend" else _spectral(params)
    ds = (tf.data.Dataset.from_tensor_slices(clips)
          .map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .batch(batch_size))
    out = np.zeros((len(clips),) + feature_shape(params), np.float32)
    i = 0
    for batch in ds:
        b = batch.numpy()
        out[i:i + len(b), ..., 0] = b
        i += len(b)
    return out
