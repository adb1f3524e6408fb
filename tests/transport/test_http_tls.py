"""The HTTP transport over TLS: h2 negotiated with ALPN, certificates checked."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from uhaha.raft.messages import SnapshotChunk

from .harness import Peer, wait_until
from .strategies import one_of_each


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, as uhaha users make with --tls-cert."""
    path = tmp_path_factory.mktemp("tls")
    crt, key = path / "node.crt", path / "node.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(crt)],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return str(crt), str(key)


def client_context(cafile: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


async def test_messages_flow_over_tls(cert: tuple[str, str]) -> None:
    ctx = client_context(cert[0])
    one = Peer("1", cert=cert, ssl=ctx, auth="x")
    two = Peer("2", cert=cert, ssl=ctx, auth="x")
    await one.start({"2": two.address})
    await two.start({"1": one.address})
    try:
        msgs = one_of_each("1", "2")
        one.transport.send(msgs)
        got = await two.inbox.wait_for(len(msgs))
        assert [m for m in got if not isinstance(m, SnapshotChunk)] == [
            m for m in msgs if not isinstance(m, SnapshotChunk)
        ]
        two.transport.send(one_of_each("2", "1")[:1])
        await one.inbox.wait_for(1)
    finally:
        await one.transport.close()
        await two.transport.close()
        await one.stop()
        await two.stop()


async def test_an_untrusted_certificate_is_refused(cert: tuple[str, str]) -> None:
    # The client trusts only the system's CAs, not the self-signed certificate.
    one = Peer("1", ssl=client_context(None))
    two = Peer("2", cert=cert)
    await two.start({})
    await one.start({"2": two.address})
    try:
        one.transport.send(one_of_each("1", "2")[:1])
        await wait_until(
            lambda: "CERTIFICATE_VERIFY_FAILED" in one.transport.stats()["2"].last_error
        )
        assert two.inbox.messages == []
    finally:
        await one.stop()
        await two.stop()
