"""SIGINT and SIGTERM while a worker runs: raised at safe points only."""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so that `finally` releases the claim."""


class Signals:
    """SIGINT and SIGTERM in the main thread while a worker runs.

    They raise KeyboardInterrupt or Terminated at once while a task runs or the
    worker sleeps; anywhere else they wait for the next pass of the loop. Raised
    while a claim is being taken or given back, they would leave a lock file
    nobody releases, which workers on other hosts respect for a whole lease;
    and Ctrl-C under --jobs often arrives twice (from the terminal and from
    the parent), the second while the first is being handled.
    """

    def __init__(self) -> None:
        self.interruptible = False
        self.pending: int | None = None

    def install(self) -> Callable[[], None]:
        """Take over the signals; returns the undo."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(signum)
            if signum == signal.SIGINT and current is not signal.default_int_handler:
                continue  # ignored (a background job) or someone else's: leave it so
            previous[signum] = signal.signal(signum, self._on_signal)

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        return restore

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.interruptible:
            raise _exception_for(signum)
        if self.pending is None:
            self.pending = signum

    def allow(self) -> None:
        """Let signals raise from now on (until `interruptible` is reset), starting with a held one."""
        self.interruptible = True
        self.deliver()

    def deliver(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise _exception_for(signum)


def _exception_for(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()
