"""Reading WAV files of any common format, resampling, and fitting clips to a length."""

import math
import struct

import numpy as np

__all__ = ["AudioError", "read_wav", "resample", "fit_length", "load_clip"]

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


class AudioError(ValueError):
    """A file that is not readable audio; the message names the file."""


def read_wav(path):
    """Reads a RIFF/WAVE file: PCM 8/16/24/32-bit or IEEE float 32/64-bit, any channels.

    Args:
      path: the file.

    Returns:
      ``(samples, sample_rate)``: float32 mono samples in [-1, 1] (channels averaged).

    Raises:
      AudioError: the file is missing, empty, not a WAV file or in an unsupported format.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise AudioError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt = None
    pos = 12
    payload = None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise AudioError(f"{path}: truncated fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            payload = body
            break
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise AudioError(f"{path}: no fmt or data chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate <= 0:
        raise AudioError(f"{path}: bad header ({channels} channels, {rate} Hz)")
    width = bits // 8
    usable = len(payload) - len(payload) % (width * channels) if width else 0
    if usable == 0:
        raise AudioError(f"{path}: no audio samples")
    payload = payload[:usable]
    if tag == _PCM and bits == 8:
        x = (np.frombuffer(payload, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == _PCM and bits == 16:
        x = np.frombuffer(payload, "<i2").astype(np.float32) / 32768.0
    elif tag == _PCM and bits == 24:
        b = np.frombuffer(payload, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif tag == _PCM and bits == 32:
        x = np.frombuffer(payload, "<i4").astype(np.float32) / float(1 << 31)
    elif tag == _FLOAT and bits in (32, 64):
        x = np.frombuffer(payload, "<f4" if bits == 32 else "<f8").astype(np.float32)
    else:
        raise AudioError(f"{path}: unsupported WAV format (tag {tag}, {bits} bits)")
    x = x.reshape(-1, channels).mean(axis=1)
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: samples are not finite")
    return np.clip(x, -1.0, 1.0).astype(np.float32), int(rate)


def resample(x, rate_in, rate_out):
    """Band-limited polyphase resampling (scipy's ``resample_poly``)."""
    if rate_in == rate_out:
        return x
    from scipy.signal import resample_poly  # imported here: only needed for odd rates

    g = math.gcd(int(rate_in), int(rate_out))
    return resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def fit_length(x, n):
    """Zero-pads at the end or crops the centre so that ``len(x) == n``."""
    if len(x) == n:
        return x
    if len(x) < n:
        return np.pad(x, (0, n - len(x)))
    start = (len(x) - n) // 2
    return x[start:start + n]


def load_clip(path, sample_rate=16000, clip_samples=16000):
    """Reads a WAV file as a mono float32 clip at ``sample_rate`` of ``clip_samples``."""
    x, rate = read_wav(path)
    return fit_length(resample(x, rate, sample_rate), clip_samples)
