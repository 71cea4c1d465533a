"""Writes test WAV files in several formats."""

import struct

import numpy as np


def write_wav(path, x, rate, fmt="pcm16"):
    """x: [n] or [n, channels] float in [-1, 1]."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    ch = x.shape[1]
    if fmt == "pcm16":
        data, tag, bits = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes(), 1, 16
    elif fmt == "pcm24":
        v = (np.clip(x, -1, 1) * (2 ** 23 - 1)).astype(np.int32).reshape(-1)
        data = b"".join(int(i & 0xFFFFFF).to_bytes(3, "little") for i in v)
        tag, bits = 1, 24
    elif fmt == "float32":
        data, tag, bits = x.astype("<f4").tobytes(), 3, 32
    else:
        raise ValueError(fmt)
    fmt_chunk = struct.pack("<HHIIHH", tag, ch, rate, rate * ch * bits // 8, ch * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + \
        b"data" + struct.pack("<I", len(data)) + data
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def tone(freq, seconds, rate, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)
