"""Atomic file writes (temporary file + rename) and JSON helpers for run folders."""

import json
import os
import tempfile

__all__ = ["atomic_write", "write_json", "read_json", "new_file_mode"]


def _read_umask():
    # /proc gives the umask without changing it; elsewhere the set-and-restore below
    # runs once, at import, before TensorFlow starts threads that could create files.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def new_file_mode(path=None):
    """The mode a new regular file gets: 0666 less the umask (0644 under umask 022).

    If ``path`` exists, its current permission bits are kept instead, as an editor would.
    """
    if path is not None:
        try:
            return os.stat(path).st_mode & 0o7777
        except OSError:
            pass
    return 0o666 & ~_UMASK


def atomic_write(path, content):
    """Writes ``content`` (bytes or str) to ``path`` so that it appears whole or not at all.

    The file gets the mode any new file would get (``mkstemp`` alone makes it 0600, which
    a teammate or a firmware build in a container could not read).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = new_file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, obj):
    """Atomically writes ``obj`` as indented JSON."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path):
    """Reads a JSON file."""
    with open(path) as f:
        return json.load(f)
