"""A task's inputs: the object this worker made, held for its last consumer, or the stored result."""
from __future__ import annotations

from typing import Any

from ..errors import CorruptResultError, StoreError
from ..executors import InputGone, InputUnreadable
from ..task import Task
from .refresh import Refresh

# Results this worker made, kept in memory for their only remaining consumer.
HANDOFF_BYTES = 1 << 30


class Handoff(Refresh):
    """Inputs of the tasks this worker runs; `Attempts._finish` fills `handoff`."""

    def _lookup(self, task: Task) -> Any:
        held = self.handoff.get(task.hash)
        if held is not None and self.uses.get(task.hash) == 1:
            # Its last consumer: hand over the object this worker made instead of
            # reading it back. Only the last one, so no task ever sees what
            # another task did to its input.
            del self.handoff[task.hash]
            self.handoff_bytes -= held[1]
            return held[0]
        try:
            result = self.store.load_value(task.hash)
        except FileNotFoundError:
            raise InputGone(task.hash) from None
        except StoreError as e:
            raise InputUnreadable(e) from None
        except CorruptResultError as e:
            try:
                # This client's cache may hold pages of a file another client replaced.
                return self.store.load_value(task.hash, fresh=True)
            except FileNotFoundError:
                raise InputGone(task.hash) from None
            except CorruptResultError:
                pass
            self._damaged(task.hash, str(e))
            raise InputGone(task.hash) from None
        return result

    def _consumed(self, task: Task) -> None:
        """`task` will not run again in this run: it no longer needs its inputs."""
        for d in task.deps:
            left = self.uses.get(d.hash, 0) - 1
            self.uses[d.hash] = left
            if left <= 0 and d.hash in self.handoff:
                self.handoff_bytes -= self.handoff.pop(d.hash)[1]
