"""Hypothesis strategies for every Raft message type, with values the codec must carry."""

from __future__ import annotations

from hypothesis import strategies as st

from uhaha.raft.messages import (
    AppendRequest,
    AppendResponse,
    Configuration,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    Member,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotChunk,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)

# Integers span the whole wire range, with the edges drawn often.
ints = st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([0, 1, 2**32, 2**63 - 1]))
# Node ids: anything that is valid Unicode (hypothesis leaves out lone surrogates).
ids = st.text(max_size=12)
blobs = st.binary(max_size=300)

entries = st.builds(Entry, ints, ints, st.sampled_from(list(EntryKind)), blobs)
configs = st.builds(
    Configuration,
    st.lists(st.builds(Member, ids, ids, st.booleans()), max_size=5).map(tuple),
)
metas = st.builds(SnapshotMeta, ints, ints, configs, ints)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(VoteRequest, ints, ids, ids, ints, ints, st.booleans(), st.booleans()),
    st.builds(VoteResponse, ints, ids, ids, st.booleans(), st.booleans()),
    st.builds(
        AppendRequest,
        ints,
        ids,
        ids,
        ints,
        ints,
        st.lists(entries, max_size=5).map(tuple),
        ints,
    ),
    st.builds(AppendResponse, ints, ids, ids, ints, st.booleans(), ints, ints),
    st.builds(Heartbeat, ints, ids, ids, ints, ints),
    st.builds(HeartbeatResponse, ints, ids, ids, ints),
    st.builds(SnapshotChunk, ints, ids, ids, metas, ints, blobs, st.booleans()),
    st.builds(SnapshotResponse, ints, ids, ids, ints, ints),
    st.builds(TimeoutNow, ints, ids, ids),
    st.builds(ReadIndexRequest, ints, ids, ids, blobs),
    st.builds(ReadIndexResponse, ints, ids, ids, blobs, ints),
)


def one_of_each(frm: str = "1", to: str = "2") -> list[Message]:
    """A fixed message of every type from ``frm`` to ``to``, with small realistic values."""
    conf = Configuration((Member("1", "127.0.0.1:11001"), Member("2", "h:2", voter=False)))
    meta = SnapshotMeta(40, 3, conf, 1000)
    return [
        VoteRequest(3, frm, to, 41, 3, pre=True),
        VoteResponse(3, frm, to, granted=True),
        AppendRequest(
            3, frm, to, 40, 3, (Entry(3, 41, data=b"set x 1"), Entry(3, 42, EntryKind.CONFIG)), 40
        ),
        AppendResponse(3, frm, to, 42, reject=True, hint_index=39, hint_term=2),
        Heartbeat(3, frm, to, 42, seq=9),
        HeartbeatResponse(3, frm, to, seq=9),
        SnapshotChunk(3, frm, to, meta, 0, b"\x00" * 100, False),
        SnapshotResponse(3, frm, to, 40, 100),
        TimeoutNow(3, frm, to),
        ReadIndexRequest(3, frm, to, b"ctx"),
        ReadIndexResponse(3, frm, to, b"ctx", 42),
    ]
