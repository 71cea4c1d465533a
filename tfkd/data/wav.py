"""Reading WAV files of any common format, resampling, and fitting clips to a length."""

import fractions
import os
import struct

import numpy as np

from tfkd import limits, safefile

__all__ = ["AudioError", "read_wav", "resample", "fit_length", "load_clip"]

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


class AudioError(ValueError):
    """A file that is not readable audio; the message names the file."""


def _header(f, size, path, max_seconds):
    """Walks the RIFF chunks by seeking; returns ``(tag, channels, rate, bits, offset, n)``.

    Only chunk headers and the small ``fmt`` chunk are read here; every declared size is
    checked against the file size and the limits before the audio itself is read.
    """
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt = None
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        cid, csize = struct.unpack("<4sI", f.read(8))
        avail = size - pos - 8
        if cid == b"fmt ":
            if csize < 16 or avail < 16:
                raise AudioError(f"{path}: truncated fmt chunk")
            body = f.read(min(csize, 40))
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = _check_format(path, tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioError(f"{path}: no fmt chunk before the data chunk")
            # Streaming writers leave 0 or 0xFFFFFFFF when they cannot seek back: read to the end.
            n = avail if csize in (0, 0xFFFFFFFF) else csize
            if n > avail:
                raise AudioError(f"{path}: truncated (the header declares {n} bytes of audio, "
                                 f"the file holds {avail})")
            tag, channels, rate, bits = fmt
            seconds = n // (channels * bits // 8) / rate
            if seconds > max_seconds:
                raise AudioError(f"{path}: {seconds:.0f} s of audio, more than the "
                                 f"{max_seconds} s limit")
            if n > limits.MAX_WAV_DATA_BYTES:
                raise AudioError(f"{path}: {n} bytes of audio, more than the "
                                 f"{limits.MAX_WAV_DATA_BYTES} byte limit")
            return (*fmt, pos + 8, n)
        pos += 8 + csize + (csize & 1)
    raise AudioError(f"{path}: no fmt or data chunk")


def _check_format(path, tag, channels, rate, bits):
    if not 1 <= channels <= limits.MAX_WAV_CHANNELS:
        raise AudioError(f"{path}: bad header ({channels} channels; 1 to "
                         f"{limits.MAX_WAV_CHANNELS} are read)")
    if not limits.MIN_WAV_RATE <= rate <= limits.MAX_WAV_RATE:
        raise AudioError(f"{path}: bad header (sample rate {rate} Hz; {limits.MIN_WAV_RATE} to "
                         f"{limits.MAX_WAV_RATE} Hz are read)")
    if not (tag == _PCM and bits in (8, 16, 24, 32) or tag == _FLOAT and bits in (32, 64)):
        raise AudioError(f"{path}: unsupported WAV format (tag {tag}, {bits} bits)")
    return tag, channels, rate, bits


def read_wav(path, *, max_seconds=limits.MAX_CLIP_SECONDS):
    """Reads a RIFF/WAVE file: PCM 8/16/24/32-bit or IEEE float 32/64-bit, any channels.

    The file may come from anyone: only regular files are opened (never a FIFO or a
    device), and the header is checked against the bounds in :mod:`tfkd.limits` (sample
    rate, channels, duration, and the declared audio length against the file size)
    before any audio is read.

    Args:
      path: the file.
      max_seconds: the longest audio accepted (``limits.MAX_CLIP_SECONDS``; background
        noise uses ``limits.MAX_NOISE_SECONDS``).

    Returns:
      ``(samples, sample_rate)``: float32 mono samples in [-1, 1] (channels averaged).

    Raises:
      AudioError: the file is missing, empty, not a regular file, not a WAV file, truncated,
        beyond a bound or in an unsupported format.
    """
    try:
        with safefile.open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            tag, channels, rate, bits, offset, n = _header(f, size, path, max_seconds)
            f.seek(offset)
            payload = f.read(n)
    except OSError as e:
        raise AudioError(f"{path}: cannot read ({e.strerror or e})") from None
    width = bits // 8
    usable = len(payload) - len(payload) % (width * channels)
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
    else:
        x = np.frombuffer(payload, "<f4" if bits == 32 else "<f8").astype(np.float32)
    x = x.reshape(-1, channels).mean(axis=1)
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: samples are not finite")
    return np.clip(x, -1.0, 1.0).astype(np.float32), int(rate)


def resample(x, rate_in, rate_out):
    """Band-limited polyphase resampling (scipy's ``resample_poly``)."""
    if rate_in == rate_out:
        return x
    from scipy.signal import resample_poly  # imported here: only needed for odd rates

    # An odd rate such as 383999 Hz would need a 16000/383999 polyphase filter of 7.7M taps
    # (a second per clip); the nearest ratio with a denominator <= 4000 is within 125 ppm
    # of it (0.2 cent of pitch), and every common rate's ratio is exact.
    ratio = fractions.Fraction(int(rate_out), int(rate_in)).limit_denominator(4000)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


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
