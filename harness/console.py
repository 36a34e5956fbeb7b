"""A quiet terminal for the main jobs: our own phase bars and summary on the terminal, everything
other libraries print (progress bars, warnings, log records) in a log file of the run.

``with quiet(log_file):`` points ``sys.stderr``, Python warnings and every logging handler that
writes to the terminal at the log file; our bars write to ``terminal()``, the real stderr. With
``verbose=True`` nothing is redirected. Output written straight to file descriptor 2 by C/C++
code is not Python's and is left alone.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import traceback
import warnings
from pathlib import Path

_terminal: list = []  # stack of real stderr streams while quiet() is active


def terminal():
    """Where our own progress bars go: the real stderr, also while quiet() redirects sys.stderr."""
    return _terminal[-1] if _terminal else sys.stderr


def _handlers():
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            and not isinstance(getattr(type(h), "stream", None), property)]  # e.g. lastResort follows sys.stderr


@contextlib.contextmanager
def quiet(log_file: str | Path, verbose: bool = False):
    """Send other libraries' console output to ``log_file`` (appended) for the duration."""
    if verbose:
        yield None
        return
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "a", buffering=1, encoding="utf-8", errors="replace")
    real = sys.stderr
    terminal_streams = {id(real), id(sys.__stderr__), id(sys.__stdout__), id(sys.stdout)}
    moved = [(h, h.stream) for h in _handlers() if id(h.stream) in terminal_streams]
    for h, _ in moved:
        h.setStream(log)
    # Records of loggers without handlers go to logging.lastResort, which writes to sys.stderr: the file.
    old_showwarning = warnings.showwarning
    warnings.showwarning = lambda msg, cat, fn, ln, file=None, line=None: log.write(
        warnings.formatwarning(msg, cat, fn, ln, line))
    _terminal.append(real)
    sys.stderr = log
    try:
        yield path
    except BaseException:
        log.write(traceback.format_exc())
        raise
    finally:
        sys.stderr = real
        _terminal.pop()
        warnings.showwarning = old_showwarning
        for h, stream in moved:
            h.setStream(stream)
        for h in _handlers():  # handlers created while quiet captured the log file as their stream
            if h.stream is log:
                h.setStream(real)
        log.close()
