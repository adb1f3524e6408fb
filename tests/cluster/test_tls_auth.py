"""The README's TLS and auth walkthrough: a 3-node cluster with --tls-cert,
--tls-key and --auth, driven by redis-cli --tls, redis-py with TLS and curl."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis

from .harness import ROOT, ProcCluster, wait_for

TICKET = [sys.executable, str(ROOT / "examples" / "ticket.py")]


def make_cert(where: Path) -> tuple[Path, Path]:
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=uhaha-example",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_tls_and_auth_cluster(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    flags = ["--tls-cert", str(cert), "--tls-key", str(key), "--auth", "my-secret"]
    c = ProcCluster(tmp_path, program=TICKET)
    # The harness talks plain RESP; this cluster needs TLS and the secret.
    tls = {"ssl": True, "ssl_ca_certs": str(cert), "password": "my-secret"}
    try:
        first = c.add("1", extra=flags)
        for nid in ("2", "3"):
            c.add(nid, join=first.address, extra=flags)

        def cli(port: int, *args: str, secret: bool = True) -> str:
            cmd = ["redis-cli", "-p", str(port), "--tls", "--cacert", str(cert)]
            if secret:
                cmd += ["-a", "my-secret", "--no-auth-warning"]
            out = subprocess.run(
                [*cmd, *args], capture_output=True, text=True, timeout=10, check=True
            )
            return out.stdout.strip()

        def members() -> int:
            try:
                return len(cli(first.port, "RAFT", "SERVER", "LIST").split("\n")) // 8
            except subprocess.CalledProcessError:
                return 0

        wait_for(lambda: members() == 3, timeout=30, what="three members over TLS")
        leader_addr = cli(first.port, "RAFT", "LEADER")
        leader = next(p for p in c.procs.values() if p.address == leader_addr)
        assert int(cli(leader.port, "TICKET")) >= 1
        with redis.Redis(host="127.0.0.1", port=leader.port, **tls) as r:  # type: ignore[arg-type]
            assert r.execute_command("TICKET") >= 2
        out = subprocess.run(
            ["curl", "-s", "--cacert", str(cert), "-H", "Authorization: Bearer my-secret",
             "-X", "POST", f"https://{leader.address}/cmd/ticket"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        assert '"result":' in out.stdout
        assert cli(leader.port, "TICKET", secret=False).startswith("NOAUTH")
        wrong = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(cert),
             "-H", "Authorization: Bearer nope", "-X", "POST",
             f"https://{leader.address}/cmd/ticket"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        assert wrong.stdout == "401"
        plain = subprocess.run(
            ["redis-cli", "-p", str(leader.port), "PING"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert "PONG" not in plain.stdout
    finally:
        print(c.logs())
        c.close()
