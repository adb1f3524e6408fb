"""Connection-level commands: HELLO, AUTH, CLIENT, COMMAND, SELECT, and NOAUTH."""

from __future__ import annotations

from tests.resp.conftest import Running, Start
from tests.resp.doubles import command, read_replies, read_until_closed
from uhaha.resp import Error, secret_checker

NOAUTH = Error("NOAUTH Authentication required.")
WRONGPASS = Error("WRONGPASS invalid username-password pair or user is disabled.")


async def test_hello_switches_protocol_and_reports_the_server(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("HELLO", "3"))
    raw = await reader.readuntil(b"modules\r\n*0\r\n")
    assert raw.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nuhaha\r\n")
    writer.write(command("HELLO") + command("HELLO", "2") + command("HELLO", "4"))
    writer.write(command("HELLO", "x") + command("HELLO", "3", "BOGUS"))
    again, two, four, bad, bogus = await read_replies(reader, 5)
    assert isinstance(again, dict) and again[b"proto"] == 3 and again[b"id"] >= 1
    assert isinstance(two, list) and two[:4] == [b"server", b"uhaha", b"version", two[3]]
    assert two[4:6] == [b"proto", 2] and two[8:] == [
        b"mode",
        b"standalone",
        b"role",
        b"master",
        b"modules",
        [],
    ]
    assert four == Error("NOPROTO unsupported protocol version")
    assert bad == Error("ERR Protocol version is not an integer or out of range")
    assert bogus == Error("ERR Syntax error in HELLO option 'BOGUS'")
    writer.close()


async def test_client_select_and_command(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(
        command("CLIENT", "SETINFO", "LIB-NAME", "x")
        + command("CLIENT", "SETNAME", "me")
        + command("CLIENT", "GETNAME")
        + command("CLIENT", "ID")
        + command("CLIENT", "SETNAME", "has space")
        + command("CLIENT", "NOPE")
        + command("SELECT", "0")
        + command("SELECT", "1")
        + command("COMMAND")
        + command("COMMAND", "COUNT")
        + command("COMMAND", "DOCS")
        + command("WHOAMI")
    )
    replies = await read_replies(reader, 12)
    assert replies[:3] == [b"OK", b"OK", b"me"]
    assert isinstance(replies[3], int)
    assert replies[4] == Error(
        "ERR Client names cannot contain spaces, newlines or special characters."
    )
    assert replies[5] == Error("ERR unknown subcommand 'NOPE'. Try CLIENT HELP.")
    assert replies[6:11] == [b"OK", Error("ERR DB index is out of range"), [], 0, []]
    conn_id, name, proto, remote = replies[11]
    assert (conn_id, name, proto) == (replies[3], b"me", 2)
    assert remote.startswith(b"127.0.0.1:")
    writer.close()


async def test_auth_is_required_when_configured(start_resp: Start) -> None:
    running = await start_resp(check_auth=secret_checker("s3cret"))
    reader, writer = await running.connect()
    writer.write(
        command("PING")
        + command("CLIENT", "ID")
        + command("HELLO", "3")
        + command("AUTH", "wrong")
        + command("PING")
        + command("AUTH", "s3cret")
        + command("PING")
    )
    replies = await read_replies(reader, 7)
    assert replies[:2] == [NOAUTH, NOAUTH]
    assert isinstance(replies[2], Error) and replies[2].startswith("NOAUTH HELLO must be called")
    assert replies[3:] == [WRONGPASS, NOAUTH, b"OK", b"PONG"]
    assert [a[0] for a in running.dispatcher.submitted] == [b"PING"]
    writer.close()


async def test_hello_with_auth_and_setname(start_resp: Start) -> None:
    running = await start_resp(check_auth=secret_checker(b"pw"))
    reader, writer = await running.connect()
    writer.write(command("HELLO", "3", "AUTH", "default", "bad"))
    writer.write(command("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app"))
    writer.write(command("CLIENT", "GETNAME"))
    bad, hello, name = await read_replies(reader, 3)
    assert bad == WRONGPASS
    assert isinstance(hello, dict) and hello[b"proto"] == 3
    assert name == b"app"
    writer.close()


async def test_unauthenticated_clients_get_tight_limits(start_resp: Start) -> None:
    running = await start_resp(check_auth=secret_checker("pw"))
    reader, writer = await running.connect()
    writer.write(command("AUTH", "pw") + command("ECHO", "x" * 20_000))
    assert await read_replies(reader, 2) == [b"OK", b"x" * 20_000]
    writer.close()
    reader, writer = await running.connect()
    writer.write(command("ECHO", "x" * 20_000))
    data = await read_until_closed(reader)
    assert data == b"-ERR Protocol error: bulk length 20000 exceeds the limit of 16384 bytes\r\n"
    writer.close()


async def test_auth_without_a_password_configured(resp: Running) -> None:
    reader, writer = await resp.connect()
    writer.write(command("AUTH", "x") + command("AUTH", "default", "x") + command("AUTH"))
    one, two, none = await read_replies(reader, 3)
    assert isinstance(one, Error) and one.startswith("ERR AUTH <password> called without")
    assert two == b"OK"
    assert none == Error("ERR wrong number of arguments for 'auth' command")
    writer.close()


async def test_quit_is_allowed_before_auth(start_resp: Start) -> None:
    running = await start_resp(check_auth=secret_checker("pw"))
    reader, writer = await running.connect()
    writer.write(b"QUIT\r\n")
    assert await read_until_closed(reader) == b"+OK\r\n"
    writer.close()


async def test_a_failing_auth_callback_is_an_error_reply(start_resp: Start) -> None:
    def broken(password: bytes) -> bool:
        raise RuntimeError("secret store unavailable")

    running = await start_resp(check_auth=broken)
    reader, writer = await running.connect()
    writer.write(command("AUTH", "x") + command("PING"))
    assert await read_replies(reader, 2) == [Error("ERR secret store unavailable"), NOAUTH]
    writer.close()


async def test_config_get_is_answered_harmlessly(resp: Running) -> None:
    """redis-benchmark asks CONFIG GET save and appendonly when it starts: the
    two persistence settings are answered (read-only), everything else is not
    there."""
    reader, writer = await resp.connect()
    writer.write(
        command("CONFIG", "GET", "save")
        + command("CONFIG", "GET", "APPENDONLY")
        + command("CONFIG", "GET", "*")
        + command("CONFIG", "GET", "maxmemory", "a*")
        + command("CONFIG", "GET")
        + command("CONFIG", "SET", "save", "")
    )
    replies = await read_replies(reader, 6)
    assert replies[0] == [b"save", b""]
    assert replies[1] == [b"appendonly", b"yes"]
    assert replies[2] == [b"save", b"", b"appendonly", b"yes"]
    assert replies[3] == [b"appendonly", b"yes"]
    assert replies[4] == Error("ERR wrong number of arguments for 'config|get' command")
    assert replies[5] == Error("ERR CONFIG is not supported: uhaha is configured with flags")
    writer.close()
