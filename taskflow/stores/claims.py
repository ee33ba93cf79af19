"""Claims in the store interface: which worker runs which task, with leases.

Part of the contract of `stores.base` (see there for what errors mean).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Claim:
    """A claim this process (or another, which pickled it) holds on one task.

    Made only by `Claims.claim`; everything but `lost`, `why` and `renewals`
    is the backend's to interpret. A claim names one task, also when it was
    had as a member of a batch (`Claims.claim_batch`): the backend's subclass
    then knows what the members share.
    """

    task_hash: str
    token: str            # random, unique among every claim ever made on this store
    made: float = 0.0     # `elapsed_clock()` on the claiming host just before the claim was made
    boot: str = ""        # boot id of the host that made it: `made` means nothing elsewhere
    lost: bool = False    # taken over by another worker, or released: never ours again
    renewals: int = 0     # how often it was renewed
    why: str = ""         # why it was lost, for messages
    # Attempts at the task whose worker died, as the store counts them now: set when this claim
    # took over a dead worker's (that death included), 0 on a plain claim, which counts none.
    died: int = 0


@dataclass
class ClaimInfo:
    """A claim as judged by one reader at one moment."""

    task_hash: str
    owner: dict           # what the claim records of its owner: host, boot, pid, worker, lease, started...
    age: float            # seconds since its last renewal, on the claims' clock (`Claims.now`)
    stale: bool           # its lease ran out, or its owner is known to be gone: it may be taken over
    reason: str           # why it is stale ("live" otherwise), for messages
    raw: bytes = field(default=b"", repr=False)  # the backend's identity of what was judged
    left: float = 0.0     # seconds until it goes stale unless renewed, by the lease it records; 0 if stale


class Claims(ABC):
    """Claims of one worker (or one reader) on one store, obtained from `Store.claims`.

    Exactly once: of any number of processes that call `claim` on the same
    hash while no live claim exists, exactly one gets a `Claim`; a live claim
    (renewed within its lease, owner not known to be gone) is never taken.
    Only the owner of a claim renews or releases it: `renew`, `holds` and
    `release` given a claim that was taken over leave the new owner's claim
    alone and answer False.

    Time: a claim's age is judged on one clock every host shares for this
    store (the folder store: its filesystem's clock; a server-backed store:
    the server's), never on the host's wall clock, so hosts whose clocks
    disagree still agree on staleness. `now()` reads that clock.

    Deaths: a claim that goes stale was held by a worker that died while
    running the task (killed for memory, a segfault, a lost node), or froze;
    a worker that stops on a signal or its walltime releases its claims. So
    the one racer whose takeover replaces a stale claim records that attempt
    in the store (`RecordStore.deaths`), once per dead claim however many
    racers judged it, and sets the new claim's `died` to the count. A claim
    expired by the store (the Redis store drops stale claims after a lease)
    counts when the next claim is made in its place. An owner that comes back
    and finds its claim taken over (`renew`, `holds`) removes the record of its
    own claim: it did not die. Nothing is counted or read while no worker dies.

    A `Claims` pickles as its store, lease, worker and reader flag, and is
    made again on the other side; its `Claim` objects stay valid there.
    """

    lease: float          # seconds a claim stays live without renewal
    worker: str           # recorded in claims as who holds them (see identity.worker_id)
    reader: bool          # judges claims only, and may work on a store it cannot write
    read_only: bool       # a reader that found the store unwritable: `now` is this host's clock

    def __getattr__(self, name: str) -> object:
        # A reader (status, show) has no use for its worker id, which asks the batch scheduler's
        # environment: made when first asked for, so a reader's `__init__` may leave it unset.
        if name == "worker":
            from .identity import worker_id
            self.worker = worker_id()
            return self.worker
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @abstractmethod
    def claim(self, task_hash: str, take_over: bool = True) -> Claim | None:
        """Claim the task; None if another holds it.

        Without `take_over` a claim held by anyone, stale or not, answers
        None at the cost of one round trip. With it, a stale claim is taken
        over: of several racers exactly one succeeds, and a claim renewed
        meanwhile is left to its owner.
        """

    def claim_batch(self, task_hashes: Sequence[str]) -> list[Claim]:
        """Claim those of the tasks nobody holds, as one batch; their claims, in the order asked.

        For tasks so short that a claim each would cost more than running
        them. Never takes over: a task held by anyone, stale or not, is left
        out (a worker takes a stale one over through `claim`, one by one).
        Each claim returned is a claim on its one task, as `claim` makes
        them: exactly once holds per task, `holds`, `still_ours` and
        `release` act on that member alone, with the same rules, `inspect`
        and `owner` of a member show the batch's owner and age, and once
        the batch goes stale each member is taken over on its own (its
        death counted for it alone). What the members may share is their
        lease: `renew_all` given them renews the batch once, and they go
        stale together. The owner releases each member after saving its
        result and then calls `release_all` for the rest, which lets go of
        what held the batch together.

        This default claims them one by one; a backend may do better.
        """
        got = []
        for h in task_hashes:
            claim = self.claim(h, take_over=False)
            if claim is not None:
                got.append(claim)
        return got

    def release_finished(self, claim: Claim) -> bool:
        """`release` the claim of a task whose result is saved.

        A backend may spare the checks that keep `release` from removing a
        claim that is no longer ours: should a freeze hand the task to
        another worker between the check and the removal, the result is in
        place already, so the worst that follows is that a third worker
        claims the task, finds the result and gives the claim back.
        """
        return self.release(claim)

    def renew_all(self, claims: Sequence[Claim]) -> bool:
        """`renew` each claim (a batch's lease once); False if any was lost."""
        ok = True
        for claim in claims:
            ok = self.renew(claim) and ok
        return ok

    def release_all(self, claims: Sequence[Claim]) -> None:
        """`release` each claim not lost yet, then what a batch of them shared. Claims taken over
        meanwhile are left to their new owners, and said nothing of."""
        for claim in claims:
            if not claim.lost:
                self.release(claim)

    @abstractmethod
    def holds(self, claim: Claim) -> bool:
        """Whether the claim is still ours, checked before saving a result or a failure.

        False once `lost`, or when another worker took it over (then `why`
        says so). May answer True without a round trip while the claim is
        younger than half a lease (nobody can have judged it stale), which
        is what keeps short tasks cheap. A claim whose record vanished
        without a takeover is made again (unless the task's result is in
        place), and work goes on.
        """

    @abstractmethod
    def still_ours(self, claim: Claim) -> bool:
        """Whether the store holds this very claim now: always a round trip, never inferred."""

    @abstractmethod
    def renew(self, claim: Claim) -> bool:
        """Renew the lease of the claim if it is still ours; False (and `lost` set) otherwise.

        Atomic against a takeover: a renewal racing with one either lands on
        our claim before it is moved, or fails; it never writes into the
        new owner's claim.
        """

    @abstractmethod
    def release(self, claim: Claim) -> bool:
        """Give the claim back so another worker may take the task at once; True if it was ours.

        Never removes another worker's claim, even when this process froze
        for longer than a lease between its check and its removal. After
        release the claim is `lost`.
        """

    @abstractmethod
    def inspect(self, task_hash: str) -> ClaimInfo | None:
        """Read and judge the claim on the task; None if there is none."""

    def present(self, task_hash: str) -> bool:
        """Whether a claim is on the task now, live or stale, judged by nothing: the cheapest look
        at one claim (a backend may answer from a client's cache of the name, as a stat does).
        This default reads its owner."""
        return self.owner(task_hash) is not None

    @abstractmethod
    def claimed(self) -> set[str]:
        """Hashes of every task with a claim (live or stale), judged by nothing: one listing."""

    @abstractmethod
    def owner(self, task_hash: str) -> dict | None:
        """What the claim on the task records of its owner, without judging it; {} when it cannot
        be read (being written, damaged), None when there is no claim."""

    @abstractmethod
    def remove_stale(self, info: ClaimInfo) -> bool:
        """Remove the claim judged stale in `info` if it is still exactly what was judged
        (not renewed, released or taken over since); True if this call removed it."""

    @abstractmethod
    def now(self, seen: float = 0.0) -> float:
        """The time on the clock claims are judged by (seconds since the epoch).

        `seen` is a time stamp just read from the store: a reader on a store
        it cannot write never answers earlier than that. Raises
        StoreAccessError for a worker whose store cannot be written.
        """

    @abstractmethod
    def close(self) -> None:
        """Let go of what reading the clock needed (a clock file, a connection). Idempotent."""
