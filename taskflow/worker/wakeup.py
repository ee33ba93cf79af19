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

import math
import os
import time
from collections.abc import Iterable
from typing import Any


class Wakeup:
    """What an idle worker waits on between its checks of the store; `fd`: its pool's pipe, or None."""

    def __init__(self, fd: int | None = None):
        self.fd = fd
        self._poll: Any = None

    def pause(self, seconds: float) -> None:
        """Wait `seconds`, or until the pool says a sibling ended its run."""
        if self.fd is None:
            time.sleep(seconds)
            return
        if self._poll is None:
            import select  # here: only the workers of a pool wait on a pipe

            # poll, not select: a pool of hundreds of workers hands out descriptors above 1023.
            self._poll = select.poll()
            self._poll.register(self.fd, select.POLLIN)
        if self._poll.poll(math.ceil(seconds * 1000)):
            try:
                said = os.read(self.fd, 4096)  # all that was said so far: one check answers it all
            except OSError:
                said = b""
            if not said:  # the pool is gone: nothing will be said again
                self.fd = self._poll = None


def pipe() -> tuple[int | None, int | None]:
    """(read end, write end) of a new wake pipe, the write end non-blocking so that the pool never
    waits on a worker that does not listen; (None, None) where no more descriptors can be had: that
    worker then sleeps out its pauses, as before wake pipes."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None, None
    os.set_blocking(write_end, False)
    return read_end, write_end


def wake(fds: Iterable[int]) -> None:
    """Tell every worker listening on `fds` (write ends, non-blocking) to check the store now."""
    for fd in fds:
        try:
            os.write(fd, b"!")
        except OSError:
            pass  # full (it will check anyway) or closed (that worker is gone)
