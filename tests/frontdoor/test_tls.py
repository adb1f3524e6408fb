"""Every protocol over TLS on the one port: HTTP/2 chosen by ALPN, the rest sniffed."""

from __future__ import annotations

import json
import ssl

import httpx
import redis.asyncio as aioredis

from tests.frontdoor.conftest import Certificate, OpenDoor, run
from tests.resp.doubles import read_until_closed
from uhaha.frontdoor import Limits


def client_context(certificate: Certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate.cert))


async def test_everything_over_tls(open_door: OpenDoor, certificate: Certificate) -> None:
    door = await open_door(ssl=certificate.server_context())
    url = f"https://127.0.0.1:{door.port}"
    verify = client_context(certificate)

    async with httpx.AsyncClient(verify=verify) as h1:
        response = await h1.get(f"{url}/hello")
        assert (response.http_version, response.json()["http_version"]) == ("HTTP/1.1", "1.1")
    async with httpx.AsyncClient(verify=verify, http2=True) as h2:  # ALPN offers h2
        response = await h2.post(f"{url}/echo", content=b"secret")
        assert (response.http_version, response.content) == ("HTTP/2", b"secret")

    cacert = str(certificate.cert)
    code, out = await run("curl", "-sS", "--cacert", cacert, f"{url}/hello")
    assert code == 0 and json.loads(out)["http_version"] == "2"
    code, out = await run("curl", "-sS", "--http1.1", "--cacert", cacert, f"{url}/hello")
    assert code == 0 and json.loads(out)["http_version"] == "1.1"

    code, out = await run("redis-cli", "-p", str(door.port), "--tls", "--cacert", cacert, "PING")
    assert (code, out) == (0, "PONG\n")
    client = aioredis.Redis(port=door.port, ssl=True, ssl_ca_certs=cacert)
    try:
        assert await client.echo("over tls") == b"over tls"
    finally:
        await client.aclose()

    reader, writer = await door.connect()
    writer.write(b"PING\r\n")  # plain text on a TLS port: the handshake fails
    assert b"PONG" not in await read_until_closed(reader)
    writer.close()


async def test_tls_handshake_that_never_comes(
    open_door: OpenDoor, certificate: Certificate
) -> None:
    door = await open_door(ssl=certificate.server_context(), limits=Limits(sniff_timeout=0.5))
    reader, writer = await door.connect()  # connects, then says nothing
    assert await read_until_closed(reader) == b""
    writer.close()
