"""What every ``tfkd`` command shares: a quiet terminal, Ctrl-C as one line, errors as one line."""

import contextlib
import functools
import logging
import os
import sys
import warnings

import click

__all__ = ["quiet", "interruptible", "first_line", "fail"]


@contextlib.contextmanager
def quiet(verbose):
    """Keeps TensorFlow's output off the terminal unless ``verbose``.

    Must be entered before TensorFlow is imported: ``TF_CPP_MIN_LOG_LEVEL`` is read once,
    and the lines TF writes before absl's logging is initialized (oneDNN, CUDA probes,
    CPU features) ignore it, and the converter prints to fd 2 directly. So file descriptor
    2 itself goes to /dev/null while the command runs; ``sys.stderr`` (click's error
    lines, Python's tracebacks) keeps the terminal. ``--verbose`` shows it all.
    """
    if verbose:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 2)
    os.close(fd)
    old_stderr = sys.stderr
    # Rebind sys.stderr to the terminal only if it was fd 2 (a test's capture stays put).
    if _fileno(old_stderr) == 2:
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8",
                               errors="replace")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if sys.stderr is not old_stderr:
            sys.stderr.close()
            sys.stderr = old_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _fileno(stream):
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def interruptible(command):
    """Ctrl-C at any moment (even while TensorFlow imports) ends with one line, exit 130."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("Interrupted", err=True)
            sys.exit(130)
    return wrapper


def first_line(error):
    """The first line of an exception's message ("" when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def fail(error, verbose, hint):
    """Ends a command that failed: ``Error: <Type>: <first line> (...)`` and exit 1, or
    the traceback with ``verbose``.

    Args:
      error: the exception.
      verbose: re-raise it instead.
      hint: appended after "the traceback" inside the parentheses (e.g. "; --resume ...").
    """
    if verbose:
        raise error
    msg = first_line(error) or type(error).__name__
    click.echo(f"Error: {type(error).__name__}: {msg} (run again with --verbose for the "
               f"traceback{hint})", err=True)
    sys.exit(1)
