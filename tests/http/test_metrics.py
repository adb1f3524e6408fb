"""``GET /metrics``: the Prometheus text format from real nodes (a kvdb cluster
started through the real command line), parsed with prometheus-client's own
parser; the families are there, and they move as writes, heartbeats,
connections and snapshots happen. Every node has a registry of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import uhaha
from tests.app.inproc import serve
from tests.cluster.harness import Proc, ProcCluster, wait_for
from tests.http.nodes import SECRET, Cluster, client, kvdb_cluster
from uhaha import App, Machine
from uhaha.metrics import FAMILIES, NodeMetrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """The families (name -> type) and every sample, by name and sorted labels."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def scrape(p: Proc) -> tuple[dict[str, str], Samples]:
    with client(p) as http:
        r = http.get("/metrics")
    assert r.status_code == 200, r.text
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def has(samples: Samples, name: str, **labels: str) -> bool:
    return (name, tuple(sorted(labels.items()))) in samples


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with kvdb_cluster(tmp_path_factory.mktemp("metrics")) as c:
        yield c


def test_metrics_need_the_secret_and_are_prometheus_text(cluster: Cluster) -> None:
    with client(cluster.leader, auth=False) as http:
        r = http.get("/metrics")
        assert r.status_code == 401
        assert r.json() == {"error": "NOAUTH Authentication required."}
        assert r.headers["www-authenticate"] == "Bearer"
    with client(cluster.leader) as http:
        r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    types, samples = parse(r.text)
    assert set(FAMILIES) <= set(types)
    assert types["uhaha_raft_proposals"] == types["uhaha_raft_commits"] == "counter"
    assert types["uhaha_apply_seconds"] == types["uhaha_storage_save_seconds"] == "histogram"
    assert types["uhaha_raft_term"] == "gauge"
    assert {"process_cpu_seconds", "python_gc_objects_collected", "python_info"} <= set(types)
    assert value(samples, "uhaha_up") == 1
    # A node started from the command line runs on uvloop (a dependency).
    info = {"app": "kvdb", "version": "1.0.0", "id": cluster.leader.node_id, "loop": "uvloop"}
    assert value(samples, "uhaha_info", **info) == 1
    assert value(samples, "uhaha_raft_state", state="leader") == 1
    assert value(samples, "uhaha_raft_state", state="follower") == 0
    assert value(samples, "uhaha_raft_members") == value(samples, "uhaha_raft_voters") == 3
    _, on_follower = scrape(cluster.followers[0])
    assert value(on_follower, "uhaha_raft_state", state="follower") == 1
    assert value(on_follower, "uhaha_raft_state", state="leader") == 0
    assert value(on_follower, "uhaha_raft_term") == value(samples, "uhaha_raft_term")


def test_writes_move_proposals_commits_and_applies(cluster: Cluster) -> None:
    leader = cluster.leader
    _, before = scrape(leader)
    writes = 20
    with client(leader) as http:
        for i in range(writes):  # one after the other: one log entry each
            r = http.post("/cmd/set", json=[f"k{i}", "v"])
            assert r.json() == {"result": "OK"}
    _, after = scrape(leader)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Ticks are proposed and applied too, so "at least".
    assert grew("uhaha_raft_proposals_total") >= writes
    assert grew("uhaha_raft_commits_total") >= writes
    assert grew("uhaha_raft_commit_index") >= writes
    assert grew("uhaha_raft_applied_index") >= writes
    assert grew("uhaha_raft_last_index") >= writes
    assert grew("uhaha_apply_seconds_count") >= writes
    assert grew("uhaha_storage_save_seconds_count") >= writes
    assert grew("uhaha_storage_save_seconds_sum") > 0
    assert value(after, "uhaha_raft_applied_index") <= value(after, "uhaha_raft_commit_index")
    assert value(after, "uhaha_raft_commit_index") <= value(after, "uhaha_raft_last_index")
    # The followers get there too: they commit and apply, but propose nothing.
    target = value(after, "uhaha_raft_commit_index")
    for p in cluster.followers:

        def caught_up(p: Proc = p) -> Samples | None:
            _, now = scrape(p)
            return now if value(now, "uhaha_raft_applied_index") >= target else None

        now = wait_for(caught_up, what=f"node {p.node_id} to apply index {target:.0f}")
        assert value(now, "uhaha_raft_commits_total") >= writes
        assert value(now, "uhaha_apply_seconds_count") >= writes
        assert value(now, "uhaha_raft_proposals_total") == 0


def test_peers_heartbeats_and_connections(cluster: Cluster) -> None:
    leader = cluster.leader
    peers = [p.node_id for p in cluster.followers]

    def heartbeats_timed() -> Samples | None:
        # The heartbeat histogram has a child per peer once its first answer came.
        _, samples = scrape(leader)
        name = "uhaha_peer_heartbeat_seconds_count"
        timed = all(has(samples, name, peer=p) and value(samples, name, peer=p) for p in peers)
        return samples if timed else None

    samples = wait_for(heartbeats_timed, what="a heartbeat answered by every follower")
    for peer in peers:
        assert value(samples, "uhaha_peer_connected", peer=peer) == 1
        assert value(samples, "uhaha_peer_messages_sent_total", peer=peer) > 0
        assert has(samples, "uhaha_peer_errors_total", peer=peer)
        assert value(samples, "uhaha_peer_heartbeat_seconds_sum", peer=peer) > 0
    # This scrape's own HTTP/1.1 connection; the peers' streams came in over HTTP/2.
    assert value(samples, "uhaha_connections", protocol="http1", tls="false") >= 1
    assert value(samples, "uhaha_connections_accepted_total", protocol="http2", tls="false") >= 1
    with leader.client(password=SECRET) as r:
        assert r.ping()
        _, samples = scrape(leader)
    assert value(samples, "uhaha_connections", protocol="resp", tls="false") >= 1
    assert value(samples, "uhaha_connections_accepted_total", protocol="resp", tls="false") >= 1


def test_snapshots_are_timed(cluster: Cluster) -> None:
    p = cluster.followers[-1]
    _, before = scrape(p)
    with client(p) as http:
        r = http.post("/cmd/raft", json=["snapshot", "now"])
    assert r.status_code == 200, r.text
    _, after = scrape(p)
    name = "uhaha_snapshot_seconds_count"
    assert value(after, name, operation="write") == value(before, name, operation="write") + 1
    assert value(after, "uhaha_snapshot_seconds_sum", operation="write") > 0
    assert value(after, "uhaha_raft_snapshot_index") > 0


def counter_app(name: str) -> App:
    app = App(name, initial_data={"n": 0}, json_snapshots=True)

    @app.write("incr")
    def incr(m: Machine, args: list[str]) -> int:
        m.data["n"] += 1
        n: int = m.data["n"]
        return n

    return app


def test_uhaha_loop_asyncio_picks_asyncios_event_loop(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path)
    try:
        node = c.add("1", start=False)
        node.extra_env["UHAHA_LOOP"] = "asyncio"
        node.start()
        c.wait_leader([node])
        with httpx.Client(base_url=f"http://{node.address}", timeout=10) as http:
            _, samples = parse(http.get("/metrics").text)
        assert (
            value(
                samples,
                "uhaha_info",
                app="uhaha",
                version=uhaha.__version__,
                id="1",
                loop="asyncio",
            )
            == 1
        )
    finally:
        print(c.logs())
        c.close()


async def test_nodes_in_one_process_have_registries_of_their_own(tmp_path: Path) -> None:
    default = {f.name for f in prometheus_client.REGISTRY.collect()}
    async with (
        serve(counter_app("one"), tmp_path / "one") as a,
        serve(counter_app("two"), tmp_path / "two") as b,
        httpx.AsyncClient(timeout=10) as http,
    ):
        for _ in range(3):
            assert (await http.post(f"http://{a}/cmd/incr")).status_code == 200
        _, one = parse((await http.get(f"http://{a}/metrics")).text)
        _, two = parse((await http.get(f"http://{b}/metrics")).text)
    # Started inside a program, a node runs on that program's loop.
    assert value(one, "uhaha_info", app="one", version="0.0.0", id="1", loop="asyncio") == 1
    assert value(two, "uhaha_info", app="two", version="0.0.0", id="1", loop="asyncio") == 1
    assert value(one, "uhaha_apply_seconds_count") >= value(two, "uhaha_apply_seconds_count") + 3
    assert {f.name for f in prometheus_client.REGISTRY.collect()} == default
    assert not any(name.startswith("uhaha") for name in default)
    NodeMetrics()  # yet another: no clash with the nodes above either
