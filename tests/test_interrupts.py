"""SIGINT / SIGTERM as Interrupted: at once outside a critical section, at its end inside one
(real signals, raised in this process; a real MLflow store: tests/results/test_tracking.py)."""

import signal
import threading

import pytest

from pets_core.interrupts import Interrupted, deferred, interrupts_as_exceptions


def test_outside_a_section_a_signal_interrupts_at_once_and_a_second_is_ignored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    done = []
    with interrupts_as_exceptions():
        try:
            signal.raise_signal(signal.SIGTERM)
            done.append("after the signal")
        except Interrupted as stop:
            assert (stop.signum, stop.signal_name) == (signal.SIGTERM, "SIGTERM")
            signal.raise_signal(signal.SIGINT)  # during cleanup: ignored
            with deferred():  # the cleanup's own MLflow calls raise nothing either
                signal.raise_signal(signal.SIGTERM)
            done.append("cleanup")
    assert done == ["cleanup"]
    assert {s: signal.getsignal(s) for s in before} == before


def test_inside_nested_sections_the_signal_is_raised_when_the_outermost_ends():
    done = []
    with interrupts_as_exceptions(), pytest.raises(Interrupted) as stop:
        with deferred():
            with deferred():
                signal.raise_signal(signal.SIGINT)
                done.append("inner")
            done.append("outer")
        done.append("after the sections")
    assert done == ["inner", "outer"] and stop.value.signum == signal.SIGINT
    with interrupts_as_exceptions():  # nothing left pending for the next block
        with deferred():
            done.append("next block")
    assert done[-1] == "next block"


def test_a_section_in_another_thread_does_not_hold_back_the_main_thread():
    entered, leave = threading.Event(), threading.Event()

    def worker():
        with deferred():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=worker)
    with interrupts_as_exceptions():
        thread.start()
        entered.wait(10)
        try:
            with pytest.raises(Interrupted):
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)  # not reached
        finally:
            leave.set()
            thread.join()


def test_without_the_handler_a_section_changes_nothing():
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler here")
    with pytest.raises(KeyboardInterrupt), deferred():
        signal.raise_signal(signal.SIGINT)


def test_a_signal_the_parent_ignores_stays_ignored():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as under nohup
    try:
        with interrupts_as_exceptions():
            signal.raise_signal(signal.SIGTERM)
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
