"""`taskflow pack`: keep a store's small results together in few files (see `Store.compact`)."""
from __future__ import annotations

from .stores.base import Store


def pack(store: Store) -> dict[str, int]:
    """Compact the store's results; counts of what was done (empty: nothing to do for this kind)."""
    if not store.exists():
        return {}
    return store.compact()


def summary(counts: dict[str, int]) -> str:
    """One line for people."""
    if not counts:
        return "nothing to pack: this store keeps no result files"
    if not counts.get("results"):
        return "nothing to pack" + (f" ({counts['packs_kept']} pack(s) still written to)"
                                    if counts.get("packs_kept") else "")
    line = (f"packed {counts['results']} result(s) into one pack: {counts['files_merged']} result file(s) "
            f"and {counts['packs_merged']} pack(s) merged")
    if counts.get("packs_kept"):
        line += f", {counts['packs_kept']} pack(s) still written to left as they are"
    if counts.get("damaged"):
        line += f"; {counts['damaged']} damaged result(s) left out, to be computed again"
    return line
