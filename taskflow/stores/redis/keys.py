"""The keys of a Redis store, all under its prefix (`?prefix=NAME`, default `taskflow`).

    P:store                   format marker (JSON), written once
    P:r:<hash>                result of task <hash>: a hash of chunks (see results.py)
    P:tmp:<hash>:<writer>     a large result being written; expires unless made visible
    P:finished                set of every hash with a result: counting them needs no SCAN
    P:failed                  hash: task hash -> failure record (JSON)
    P:claim:<hash>            claim of a running task (see claims.py); expires unless renewed
    P:claims                  set of hashes that may be claimed: listing claims needs no SCAN
    P:holders                 hash: task hash -> the claim made last on it, until released
    P:died                    hash: "<task hash>:<token>" -> an attempt whose worker died (deaths.py)
    P:journals                hash: journal name -> its writer (host, boot, pid) and last write
    P:done:<writer>           stream of the hashes one worker finished: its journal
    P:code:<name>             set of code tags that produced results of a task name
    P:suspect                 hash: task hash -> why its result was found damaged
    P:damaged:<hash>:<writer> a damaged result moved aside, for a human
    P:complete                hash: graph digest -> who saw every task of it finished
    P:STOP                    present: workers take no new task

`<writer>` is host.pid.random, as in the names of a folder store's temp files,
so that `taskflow cleanup` can tell whose it was.
"""
from __future__ import annotations


class Keys:
    __slots__ = ("prefix", "marker", "finished", "failed", "claims", "journals", "suspect", "complete", "stop",
                 "holders", "died",
                 "_result", "_claim")

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.marker = f"{prefix}:store"
        self.finished = f"{prefix}:finished"
        self.failed = f"{prefix}:failed"
        self.claims = f"{prefix}:claims"
        self.holders = f"{prefix}:holders"
        self.died = f"{prefix}:died"
        self.journals = f"{prefix}:journals"
        self.suspect = f"{prefix}:suspect"
        self.complete = f"{prefix}:complete"
        self.stop = f"{prefix}:STOP"
        self._result = f"{prefix}:r:"
        self._claim = f"{prefix}:claim:"

    # Asked for several times per task: plain concatenation.

    def result(self, task_hash: str) -> str:
        return self._result + task_hash

    def claim(self, task_hash: str) -> str:
        return self._claim + task_hash

    def claiming(self, task_hash: str) -> list[str]:
        """The keys of the scripts that make a claim: it, the claims set, holders, died."""
        return [self._claim + task_hash, self.claims, self.holders, self.died]

    @property
    def claim_prefix(self) -> str:
        return self._claim

    def tmp(self, task_hash: str, writer: str) -> str:
        return f"{self.prefix}:tmp:{task_hash}:{writer}"

    def tmp_pattern(self) -> str:
        return f"{self.prefix}:tmp:*"

    def damaged(self, task_hash: str, writer: str) -> str:
        return f"{self.prefix}:damaged:{task_hash}:{writer}"

    def damaged_pattern(self) -> str:
        return f"{self.prefix}:damaged:*"

    def journal(self, writer: str) -> str:
        return f"{self.prefix}:done:{writer}"

    def code(self, name: str) -> str:
        return f"{self.prefix}:code:{name}"
