"""Safety properties checked incrementally at every step of a simulation.

Raft paper Figure 3: election safety, log matching, leader completeness,
state machine safety; plus durable term and vote never moving backwards and
no server granting two votes in one term (which an unpersisted vote allows).
Each check costs O(1) per event it watches, except leader completeness, which
walks the committed log once per election.
"""

from __future__ import annotations

from uhaha.raft import Entry, HardState, RaftCore


class SafetyViolation(AssertionError):
    pass


class SafetyChecker:
    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}
        self.entries: dict[tuple[int, int], tuple[bytes, int]] = {}
        """(index, term) -> (data, previous entry's term): log matching, inductively."""
        self.committed: dict[int, Entry] = {}
        """index -> every entry any server applied."""
        self.commit_term: dict[int, int] = {}
        """index -> a term in which the entry was already committed (an upper bound)."""
        self.votes: dict[tuple[str, int], str] = {}
        self.last_applied: dict[str, int] = {}

    def fail(self, what: str) -> None:
        raise SafetyViolation(what)

    # --- election safety and leader completeness ---------------------------

    def leader(self, core: RaftCore) -> None:
        """Called whenever a server is seen as leader."""
        prev = self.leaders.setdefault(core.term, core.id)
        if prev != core.id:
            self.fail(f"two leaders in term {core.term}: {prev} and {core.id}")

    def elected(self, core: RaftCore) -> None:
        """Called once when a server becomes leader: it must hold every committed entry."""
        self.leader(core)
        lg = core.log
        for index, entry in self.committed.items():
            term = entry.term
            if index <= lg.offset or self.commit_term[index] >= core.term:
                # Only entries committed in an earlier term must be there.
                continue
            if lg.term(index) != term:
                self.fail(
                    f"leader {core.id} of term {core.term} lacks committed entry "
                    f"{index} (term {term}); it has term {lg.term(index)}"
                )

    def vote(self, voter: str, term: int, candidate: str) -> None:
        prev = self.votes.setdefault((voter, term), candidate)
        if prev != candidate:
            self.fail(f"{voter} voted for {prev} and {candidate} in term {term}")

    # --- durability ----------------------------------------------------------

    def hard_state(self, node: str, old: HardState, new: HardState) -> None:
        if new.term < old.term:
            self.fail(f"{node}: durable term went back {old.term} -> {new.term}")
        if new.term == old.term and old.vote and new.vote != old.vote:
            self.fail(f"{node}: durable vote changed in term {new.term}: {old.vote} -> {new.vote}")
        if new.commit < old.commit:
            self.fail(f"{node}: durable commit went back {old.commit} -> {new.commit}")

    def persisting(self, node: str, prev_term: int | None, new: list[Entry]) -> None:
        """Log matching: entries with equal index and term are equal, and so are
        their predecessors' terms (which by induction makes whole prefixes equal).
        ``prev_term`` is the term before ``new[0]`` on this server (None: unknown)."""
        for e in new:
            key = (e.index, e.term)
            seen = self.entries.get(key)
            if seen is None:
                self.entries[key] = (e.data, prev_term or 0)
            else:
                if seen[0] != e.data:
                    self.fail(f"{node}: two different entries at index {e.index} term {e.term}")
                if prev_term and seen[1] and seen[1] != prev_term:
                    self.fail(f"{node}: log matching broken before index {e.index} term {e.term}")
                if prev_term and not seen[1]:
                    self.entries[key] = (e.data, prev_term)
            prev_term = e.term

    # --- state machine safety ----------------------------------------------------

    def restarted(self, node: str, applied: int) -> None:
        self.last_applied[node] = applied

    def installed(self, node: str, index: int, values: list[bytes]) -> None:
        self.last_applied[node] = index

    def applied(self, node: str, e: Entry, term: int) -> None:
        """``node`` applied ``e`` while in ``term``. The entry was committed in
        that term or earlier: the smallest such term seen bounds the real one."""
        self.commit_term[e.index] = min(self.commit_term.get(e.index, term), term)
        self._applied(node, e)

    def _applied(self, node: str, e: Entry) -> None:
        last = self.last_applied.get(node, 0)
        if e.index != last + 1:
            self.fail(f"{node}: applied {e.index} after {last}")
        self.last_applied[node] = e.index
        seen = self.committed.setdefault(e.index, e)
        if seen != e:
            self.fail(
                f"{node}: applied entry {e.index} term {e.term}, but another server "
                f"applied term {seen.term} there"
            )
