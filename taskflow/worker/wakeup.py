"""How the workers of one `execute --jobs` pool learn at once that a sibling ended its run.

A worker with nothing left to claim while others run the last tasks waits in growing pauses
(worker/loop.py), checking the store after each: at the end of a run it would learn that the
last task finished only at its next check, 10 to 20 ms later, and the pool would wait for it.
The pool gives each worker the read end of a pipe and writes a byte to every worker's pipe when
one of them ends its run (its PipeReporter's "end" message): a waiting worker then checks the
store at once. Nothing else changes: a worker outside a pool, or one whose pool is gone, just
sleeps out its pauses.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable


class Wakeup:
    """What an idle worker waits on between its checks of the store; `fd`: its pool's pipe, or None."""

    def __init__(self, fd: int | None = None):
        self.fd = fd

    def pause(self, seconds: float) -> None:
        """Wait `seconds`, or until the pool says a sibling ended its run."""
        if self.fd is None:
            time.sleep(seconds)
            return
        import select  # here: only the workers of a pool wait on a pipe

        if select.select([self.fd], [], [], seconds)[0]:
            try:
                said = os.read(self.fd, 4096)  # all that was said so far: one check answers it all
            except OSError:
                said = b""
            if not said:  # the pool is gone: nothing will be said again
                self.fd = None


def wake(fds: Iterable[int]) -> None:
    """Tell every worker listening on `fds` (write ends, non-blocking) to check the store now."""
    for fd in fds:
        try:
            os.write(fd, b"!")
        except OSError:
            pass  # full (it will check anyway) or closed (that worker is gone)
