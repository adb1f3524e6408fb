"""Issue 7's security promises, with real clients against real node processes:
a private CA (each server its own certificate), mutual TLS, wrong CAs refused,
wrong secrets refused and logged without the secret, administrative commands
refused before AUTH, app routes behind --auth, and the --limit flag."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import redis

from .harness import ROOT, Proc, ProcCluster, wait_for
from .pki import CA, Pair

TICKET = [sys.executable, str(ROOT / "examples" / "ticket.py")]
WEBTICKET = [sys.executable, str(ROOT / "examples" / "webticket.py")]
KVDB = [sys.executable, str(ROOT / "examples" / "kvdb.py")]


def tls_client(p: Proc, ca: Path, cert: Pair | None = None, **kw: Any) -> redis.Redis:
    extra: dict[str, Any] = {}
    if cert is not None:
        extra = {"ssl_certfile": str(cert.cert), "ssl_keyfile": str(cert.key)}
    return redis.Redis(
        host=p.host, port=p.port, ssl=True, ssl_ca_certs=str(ca), socket_timeout=20,
        decode_responses=True, **extra, **kw,
    )  # fmt: skip


def tls_call(p: Proc, ca: Path, *args: str, cert: Pair | None = None) -> Any:
    with tls_client(p, ca, cert) as r:
        return r.execute_command(*args)


def redis_cli(
    p: Proc, *args: str, tls: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["redis-cli", "-h", p.host, "-p", str(p.port), *(tls or []), *args],
        capture_output=True, text=True, timeout=40, check=False,
    )  # fmt: skip


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", *args],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip


def form(c: ProcCluster, ca: Path, flags: dict[str, list[str]], client: Pair | None = None) -> Proc:
    """Start nodes 1..3 (each with its own flags) and wait for 3 members over TLS."""
    first = c.add("1", extra=flags["1"])
    for nid in ("2", "3"):
        c.add(nid, join=first.address, extra=flags[nid])

    def three() -> bool:
        leader = tls_call(first, ca, "RAFT", "LEADER", cert=client)
        owner = next(p for p in c.procs.values() if p.address == leader)
        return len(tls_call(owner, ca, "RAFT", "SERVER", "LIST", cert=client)) == 3

    wait_for(three, timeout=40, what="three members over TLS")
    leader = tls_call(first, ca, "RAFT", "LEADER", cert=client)
    return next(p for p in c.procs.values() if p.address == leader)


def test_private_ca_each_server_its_own_certificate(tmp_path: Path) -> None:
    ca, rogue = CA(tmp_path / "ca"), CA(tmp_path / "rogue", name="someone else")
    pairs = {nid: ca.issue(f"node{nid}") for nid in ("1", "2", "3")}
    flags = {
        nid: ["--tls-cert", str(p.cert), "--tls-key", str(p.key), "--tls-ca", str(ca.cert)]
        for nid, p in pairs.items()
    }
    c = ProcCluster(tmp_path / "run", program=TICKET)
    try:
        leader = form(c, ca.cert, flags)
        assert tls_call(leader, ca.cert, "TICKET") == 1
        out = redis_cli(leader, "TICKET", tls=["--tls", "--cacert", str(ca.cert)])
        assert out.stdout.strip() == "2", out
        ok = curl("--cacert", str(ca.cert), "-X", "POST", f"https://{leader.address}/cmd/ticket")
        assert ok.stdout == "200"
        # Clients that trust another CA cannot be fooled into talking to us.
        bad = redis_cli(leader, "PING", tls=["--tls", "--cacert", str(rogue.cert)])
        assert "PONG" not in bad.stdout
        assert "certificate verify failed" in (bad.stdout + bad.stderr)
        assert curl("--cacert", str(rogue.cert), f"https://{leader.address}/healthz").stdout in (
            "000",
            "",
        )
        try:
            tls_call(leader, rogue.cert, "PING")
            raise AssertionError("a client trusting another CA connected")
        except redis.ConnectionError as e:
            assert "certificate verify failed" in str(e)
        # A server whose certificate another CA signed cannot join: neither
        # side trusts the other.
        intruder = rogue.issue("node4")
        n4 = c.add(
            "4",
            join=leader.address,
            extra=["--tls-cert", str(intruder.cert), "--tls-key", str(intruder.key),
                   "--tls-ca", str(rogue.cert)],
        )  # fmt: skip
        wait_for(
            lambda: "certificate verify failed" in n4.log(), timeout=30, what="the join refused"
        )
        assert len(tls_call(leader, ca.cert, "RAFT", "SERVER", "LIST")) == 3
    finally:
        print(c.logs())
        c.close()


def test_mutual_tls_every_connection_shows_a_certificate(tmp_path: Path) -> None:
    ca, rogue = CA(tmp_path / "ca"), CA(tmp_path / "rogue", name="someone else")
    pairs = {nid: ca.issue(f"node{nid}") for nid in ("1", "2", "3")}
    client, stranger = ca.issue("client"), rogue.issue("stranger")
    flags = {
        nid: ["--tls-cert", str(p.cert), "--tls-key", str(p.key), "--tls-ca", str(ca.cert),
              "--tls-client-certs"]
        for nid, p in pairs.items()
    }  # fmt: skip
    c = ProcCluster(tmp_path / "run", program=TICKET)
    try:
        leader = form(c, ca.cert, flags, client=client)  # the peers showed theirs to join
        assert tls_call(leader, ca.cert, "TICKET", cert=client) == 1
        with_cert = ["--tls", "--cacert", str(ca.cert), "--cert", str(client.cert),
                     "--key", str(client.key)]  # fmt: skip
        assert redis_cli(leader, "TICKET", tls=with_cert).stdout.strip() == "2"
        no_cert = redis_cli(leader, "PING", tls=["--tls", "--cacert", str(ca.cert)])
        assert "PONG" not in no_cert.stdout
        wrong_cert = ["--tls", "--cacert", str(ca.cert), "--cert", str(stranger.cert),
                      "--key", str(stranger.key)]  # fmt: skip
        assert "PONG" not in redis_cli(leader, "PING", tls=wrong_cert).stdout
        url = f"https://{leader.address}/cmd/ticket"
        https = ["--cacert", str(ca.cert), "-X", "POST", url]
        assert curl("--cert", str(client.cert), "--key", str(client.key), *https).stdout == "200"
        assert curl(*https).stdout in ("000", "")
        for who in (None, stranger):
            try:
                tls_call(leader, ca.cert, "PING", cert=who)
                raise AssertionError("a client without a trusted certificate got an answer")
            except redis.ConnectionError:
                pass
        # Still serving the clients that do show one.
        assert tls_call(leader, ca.cert, "TICKET", cert=client) == 4  # curl took 3
    finally:
        print(c.logs())
        c.close()


def test_wrong_secrets_are_refused_and_logged_without_the_secret(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path, program=WEBTICKET)
    secret, guess = "correct-horse-battery", "guessed-wrong-xyzzy"
    try:
        node = c.add("1", extra=["--auth", secret])
        good = {"password": secret}
        wait_for(lambda: node.client(**good).ping(), what="the node up")
        # Before AUTH, nothing but AUTH/HELLO/QUIT; administrative commands included.
        with node.client(protocol=2) as anon:
            for args in (
                ["PING"],
                ["TICKET"],
                ["RAFT", "SNAPSHOT", "NOW"],
                ["RAFT", "SERVER", "REMOVE", "1"],
                ["RAFT", "TRANSFER", "2"],
                ["CLUSTER", "INFO"],
            ):
                try:
                    anon.execute_command(*args)
                    raise AssertionError(f"{args} answered without AUTH")
                except redis.AuthenticationError:
                    pass
                except redis.ResponseError as e:
                    assert str(e).startswith("Authentication required"), e
        out = redis_cli(node, "-a", guess, "--no-auth-warning", "PING")
        assert "WRONGPASS" in out.stderr and "NOAUTH" in out.stdout, out
        base = f"http://{node.address}"
        for path, method in (("/cmd/ticket", "POST"), ("/status", "GET"), ("/next", "GET")):
            r = httpx.request(method, base + path, headers={"Authorization": f"Bearer {guess}"})
            assert r.status_code == 401, (path, r.text)
            assert httpx.request(method, base + path).status_code == 401
        snap = httpx.post(base + "/cmd/raft", json=["snapshot", "now"])
        assert snap.status_code == 401
        bearer = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(base + "/next", headers=bearer).json() == {"ticket": 1}
        with node.client(**good) as r:
            assert r.execute_command("RAFT", "SNAPSHOT", "LIST") in ([], None, {})
            assert len(r.execute_command("RAFT", "SERVER", "LIST")) == 1
            assert r.execute_command("TICKET") == 2
        wait_for(
            lambda: "authentication failed" in node.log() and "over HTTP" in node.log(),
            what="the failures logged",
        )
        text = node.log()
        assert "over RESP from 127.0.0.1:" in text
        assert guess not in text and secret not in text
    finally:
        print(c.logs())
        c.close()


def test_limit_flag_closes_only_the_offending_connection(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path, program=KVDB)
    flags = ["--limit", "resp-bulk-bytes=1k", "--limit", "http-body-bytes=2k",
             "--limit=resp-array=8"]  # fmt: skip
    try:
        node = c.add("1", extra=flags)
        c.wait_leader([node])
        with node.client() as bystander:
            assert bystander.set("a", "1")
            with node.client() as big:
                try:
                    big.set("b", "x" * 2048)
                    raise AssertionError("an over-limit bulk string was accepted")
                except redis.ResponseError as e:
                    assert "bulk length 2048 exceeds the limit of 1024" in str(e)
                try:
                    big.execute_command("DEL", *[f"k{i}" for i in range(20)])
                    raise AssertionError("an over-limit command was accepted")
                except redis.RedisError as e:
                    assert "exceeds the limit of 8" in str(e)
            assert bystander.get("a") == "1"
            assert bystander.get("b") is None
        r = httpx.post(f"http://{node.address}/cmd/set", json=["c", "y" * 3000])
        assert r.status_code == 413 and "limit 2048 bytes" in r.json()["error"]
        r = httpx.post(f"http://{node.address}/cmd/set", json=["c", "small"])
        assert r.status_code == 200
        bad = subprocess.run(
            [*KVDB, "--limit", "resp-pending=lots", "-d", str(tmp_path / "never")],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines() == [
            "kvdb.py: --limit resp-pending needs a positive whole number, not 'lots'"
        ]
    finally:
        print(c.logs())
        c.close()


def readme_ca_script() -> list[str]:
    """The lines of the README's "Deploying with a private CA" shell block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("**Deploying with a private CA**", 1)[1]
    body = block.split("```sh\n", 1)[1].split("```", 1)[0]
    return body.splitlines()


def test_readme_private_ca_walkthrough_works_as_written(tmp_path: Path) -> None:
    lines = readme_ca_script()
    # The certificate part runs exactly as written; the servers are started
    # by the harness (as the README's lines say, on free ports).
    cut = next(i for i, line in enumerate(lines) if line.startswith("TLS="))
    subprocess.run(["bash", "-euc", "\n".join(lines[:cut])], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    flags = lines[cut].split("=", 1)[1].strip('"').split()
    assert flags == ["--tls-ca", "ca.pem", "--auth", "@secret"]
    starts = [line for line in lines[cut + 1 :] if line.startswith("python examples/ticket.py")]
    assert len(starts) == 3
    secret = (tmp_path / "secret").read_text().strip()
    ca = tmp_path / "ca.pem"
    c = ProcCluster(tmp_path / "run", program=TICKET)
    try:
        procs: list[Proc] = []
        for n, line in enumerate(starts, start=1):
            words = line.rstrip("&").split()
            cert, key = words[words.index("--tls-cert") + 1], words[words.index("--tls-key") + 1]
            extra = ["--tls-cert", str(tmp_path / cert), "--tls-key", str(tmp_path / key),
                     "--tls-ca", str(ca), "--auth", f"@{tmp_path / 'secret'}"]  # fmt: skip
            procs.append(c.add(str(n), join=procs[0].address if procs else None, extra=extra))

        def members() -> int:
            with tls_client(procs[0], ca, password=secret) as r:
                leader = r.execute_command("RAFT", "LEADER")
            owner = next(p for p in procs if p.address == leader)
            with tls_client(owner, ca, password=secret) as r:
                return len(r.execute_command("RAFT", "SERVER", "LIST"))

        wait_for(lambda: members() == 3, timeout=40, what="the README's cluster")
        cli = next(line for line in lines if line.startswith("redis-cli"))
        assert "--tls --cacert ca.pem" in cli and cli.endswith("TICKET")
        with tls_client(procs[0], ca, password=secret) as r:
            leader_addr = r.execute_command("RAFT", "LEADER")
        leader = next(p for p in procs if p.address == leader_addr)
        out = redis_cli(leader, "-a", secret, "--no-auth-warning", "TICKET",
                        tls=["--tls", "--cacert", str(ca)])  # fmt: skip
        assert out.stdout.strip() == "1", out
        got = curl("--cacert", str(ca), "-H", f"Authorization: Bearer {secret}", "-X", "POST",
                   f"https://{leader.address}/cmd/ticket")  # fmt: skip
        assert got.stdout == "200"
    finally:
        print(c.logs())
        c.close()


def test_slow_requests_are_cut_off_after_they_begin(tmp_path: Path) -> None:
    """Slowloris past the protocol sniffing: a RESP command or an HTTP body
    trickled a byte at a time is cut off by its timeout, while a well-behaved
    client is served throughout."""
    c = ProcCluster(tmp_path, program=KVDB)
    flags = ["--limit", "resp-request-timeout=1", "--limit", "http-body-timeout=1"]
    try:
        node = c.add("1", extra=flags)
        c.wait_leader([node])

        def trickle(first: bytes, rest: bytes, until: bytes) -> bytes:
            """Send ``first``, then ``rest`` a byte every 0.2 s until the node
            answers or closes; return what it sent (up to ``until``)."""
            with socket.create_connection((node.host, node.port), timeout=10) as s:
                s.sendall(first)
                got = b""
                for b in rest:  # bounded: len(rest) * 0.2 s at most
                    try:
                        s.sendall(bytes([b]))
                        s.settimeout(0.2)
                        got = s.recv(4096)
                        break  # an answer, or b"" for a close: stop sending
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                s.settimeout(5)
                with contextlib.suppress(OSError):
                    while until not in got and (chunk := s.recv(4096)):
                        got += chunk
                return got

        with node.client() as bystander:
            assert bystander.set("k", "v")
            resp = trickle(b"*3\r\n$3\r\nSET\r\n", b"$1\r\nk\r\n$100\r\n" + b"x" * 200, b"\r\n")
            assert b"command not completed within 1 s" in resp
            http = trickle(
                b"POST /cmd/set HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n",
                b'["k", "' + b"y" * 190,
                b"}",
            )
            assert http.startswith(b"HTTP/1.1 408 "), http[:100]
            assert b"request body not received within 1 s" in http
            assert bystander.get("k") == "v"
    finally:
        print(c.logs())
        c.close()
