"""Opening files that tfkd did not write: regular files only, and reads of bounded size.

A data folder or run folder may come from anyone. A FIFO named ``x.wav`` blocks
``open()`` forever, a link to ``/dev/zero`` never ends, and a device may act when it is
opened. So the kind of file is checked with ``os.stat`` before it is opened, and again
on the open descriptor (the name may have been swapped in between); the open itself is
non-blocking, so that even a FIFO swapped in at that moment cannot hang the reader.
"""

import os
import stat

__all__ = ["open_regular", "read_regular", "file_kind"]

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode):
    """A name for the kind of file ``mode`` (from ``os.stat``) describes."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _refuse(path, mode):
    # An OSError with a strerror, so that callers' "cannot read (<strerror>)" reads well.
    return OSError(0, f"not a regular file but {file_kind(mode)}", str(path))


def open_regular(path):
    """Opens a regular file for binary reading; anything else is refused without blocking.

    Symbolic links are followed, so a link to a device is refused as a device, and a
    loop of links fails with the system's own error.

    Args:
      path: the file.

    Returns:
      A binary file object positioned at the start.

    Raises:
      OSError: missing, unreadable, or not a regular file (``strerror`` says which).
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st.st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, max_bytes):
    """Reads a whole regular file of at most ``max_bytes`` bytes.

    Raises:
      OSError: as :func:`open_regular`, or the file is larger than ``max_bytes``.
    """
    with open_regular(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(0, f"larger than the {max_bytes} byte limit", str(path))
    return data
