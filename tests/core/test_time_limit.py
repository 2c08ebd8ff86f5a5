"""The one time limit (symdl.core.time_limit): it stops the work, and an interrupt that arrives where
Python would drop the exception (a finalizer, a weakref callback, a generator being closed)
waits for the next one instead of being printed and lost."""

import gc
import signal
import sys
import time
import weakref

import pytest

from symdl.core.time_limit import time_limit


class Stop(BaseException):
    pass


def _busy(seconds):  # of CPU time, which the limit counts
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.fixture
def unraisable(monkeypatch):
    """What Python printed and dropped during the test."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_type))
    return seen


def _spin_until_stopped():
    end = time.process_time() + 5
    while time.process_time() < end:
        pass
    raise AssertionError("the time limit did not stop the block")


def test_the_block_is_stopped_and_the_timer_cancelled():
    with pytest.raises(Stop):
        with time_limit(0.02, Stop):
            _spin_until_stopped()
    assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)
    assert gc.isenabled()


def test_a_block_that_ends_in_time_is_not_stopped():
    with time_limit(1.0, Stop):
        value = sum(range(1000))
    assert value == 499500
    _busy(0.05)  # no interrupt comes later
    assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)


def test_an_interrupt_inside_a_finalizer_is_not_dropped(unraisable):
    class SlowToDie:
        def __del__(self):
            _busy(0.2)  # the limit passes in here

    with pytest.raises(Stop):
        with time_limit(0.02, Stop):
            dying = SlowToDie()
            del dying
            _spin_until_stopped()
    assert unraisable == []


def test_an_interrupt_inside_a_weakref_callback_is_not_dropped(unraisable):
    class Target:
        pass

    with pytest.raises(Stop):
        with time_limit(0.02, Stop):
            target = Target()
            weakref.finalize(target, _busy, 0.2)
            del target
            _spin_until_stopped()
    assert unraisable == []


def test_an_interrupt_inside_a_closing_generator_is_not_dropped(unraisable):
    def counting():
        try:
            yield 1
            yield 2
        finally:
            _busy(0.2)  # runs when the generator is closed unfinished

    with pytest.raises(Stop):
        with time_limit(0.02, Stop):
            numbers = counting()
            next(numbers)
            del numbers
            _spin_until_stopped()
    assert unraisable == []


def test_an_outer_limit_gets_back_what_is_left_of_it():
    with pytest.raises(Stop):
        with time_limit(0.3, Stop):
            with time_limit(1.0, ValueError):
                pass
            assert 0 < signal.getitimer(signal.ITIMER_VIRTUAL)[0] < 0.5  # not the inner 1 s
            _spin_until_stopped()


def test_the_limit_counts_cpu_time_not_the_clock():
    with time_limit(0.1, Stop):
        time.sleep(0.3)  # waiting uses no CPU: a busy machine does not change a verdict


def test_the_users_own_alarm_is_left_alone():
    rung = []
    previous = signal.signal(signal.SIGALRM, lambda *_: rung.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Stop):
            with time_limit(0.02, Stop):
                _spin_until_stopped()
        _busy(0.01)
        time.sleep(0.1)
        assert rung == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
