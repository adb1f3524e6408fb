"""A real 3-node cluster (examples/kvdb.py) against hostile clients, from every side.

Known data is written first; then every node gets, over raw sockets: the
fuzz corpus (truncated frames, negative and huge lengths, binary garbage,
invalid UTF-8 in commands and in JSON bodies, HTTP oddities, the HTTP/2
preface cut short ...), path traversal on RAFT SNAPSHOT READ/FILE and
GET /snapshots/{id}, oversized inline lines, 100,000 pipelined commands
from one connection (one that reads its replies, one that does not), and
slowloris connections on RESP and HTTP. Meanwhile a well-behaved client
keeps reading and writing on every node and must never see an error but a
redirect. Afterwards every node is alive with no traceback in its log, all
apply the same log, hold the same data (the known data unchanged), can
snapshot it, and a restarted node comes back with it.

The nodes run with `--openreads` (so a read on a follower answers from that
node's own data) and with 1-second sniff and HTTP head timeouts
(`--limit`), so the slowloris connections are cut quickly.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import hiredis
import httpx
import pytest
import redis

from fuzz import fuzz_http_args, fuzz_resp, fuzz_sniff
from fuzz.runner import corpus_files
from tests.cluster.harness import ROOT, Proc, ProcCluster, running, wait_for
from tests.fuzz.h2get import h2_get

KVDB = [sys.executable, str(ROOT / "examples" / "kvdb.py")]
FLAGS = ["--openreads", "--limit", "sniff-timeout=1", "--limit", "http-head-timeout=1"]
KNOWN = {f"known:{i}".encode(): f"value {i} é ✓".encode() for i in range(40)}
PIPELINED = 100_000
#: Text in a reply that means an exception leaked out of the code as an error.
LEAKED = re.compile(
    rb"Traceback|codec can't encode|has no attribute|NoneType|index out of range|not subscriptable"
    rb"|unhashable|positional argument|Internal Server Error|HTTP/1\.[01] 5\d\d"
)
PASSWD = re.compile(rb"root:[^:\n]*:0:0:")
#: RAFT SERVER ... and RAFT TRANSFER, in RESP, inline or as an HTTP query.
ADMIN = re.compile(rb"(?i)raft(?:\r\n\$\d+\r\n|\s+|\?arg=)(?:server|transfer)")


def cmd(*args: str | bytes) -> bytes:
    raw = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in raw)


def rss(proc: Proc) -> int:
    """The node's resident memory, bytes."""
    assert proc.popen is not None
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def raw(proc: Proc) -> redis.Redis:
    return redis.Redis(host=proc.host, port=proc.port, socket_timeout=15)


def dump(proc: Proc) -> dict[bytes, bytes]:
    """Every key and value of a node, read from that node (--openreads)."""
    with raw(proc) as r:
        keys = sorted(r.execute_command("KEYS", "*"))
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("GET", key)
        return dict(zip(keys, pipe.execute(), strict=True))


def has_known_data(proc: Proc) -> bool:
    data = dump(proc)
    return all(data.get(k) == v for k, v in KNOWN.items())


def session(proc: Proc, data: bytes, timeout: float = 15.0, half_close: bool = True) -> bytes:
    """One hostile connection: send `data`, half-close, read until the node
    closes (which it must do within `timeout`, answered or not)."""
    sock = socket.create_connection((proc.host, proc.port), timeout=timeout)
    deadline = time.monotonic() + timeout
    out = b""
    try:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the node closed it already (a protocol error before the end)
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break  # closed with bytes still unread: the kernel resets
            except TimeoutError:
                raise AssertionError(
                    f"the node neither answered nor closed: {data[:80]!r}"
                ) from None
            if not chunk:
                break
            out += chunk
    finally:
        sock.close()
    return out


def http_get(proc: Proc, target: str) -> bytes:
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    return session(proc, request.encode(), half_close=False)


def status_of(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match is not None, answer[:200]
    return int(match.group(1))


class WellBehaved(threading.Thread):
    """A client that keeps reading and writing on every node until stopped.

    Reads (RESP and HTTP) must give the known values; a write is answered OK
    by the leader and MOVED by a follower; anything else is recorded as an error.
    """

    def __init__(self, nodes: list[Proc]) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self.rounds = 0
        self.errors: list[str] = []
        self.written: dict[bytes, bytes] = {}
        self.redirects = 0
        self._halt = threading.Event()

    def run(self) -> None:
        clients = {p.node_id: raw(p) for p in self.nodes}
        keys = sorted(KNOWN)
        with httpx.Client(timeout=15) as http:
            n = 0
            while not self._halt.is_set():
                for p in self.nodes:
                    try:
                        self._one(p, clients[p.node_id], http, keys[n % len(keys)], n)
                    except Exception as exc:
                        self.errors.append(f"node {p.node_id}: {exc!r}")
                n += 1
                self.rounds += 1
        for client in clients.values():
            client.close()

    def _one(self, p: Proc, r: redis.Redis, http: httpx.Client, key: bytes, n: int) -> None:
        assert r.execute_command("GET", key) == KNOWN[key]  # type: ignore[no-untyped-call]
        answer = http.get(f"http://{p.address}/cmd/get", params={"arg": key.decode()})
        assert (answer.status_code, answer.json()) == (200, {"result": KNOWN[key].decode()})
        name, value = f"poll:{p.node_id}:{n}".encode(), str(n).encode()
        try:
            assert r.execute_command("SET", name, value) is True  # type: ignore[no-untyped-call]
            self.written[name] = value
        except redis.exceptions.MovedError:
            self.redirects += 1

    def wait_rounds(self, more: int = 2) -> None:
        """Wait until `more` whole rounds have been answered from now on."""
        target = self.rounds + more
        wait_for(lambda: self.rounds >= target or self.errors, 60, "the client's rounds")
        assert not self.errors, self.errors[:5]

    def stop(self) -> None:
        self._halt.set()
        self.join(60)
        assert not self.is_alive(), "the well-behaved client is stuck"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    with running(tmp_path_factory.mktemp("hostile"), program=KVDB, extra=FLAGS) as c:
        yield c


def hostile_streams() -> list[tuple[str, bytes]]:
    """What the corpus sends on one connection each: (name, bytes)."""
    streams = [
        (f"resp/{p.name}", fuzz_resp.split_input(p.read_bytes())[2]) for p in corpus_files("resp")
    ]
    streams += [
        (f"sniff/{p.name}", fuzz_sniff.split_input(p.read_bytes())[2])
        for p in corpus_files("sniff")
    ]
    for p in corpus_files("http_args"):
        request = fuzz_http_args.decode_input(p.read_bytes())
        streams.append((f"http_args/{p.name}", request.http1()))
    for name, data in streams:
        # The data check relies on these: no seed touches the known keys or
        # changes the membership (an authorized admin may; not a test of hostility).
        assert b"known:" not in data, name
        assert not ADMIN.search(data), name
    return streams


def test_a_cluster_under_hostile_clients_serves_everyone_and_keeps_its_data(
    cluster: ProcCluster,
) -> None:
    leader = cluster.wait_leader()
    nodes = sorted(cluster.procs.values(), key=lambda p: p.node_id)
    with raw(leader) as r:
        pipe = r.pipeline(transaction=False)
        for key, value in KNOWN.items():
            pipe.execute_command("SET", key, value)
        assert all(reply is True for reply in pipe.execute())
    for p in nodes:
        wait_for(partial(has_known_data, p), 30, "the known data on every node")
    memory = {p.node_id: rss(p) for p in nodes}

    client = WellBehaved(nodes)
    client.start()
    try:
        client.wait_rounds()
        replay_the_corpus(nodes)
        client.wait_rounds()
        snapshot_id = traversal(leader, nodes)
        client.wait_rounds()
        oversized(nodes)
        http2_targets(nodes)
        pipelined(leader, nodes, client)
        slowloris(nodes, client)
        client.wait_rounds()
    finally:
        client.stop()
    assert not client.errors, client.errors[:10]
    assert client.redirects > 0 and client.written

    for p in nodes:
        assert p.alive, f"node {p.node_id} died"
        log = p.log()
        for sign in ("Traceback", "Error in ASGI", "Exception in callback", "never retrieved"):
            assert sign not in log, f"node {p.node_id} logged {sign!r}"
        assert rss(p) - memory[p.node_id] < 256 << 20, f"node {p.node_id} grew to {rss(p)}"

    data = same_state_everywhere(cluster, nodes)
    assert {k: data[k] for k in KNOWN} == KNOWN  # unchanged
    assert {k: data[k] for k in client.written} == client.written
    # The corpus's own writes: binary-safe, and refused ones changed nothing.
    assert data[b"fz:\xff\xfe"] == b"\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80"
    assert not {b"fz:e", b"fz:s", b"fz:gone"} & set(data)
    snapshots_and_restart(cluster, nodes, data, snapshot_id)


def replay_the_corpus(nodes: list[Proc]) -> None:
    streams = hostile_streams()
    jobs = [(p, name, data) for p in nodes for name, data in streams]

    def one(job: tuple[Proc, str, bytes]) -> tuple[str, bytes]:
        p, name, data = job
        return f"node {p.node_id} {name}", session(p, data)

    with ThreadPoolExecutor(12) as pool:
        for where, answer in pool.map(one, jobs):
            assert not LEAKED.search(answer), f"{where}: {answer[:600]!r}"
            assert not PASSWD.search(answer), where


def traversal(leader: Proc, nodes: list[Proc]) -> str:
    """Snapshot ids that name other files are not found, on every node and protocol."""
    with raw(leader) as r:
        snapshot_id = str(r.execute_command("RAFT", "SNAPSHOT", "NOW").decode())
        path = Path(r.execute_command("RAFT", "SNAPSHOT", "FILE", snapshot_id).decode())
        content = r.execute_command("RAFT", "SNAPSHOT", "READ", snapshot_id)
        assert path.is_relative_to(leader.data_dir.resolve()) and path.read_bytes() == content
        whole = r.execute_command("RAFT", "SNAPSHOT", "READ", snapshot_id, "RANGE", "0", "9" * 30)
        assert whole == content  # an oversized RANGE stops at the end of the file
        part = r.execute_command("RAFT", "SNAPSHOT", "READ", snapshot_id, "RANGE", "3", "7")
        assert part == content[3:7]
        for start, end in (("-1", "5"), ("5", "1"), ("0", "9" * 5000), ("0x0", "1")):
            with pytest.raises(redis.ResponseError, match="invalid range"):
                r.execute_command("RAFT", "SNAPSHOT", "READ", snapshot_id, "RANGE", start, end)
    ids = [
        "../../etc/passwd", "/etc/passwd", f"{snapshot_id}/../../../../../etc/passwd",
        f"../{snapshot_id}", f"{snapshot_id}\x00", f"{snapshot_id}/state.bin", "..", ".", "",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd", str(leader.data_dir.resolve()), "\uff11-1-1",
    ]  # fmt: skip
    targets = [
        "/snapshots/..%2f..%2fetc%2fpasswd", "/snapshots/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/snapshots/%2fetc%2fpasswd", "/snapshots/%00", f"/snapshots/{snapshot_id}%00",
        f"/snapshots/{snapshot_id}%2fstate.bin", "/snapshots/..", "/../../etc/passwd",
        "/snapshots/%2e%2e",
    ]  # fmt: skip
    for p in nodes:
        with raw(p) as r:
            for sub in ("READ", "FILE"):
                for bad in ids:
                    with pytest.raises(redis.ResponseError, match="snapshot not found"):
                        r.execute_command("RAFT", "SNAPSHOT", sub, bad)
        for target in targets:
            answer = http_get(p, target)
            assert status_of(answer) == 404 and not PASSWD.search(answer), (target, answer)
        query = "/cmd/raft?arg=snapshot&arg=read&arg=..%2f..%2fetc%2fpasswd"
        answer = http_get(p, query)
        assert status_of(answer) == 400 and b"snapshot not found" in answer
    answer = http_get(leader, f"/snapshots/{snapshot_id}")
    assert status_of(answer) == 200 and answer.endswith(content)
    return snapshot_id


def oversized(nodes: list[Proc]) -> None:
    """Over-limit requests get the error naming the limit, and only they are closed."""
    cases = {
        b"A" * 70_000 + b"\r\n": b"too big inline request",
        b"get " + b"k" * 70_000 + b"\r\n": b"too big inline request",
        b"*1\r\n$100000000\r\n": b"bulk length 100000000 exceeds the limit of 67108864 bytes",
        b"*2000000000\r\n": b"multibulk length 2000000000 exceeds the limit of 1048576",
        b"*-5\r\n": b"invalid multibulk length -5",
        b"*1\r\n$-9223372036854775808\r\n": b"invalid bulk length -9223372036854775808",
        b"*1\r\n$" + b"9" * 30 + b"\r\n": b"invalid bulk length",
    }
    for p in nodes:
        for data, message in cases.items():
            answer = session(p, data + cmd("PING"))
            assert answer == b"-ERR Protocol error: " + message + b"\r\n", (data[:40], answer)
        # Undecided past the sniff limit (a request line without its end): a
        # 414, then the close (which may reset the connection before the 414
        # is read, with so much still unread).
        answer = session(p, b"GET /" + b"k" * 70_000)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 414 URI Too Long\r\n"), answer


def http2_targets(nodes: list[Proc]) -> None:
    """HTTP/2 lets any byte into a target; the node answers 400 (a 500 before)."""
    for p in nodes:
        for path, status in ((b"/cmd/?\x84", 400), (b"/cmd/get?arg=\xff", 400), (b"/healthz", 200)):
            assert asyncio.run(h2_get((p.host, p.port), path)) == status, path


def replies(sock: socket.socket, count: int, check: Callable[[int, Any], None]) -> None:
    """Read `count` replies, calling check(index, reply) on each."""
    reader = hiredis.Reader()
    got = 0
    while got < count:
        data = sock.recv(1 << 20)
        assert data, f"closed after {got} of {count} replies"
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            check(got, reply)
            got += 1


def pipelined(leader: Proc, nodes: list[Proc], client: WellBehaved) -> None:
    """100,000 commands from one connection: all answered, in order, right."""
    before = {p.node_id: rss(p) for p in nodes}
    # Writes and reads on the leader; each read sees the write before it.
    stream = b"".join(
        cmd("SET", f"pipe:{i % 500}", str(i)) + cmd("GET", f"pipe:{i % 500}")
        for i in range(PIPELINED // 2)
    )
    sock = socket.create_connection((leader.host, leader.port), timeout=60)
    sender = threading.Thread(target=sock.sendall, args=(stream,), daemon=True)
    sender.start()

    later = 0

    def check(n: int, reply: Any) -> None:
        nonlocal later
        if n % 2 == 0:
            assert reply == b"OK", (n, reply)
            return
        # The README's promise: a pipelined read sees the writes before it.
        # (It may also see later ones of the same pipeline: see the report.)
        i, seen = n // 2, int(reply)
        assert seen % 500 == i % 500 and seen >= i, (n, reply)
        later += seen > i

    replies(sock, PIPELINED, check)
    print(f"{later} of {PIPELINED // 2} pipelined reads saw a write sent after them")
    sender.join(60)
    sock.close()
    client.wait_rounds()

    # A client that sends 100,000 reads and reads nothing: the node stops
    # reading it (or buffers what the kernel lets through) and serves others.
    follower = next(p for p in nodes if p is not leader)
    stream = cmd("GET", "pipe:none") * PIPELINED
    sock = socket.create_connection((follower.host, follower.port), timeout=60)
    sock.setblocking(False)
    sent = 0
    while sent < len(stream):
        _, writable, _ = select.select([], [sock], [], 0.5)
        if not writable:
            break  # the node reads no more: backpressure
        try:
            sent += sock.send(stream[sent : sent + (1 << 20)])
        except BlockingIOError:
            continue
    client.wait_rounds()  # served meanwhile
    assert rss(follower) - before[follower.node_id] < 128 << 20
    print(f"the non-reading client sent {sent} of {len(stream)} bytes before backpressure")
    sock.settimeout(60)
    sender = threading.Thread(target=sock.sendall, args=(stream[sent:],), daemon=True)
    sender.start()

    def nil(n: int, reply: Any) -> None:
        assert reply is None, (n, reply)

    replies(sock, PIPELINED, nil)
    sender.join(60)
    sock.close()
    data = dump(leader)
    assert {f"pipe:{j}".encode(): data[f"pipe:{j}".encode()] for j in range(500)} == {
        f"pipe:{j}".encode(): str(PIPELINED // 2 - 500 + j).encode() for j in range(500)
    }


def trickle(proc: Proc, first: bytes, drip: bytes, pause: float = 0.2) -> bytes:
    """Send `first`, then `drip` a byte at a time; what the node answers by closing.

    Fails if the node has not closed the connection 15 s after `drip` ran out.
    """
    sock = socket.create_connection((proc.host, proc.port), timeout=15)
    received = b""
    try:
        sock.sendall(first)
        pending = list(drip)
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], pause)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    return received
                if not chunk:
                    return received
                received += chunk
            elif pending:
                try:
                    sock.sendall(bytes([pending.pop(0)]))
                except (BrokenPipeError, ConnectionResetError):
                    return received
            elif deadline is None:
                deadline = time.monotonic() + 15
        raise AssertionError(f"still open after {len(drip)} trickled bytes: {received!r}")
    finally:
        sock.close()


def slowloris(nodes: list[Proc], client: WellBehaved) -> None:
    """Bytes trickled: the node's limits close the connection, others are served."""
    results: dict[str, bytes] = {}

    def run(name: str, proc: Proc, first: bytes, drip: bytes) -> None:
        results[name] = trickle(proc, first, drip)

    jobs = []
    for p in nodes:
        jobs += [
            # Upper-case letters may begin an HTTP method: undecided for 20 of them.
            (f"{p.node_id} resp, protocol undecided", p, b"", b"PING" * 5),
            (f"{p.node_id} http, request line", p, b"", b"GET /healthz HTTP/1.1"),
            (f"{p.node_id} http, head", p, b"GET /healthz HTTP/1.1\r\n", b"X-Slow: a" * 12),
        ]
    threads = [threading.Thread(target=run, args=job, daemon=True) for job in jobs]
    # And connections that only the 60 s request and body timeouts would cut
    # (a RESP request or an HTTP body that never ends): held open while the
    # others are cut and everyone is served; closing one mid-body must leave
    # no traceback.
    held = [socket.create_connection((p.host, p.port), timeout=15) for p in nodes for _ in range(2)]
    for n, sock in enumerate(held):
        if n % 2:
            sock.sendall(b"POST /cmd/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[")
        else:
            sock.sendall(b"*2\r\n$4\r\nECHO\r\n$1000\r\nabc")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    client.wait_rounds()
    for sock in held:
        sock.close()
    for name, answer in results.items():
        # All three look like HTTP when cut (upper-case letters may begin a
        # method): told so with a 408, in HTTP.
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), (name, answer)
    assert len(results) == len(jobs)


def applied(proc: Proc) -> int:
    return int(proc.info()["applied_index"])


def same_state_everywhere(cluster: ProcCluster, nodes: list[Proc]) -> dict[bytes, bytes]:
    """Wait until every node applied the same index; their data, all the same."""
    leader = cluster.wait_leader()
    leader.call("BARRIER")
    wait_for(lambda: len({applied(p) for p in nodes}) == 1, 30, "the same applied index")
    dumps = {p.node_id: dump(p) for p in nodes}
    first = dumps[leader.node_id]
    for node_id, data in dumps.items():
        assert data == first, f"node {node_id} differs: {set(data) ^ set(first)}"
    return first


def snapshots_and_restart(
    cluster: ProcCluster, nodes: list[Proc], data: dict[bytes, bytes], old_id: str
) -> None:
    """Each node snapshots what the hostile clients left (text that is not UTF-8 included);
    a node killed and restarted comes back from its snapshot and log with the same data."""
    for p in nodes:
        with raw(p) as r:
            new_id = r.execute_command("RAFT", "SNAPSHOT", "NOW").decode()
            assert new_id != old_id
    restarted = nodes[-1]
    restarted.kill()
    restarted.start()
    wait_for(lambda: dump(restarted) == data, 60, "the restarted node's data")
    assert "Traceback" not in restarted.log()
