"""The core's view of the replicated log: entries after the last snapshot.

The log keeps every entry since the newest snapshot in memory; the driver
mirrors them on disk. Three positions move forward through it:

- ``stable``: the driver reported every entry up to here durable;
- ``committed``: known replicated on a quorum (never decreases, section 5.3);
- ``applied``: handed to the state machine and acknowledged.

Entries after ``stable`` form the unstable tail that the next Ready persists.
"""

from __future__ import annotations

from .messages import Entry, SnapshotMeta

__all__ = ["RaftLog"]


class RaftLog:
    def __init__(self, snapshot: SnapshotMeta | None, entries: list[Entry], commit: int) -> None:
        self.snapshot = snapshot
        self.offset = snapshot.index if snapshot else 0
        """Index of the entry just before ``entries[0]`` (the snapshot's last index)."""
        self.offset_term = snapshot.term if snapshot else 0
        self.entries = list(entries)
        if self.entries and self.entries[0].index != self.offset + 1:
            raise ValueError(
                f"log starts at {self.entries[0].index}, expected {self.offset + 1} after snapshot"
            )
        for a, b in zip(self.entries, self.entries[1:], strict=False):
            if b.index != a.index + 1 or b.term < a.term:
                raise ValueError(f"log not contiguous at index {b.index}")
        self.stable = self.last_index()
        self.committed = min(max(commit, self.offset), self.last_index())
        self.applied = self.offset

    # --- positions ---------------------------------------------------------

    def first_index(self) -> int:
        return self.offset + 1

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, index: int) -> int | None:
        """The term of the entry at ``index``; None if compacted away or beyond the end."""
        if index == self.offset:
            return self.offset_term
        pos = index - self.offset - 1
        if pos < 0 or pos >= len(self.entries):
            return None
        return self.entries[pos].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """The election restriction (section 5.4.1): is that log at least as new as ours?"""
        mine = self.last_term()
        return last_term > mine or (last_term == mine and last_index >= self.last_index())

    # --- reading -----------------------------------------------------------

    def slice(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries in ``[lo, hi)``, at least one, then stopping before ``max_bytes``."""
        start = lo - self.offset - 1
        stop = min(hi, self.last_index() + 1) - self.offset - 1
        if start < 0:
            raise IndexError(f"entry {lo} is compacted (first is {self.first_index()})")
        if start >= stop:
            return []
        out = self.entries[start:stop]
        total = 0
        for n, e in enumerate(out):
            total += len(e.data) + 24
            if total > max_bytes and n > 0:
                return out[:n]
        return out

    def unstable(self) -> list[Entry]:
        return self.entries[self.stable - self.offset :]

    def next_committed(self, max_bytes: int) -> list[Entry]:
        """Committed entries not yet applied, bounded by ``max_bytes`` (at least one)."""
        if self.committed <= self.applied:
            return []
        return self.slice(self.applied + 1, self.committed + 1, max_bytes)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term`` (fast backtracking).

        Stops at the compaction point, whose entries all precede any conflict."""
        if index > self.last_index():
            return index
        while index > self.offset:
            t = self.term(index)
            if t is None or t <= term:
                break
            index -= 1
        return index

    # --- changing ----------------------------------------------------------

    def append(self, entries: list[Entry]) -> None:
        """Append entries that follow the last one (the leader's own proposals)."""
        self.entries.extend(entries)

    def truncate_from(self, index: int) -> None:
        """Drop ``index`` and everything after it; never committed entries."""
        if index <= self.committed:
            raise AssertionError(f"truncating committed entry {index} (commit {self.committed})")
        del self.entries[index - self.offset - 1 :]
        self.stable = min(self.stable, index - 1)

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Follower side of AppendEntries. Returns the last index the leader's
        message proves we share with it, or None if ``prev`` does not match."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        # Skip the entries we already hold; truncate from the first conflict only
        # (section 5.3: an old, reordered message must not erase newer entries).
        for n, e in enumerate(entries):
            t = self.term(e.index)
            if t == e.term:
                continue
            if t is not None:
                self.truncate_from(e.index)
            self.entries.extend(entries[n:])
            break
        self.commit_to(min(commit, last_new))
        return last_new

    def commit_to(self, index: int) -> bool:
        index = min(index, self.last_index())
        if index > self.committed:
            self.committed = index
            return True
        return False

    def stable_to(self, index: int, term: int) -> None:
        if self.term(index) == term and index > self.stable:
            self.stable = index

    def applied_to(self, index: int) -> None:
        self.applied = max(self.applied, index)

    def restore(self, snapshot: SnapshotMeta) -> None:
        """Replace everything with a snapshot received from the leader."""
        self.snapshot = snapshot
        self.offset = snapshot.index
        self.offset_term = snapshot.term
        self.entries = []
        self.stable = snapshot.index
        self.committed = snapshot.index
        self.applied = snapshot.index

    def compact(self, snapshot: SnapshotMeta, keep_from: int) -> None:
        """Record a local snapshot and drop entries before ``keep_from``.

        Entries after the snapshot that are still in the log are kept, and so
        are those from ``keep_from`` on (slow followers can catch up from them
        rather than needing the whole snapshot)."""
        if snapshot.index > self.applied:
            raise ValueError(f"snapshot {snapshot.index} is past applied {self.applied}")
        if self.snapshot is None or snapshot.index > self.snapshot.index:
            self.snapshot = snapshot
        cut = min(keep_from - 1, snapshot.index, self.stable)
        if cut <= self.offset:
            return
        term = self.term(cut)
        assert term is not None
        del self.entries[: cut - self.offset]
        self.offset = cut
        self.offset_term = term
