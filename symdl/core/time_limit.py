"""One time limit for work that SymPy cannot bound itself (solving a kink condition, proving a
difference zero, building a parsed formula): a timer of the process's CPU time that raises an
exception in the main thread, and that never raises where Python would drop the exception
instead of stopping the work (a finalizer, a weakref callback, a generator being closed).

CPU time, not the clock: a verdict or a parse does not change with how busy the machine is,
and the timer (ITIMER_VIRTUAL, SIGVTALRM) leaves SIGALRM to the user's own code."""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

REPEAT = 0.05  # CPU seconds between the interrupts once the limit has passed, until cancelled

_MAX_DEPTH = 400  # frames looked at to tell whether an exception would be dropped


@contextmanager
def time_limit(seconds: float, error: Callable[[], BaseException]):
    """Raise `error()` inside the block once it has used `seconds` of the process's CPU time.

    Works in the main thread of a POSIX process; elsewhere the block runs unbounded (the
    callers bound their work by size too). An outer limit already running is given back what
    is left of it on leaving. The interrupt repeats every REPEAT seconds until the block ends:
    one that arrives where the exception would be dropped (a finalizer, a weakref callback, a
    generator being closed, Python's unraisable hook) is skipped and the next one stops the
    work. The garbage collector is paused inside the block, so no cyclic finalizer runs there.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "ITIMER_VIRTUAL"
    ):
        yield
        return

    def interrupt(signum, frame):
        if not _would_be_dropped(frame):
            raise error()

    previous = signal.signal(signal.SIGVTALRM, interrupt)
    start = time.process_time()
    remaining, interval = signal.setitimer(signal.ITIMER_VIRTUAL, seconds, REPEAT)
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        finally:
            signal.signal(signal.SIGVTALRM, previous)
            if collecting:
                gc.enable()
            if remaining:  # an outer limit was running: give it back what is left of it
                left = max(remaining - (time.process_time() - start), 1e-3)
                signal.setitimer(signal.ITIMER_VIRTUAL, left, interval)


def _would_be_dropped(frame) -> bool:
    """Whether an exception raised in `frame` would be printed and dropped by Python rather
    than propagate: the frame runs inside a finalizer, a weakref or gc callback, the
    unraisable hook, or a generator's clean-up on GeneratorExit."""
    handled = sys.exc_info()[1]
    if isinstance(handled, GeneratorExit):
        return True
    depth = 0
    while frame is not None and depth < _MAX_DEPTH:
        code = frame.f_code
        if code.co_name in ("__del__", "unraisablehook", "unraisable_hook"):
            return True
        if code.co_filename.endswith(("weakref.py", "_weakrefset.py")) and code.co_name in (
            "remove",
            "_remove",
            "__call__",
            "_exitfunc",
        ):
            return True
        frame = frame.f_back
        depth += 1
    return False
