"""Write the hand-made seeds of fuzz/corpus/ (the hostile inputs the tests replay).

    python fuzz/make_corpus.py

Each seed is one file named after what it tries; the script (re)writes its
own files and leaves any other file (a minimized find of a long fuzz run)
alone. The resp and sniff seeds are, after their first byte (see each
harness), exactly what a client sends on one connection, so the cluster test
replays them against real nodes too; the http_args seeds describe one HTTP
request each. Keys that seeds write start with `fz:`.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a program: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.fuzz_http_args import Request, encode_input
from fuzz.runner import CORPUS

__all__ = ["HTTP_ARGS", "RESP", "SNIFF", "cmd", "main"]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def cmd(*args: str | bytes) -> bytes:
    """A RESP request: an array of bulk strings."""
    raw = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in raw)


def _garbage(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _http(method: str, target: str, body: bytes = b"", **headers: str) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: fuzz\r\n"
    for name, value in headers.items():
        head += f"{name.replace('_', '-')}: {value}\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


# The resp harness's first byte: 0x80 = the real limits, 0x00 = small ones
# (see fuzz_resp.SMALL); the low bits give the chunk size.
REAL, SMALL = 0x80 | 6, 0x00 | 2

SNAPSHOT = ("RAFT", "SNAPSHOT")
RESP: dict[str, tuple[int, bytes]] = {
    "ping-inline": (REAL, b"PING\r\n"),
    "pipeline-mixed": (
        REAL,
        cmd("PING") + b"ECHO hi\r\n" + cmd("ECHO", "a\r\nb") + b"\r\n\r\n" + cmd("GET", "fz:none"),
    ),
    "pipeline-200-pings": (REAL, cmd("PING") * 200),
    "truncated-array-header": (REAL, b"*3"),
    "truncated-after-array-header": (REAL, b"*3\r\n"),
    "truncated-bulk-header": (REAL, b"*2\r\n$4"),
    "truncated-bulk-data": (REAL, b"*2\r\n$4\r\nECHO\r\n$10\r\nabc"),
    "truncated-final-crlf": (REAL, b"*1\r\n$4\r\nPING\r"),
    "truncated-inline": (REAL, b"ECHO unfinished"),
    "missing-crlf-after-bulk": (REAL, b"*1\r\n$4\r\nPINGxx"),
    "negative-array-length": (REAL, b"*-1\r\n"),
    "negative-array-length-int64": (REAL, b"*-9223372036854775808\r\n"),
    "negative-bulk-length": (REAL, b"*1\r\n$-1\r\n"),
    "negative-bulk-length-int32": (REAL, b"*2\r\n$4\r\nECHO\r\n$-2147483649\r\n"),
    "huge-array-length": (REAL, b"*99999999999999999999\r\n"),
    "huge-array-length-int64": (REAL, b"*9223372036854775808\r\n"),
    "array-length-over-limit": (REAL, b"*1048577\r\n"),
    "huge-bulk-length": (REAL, b"*1\r\n$99999999999999999999\r\n"),
    "bulk-length-over-limit": (REAL, b"*1\r\n$67108865\r\n"),
    "bulk-length-int64": (REAL, b"*2\r\n$4\r\nECHO\r\n$9223372036854775807\r\n"),
    "length-header-too-long": (REAL, b"*" + b"1" * 40 + b"\r\n"),
    "length-plus-sign": (REAL, b"*+1\r\n$4\r\nPING\r\n"),
    "length-space": (REAL, b"* 1\r\n$4\r\nPING\r\n"),
    "length-underscore": (REAL, b"*1_0\r\n"),
    "length-arabic-digit": (REAL, b"*\xd9\xa1\r\n$4\r\nPING\r\n"),
    "length-hex": (REAL, b"*0x1\r\n"),
    "element-simple-string": (REAL, b"*1\r\n+PING\r\n"),
    "element-integer": (REAL, b"*1\r\n:1\r\n"),
    "element-nested-array": (REAL, b"*1\r\n*1\r\n$4\r\nPING\r\n"),
    "element-resp3-types": (REAL, b"*3\r\n%1\r\n~1\r\n_\r\n"),
    "bare-cr-in-header": (REAL, b"*1\r$4\r\nPING\r\n"),
    "lf-only-frames": (REAL, b"*1\n$4\nPING\n"),
    "empty-requests": (REAL, b"*0\r\n" + cmd("") + b"\r\n \r\n"),
    "nul-command": (REAL, cmd(b"\x00") + b"\x00\r\n"),
    "inline-unbalanced-double-quote": (REAL, b'SET "fz:a\r\n'),
    "inline-unbalanced-single-quote": (REAL, b"SET 'fz:a'b\r\n"),
    "inline-escapes": (REAL, b'ECHO "\\x4\\xzz\\xff\\n\\\\" \'it\\\'s\' "\\""\r\n'),
    "inline-invalid-utf8": (REAL, b"ECHO \xff\xfe \xc0\xaf \xed\xa0\x80\r\n"),
    "inline-nul-and-controls": (REAL, b"ECHO a\x00b \x01\x1b[2J\r\n"),
    "inline-line-over-limit": (SMALL, b"ECHO " + b"a" * 200 + b"\r\n"),
    "inline-args-over-limit": (SMALL, b"ECHO" + b" x" * 20 + b"\r\n"),
    "array-over-small-limit": (SMALL, cmd(*["x"] * 9)),
    "bulk-over-small-limit": (SMALL, cmd("ECHO", "x" * 65)),
    "request-over-small-limit": (SMALL, cmd("ECHO", *["y" * 60] * 5)),
    "invalid-utf8-command-name": (REAL, cmd(b"\xff\xfe") + cmd(b"G\xc3T", "x")),
    "invalid-utf8-arguments": (
        REAL,
        cmd("ECHO", b"\xff\xfe\xc3\x28")
        + cmd("GET", b"fz:\xff")
        + cmd("KEYS", b"fz:\xed\xa0\x80*")
        + cmd("DEL", b"fz:\xc0\xaf"),
    ),
    "invalid-utf8-set": (REAL, cmd("SET", b"fz:\xff\xfe", b"\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80")),
    "set-expire-junk": (
        REAL,
        cmd("SET", "fz:e", "v", "EX", "-1")
        + cmd("SET", "fz:e", "v", "EX", "0")
        + cmd("SET", "fz:e", "v", "EX", "99999999999999999999")
        + cmd("SET", "fz:e", "v", "EX", "9300000000")
        + cmd("SET", "fz:e", "v", "EX", "1e3")
        + cmd("SET", "fz:e", "v", "PX", "1"),
    ),
    "snapshot-read-traversal": (
        REAL,
        cmd(*SNAPSHOT, "READ", "../../etc/passwd")
        + cmd(*SNAPSHOT, "READ", "/etc/passwd")
        + cmd(*SNAPSHOT, "READ", "1-1-1\x00")
        + cmd(*SNAPSHOT, "READ", "1-1-1/../../../etc/passwd")
        + cmd(*SNAPSHOT, "READ", "%2e%2e%2f%2e%2e%2fetc%2fpasswd")
        + cmd(*SNAPSHOT, "READ", "\uff11-1-1"),
    ),
    "snapshot-file-absolute": (
        REAL,
        cmd(*SNAPSHOT, "FILE", "/etc/passwd")
        + cmd(*SNAPSHOT, "FILE", "../../../etc/passwd")
        + cmd(*SNAPSHOT, "FILE", "")
        + cmd(*SNAPSHOT, "FILE", "\x00"),
    ),
    "snapshot-read-ranges": (
        REAL,
        cmd(*SNAPSHOT, "READ", "1-1-1", "RANGE", "0", "99999999999999999999999")
        + cmd(*SNAPSHOT, "READ", "1-1-1", "RANGE", "-5", "3")
        + cmd(*SNAPSHOT, "READ", "1-1-1", "RANGE", "5", "1")
        + cmd(*SNAPSHOT, "READ", "1-1-1", "RANGE", "0", "9" * 1000)
        + cmd(*SNAPSHOT, "READ", "1-1-1", "RANGE", "0x10", "1e3")
        + cmd(*SNAPSHOT, "READ", "1-1-1", "RANGE")
        + cmd(*SNAPSHOT, "LIST", "extra"),
    ),
    "patterns": (
        REAL,
        cmd("RAFT", "INFO", "[[[")
        + cmd("RAFT", "INFO", "*" * 500)
        + cmd("KEYS", "*a" * 200 + "b")
        + cmd("KEYS", "[^\\")
        + cmd("KEYS", "fz:\\"),
    ),
    "hello-and-auth": (
        REAL,
        cmd("HELLO", "3")
        + cmd("HELLO", "99")
        + cmd("HELLO", "3", "AUTH", "x", "y")
        + cmd("HELLO", "3", "SETNAME")
        + cmd("AUTH", "x")
        + cmd("AUTH", "x", "y", "z")
        + cmd("HELLO", "2")
        + cmd("PING"),
    ),
    "unknown-and-dangerous-commands": (
        REAL,
        cmd("SHUTDOWN")
        + cmd("CONFIG", "SET", "dir", "/")
        + cmd("SLAVEOF", "127.0.0.1", "1")
        + cmd("DEBUG", "SEGFAULT")
        + cmd("FLUSHALL")
        + cmd("EVAL", "os.exit()", "0")
        + cmd("MODULE", "LOAD", "/tmp/x.so"),
    ),
    "quit-midway": (REAL, cmd("PING") + cmd("QUIT") + cmd("PING")),
    "monitor": (REAL, cmd("MONITOR") + cmd("PING") + cmd("MONITOR", "x")),
    "builtins-odd-arguments": (
        REAL,
        cmd("CLUSTER", "INFO")
        + cmd("CLUSTER", "NODES")
        + cmd("CLUSTER", "SLOTS")
        + cmd("CLUSTER", b"\xff")
        + cmd("MACHINE", "HUMAN", "x")
        + cmd("VERSION", "x")
        + cmd("BARRIER", "x")
        + cmd("RAFT", "LEADER", "x")
        + cmd("RAFT", "HELP")
        + cmd("RAFT")
        + cmd("ECHO")
        + cmd("PING", "a", "b"),
    ),
    "echo-every-byte": (REAL, cmd("ECHO", bytes(range(256)))),
    "binary-garbage-1": (REAL, _garbage(1, 2048)),
    "binary-garbage-2": (SMALL, _garbage(2, 2048)),
    "binary-garbage-after-star": (REAL, b"*" + _garbage(3, 1024)),
    "binary-garbage-lines": (REAL, b"\r\n".join(_garbage(n, 40) for n in range(10, 40))),
}

# The sniff harness's first byte: bit 6 = with the HELO and raising services.
PLAIN, SERVICES = 8, 0x40 | 8

SNIFF: dict[str, tuple[int, bytes]] = {
    "http-get": (PLAIN, _http("GET", "/healthz")),
    "http-10-lf-only": (PLAIN, b"GET /healthz HTTP/1.0\n\n"),
    "http-lowercase-method": (PLAIN, b"get /healthz HTTP/1.1\r\n\r\n"),
    "http-long-method": (PLAIN, b"ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n\r\n"),
    "http-version-2-line": (PLAIN, b"GET / HTTP/2.0\r\n\r\n"),
    "http-absolute-uri": (PLAIN, _http("GET", "http://fuzz/healthz")),
    "http-upgrade-h2c": (
        PLAIN,
        _http(
            "GET",
            "/healthz",
            Connection="Upgrade, HTTP2-Settings",
            Upgrade="h2c",
            HTTP2_Settings="AAMAAABkAAQAAP__",
        ),
    ),
    "http-upgrade-websocket": (
        PLAIN,
        _http(
            "GET",
            "/",
            Connection="Upgrade",
            Upgrade="websocket",
            Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ==",
            Sec_WebSocket_Version="13",
        ),
    ),
    "http-smuggling-cl-te": (
        PLAIN,
        b"POST /cmd/echo HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /status HTTP/1.1\r\n\r\n",
    ),
    "http-content-length-negative": (
        PLAIN,
        b"POST /cmd/echo HTTP/1.1\r\nHost: fuzz\r\nContent-Length: -1\r\n\r\n[]",
    ),
    "http-content-length-superscript": (
        PLAIN,
        b"POST /cmd/echo HTTP/1.1\r\nHost: fuzz\r\nContent-Length: \xb2\r\n\r\n[]",
    ),
    "http-content-length-huge": (
        PLAIN,
        b"POST /cmd/echo HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 99999999999999999999\r\n\r\n[]",
    ),
    "http-chunked-bad": (
        PLAIN,
        b"POST /cmd/echo HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ),
    "http-nul-in-target": (PLAIN, b"GET /cmd/echo?arg=\x00 HTTP/1.1\r\nHost: fuzz\r\n\r\n"),
    "http-not-ascii-target": (PLAIN, b"GET /cmd/echo?arg=\xff\x84 HTTP/1.1\r\nHost: fuzz\r\n\r\n"),
    "http-header-not-ascii": (
        PLAIN,
        b"GET /healthz HTTP/1.1\r\nHost: fuzz\r\nX-A: \xff\xfe\r\n\r\n",
    ),
    "http-header-no-colon": (PLAIN, b"GET /healthz HTTP/1.1\r\nHost fuzz\r\n\r\n"),
    "http-snapshot-traversal": (
        PLAIN,
        _http("GET", "/snapshots/..%2f..%2fetc%2fpasswd")
        + _http("GET", "/snapshots/%2e%2e")
        + _http("GET", "/snapshots/1-1-1%00")
        + _http("GET", "/snapshots/%2fetc%2fpasswd"),
    ),
    "http-path-traversal": (PLAIN, b"GET /../../etc/passwd HTTP/1.1\r\nHost: fuzz\r\n\r\n"),
    "http-json-invalid-utf8": (PLAIN, _http("POST", "/cmd/echo", b'["\xff\xfe", "\xc0\xaf"]')),
    "http-json-lone-surrogate": (PLAIN, _http("POST", "/cmd/set", b'["fz:s", "\\ud800"]')),
    "http-json-deep": (PLAIN, _http("POST", "/cmd/echo", b"[" * 1500 + b"]" * 1500)),
    "http-pipelined": (PLAIN, _http("GET", "/healthz") + _http("GET", "/cmd/echo?arg=x")),
    "h2-preface": (PLAIN, H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
    "h2-preface-truncated": (PLAIN, H2_PREFACE[:10]),
    "h2-preface-corrupt": (PLAIN, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"),
    "h2-preface-then-garbage": (PLAIN, H2_PREFACE + _garbage(4, 300)),
    "tls-client-hello": (PLAIN, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + _garbage(5, 160)),
    "undecided-method-and-target": (PLAIN, b"GET /" + b"a" * 600),
    "undecided-upper-word": (PLAIN, b"PING"),
    "resp-star": (PLAIN, b"*"),
    "resp-empty-lines": (PLAIN, b"\r\n\r\nPING\r\n"),
    "helo": (SERVICES, b"HELO there\n"),
    "helo-partial": (SERVICES, b"HEL"),
    "helo-lookalike": (SERVICES, b"HELP / HTTP/1.1\r\n\r\n"),
    "service-sniff-raises": (SERVICES, b"GET /\x00 HTTP/1.1\r\n\r\n"),
}


def _req(
    route: int,
    name: bytes = b"",
    body: bytes = b"",
    *,
    query: bytes = b"",
    header: bytes = b"",
    flags: int = 0,
) -> Request:
    return Request(route, flags, name, query, header, body)


POST, GET, PIPELINE, SNAP = 0, 1, 2, 3
HTTP_ARGS: dict[str, Request] = {
    "echo-strings-and-numbers": _req(
        POST,
        b"echo",
        b'["a", 1, 1.5, -0, 1e400, -1e400, 12345678901234567890, "\\u00fc", "\\u0000"]',
    ),
    "echo-args-object": _req(POST, b"echo", b'{"args": ["x", 2], "other": 1}'),
    "echo-empty-object": _req(POST, b"echo", b"{}"),
    "echo-null": _req(POST, b"echo", b"null"),
    "echo-no-body": _req(POST, b"echo"),
    "echo-whitespace-body": _req(POST, b"echo", b" \t\r\n "),
    "echo-chunked-body": _req(POST, b"echo", b'["a", "b"]', flags=1 | 4),
    "echo-booleans": _req(POST, b"echo", b"[true, false]"),
    "echo-null-argument": _req(POST, b"echo", b"[null]"),
    "echo-nested-argument": _req(POST, b"echo", b'[[1], {"a": 1}]'),
    "echo-string-body": _req(POST, b"echo", b'"just a string"'),
    "echo-number-body": _req(POST, b"echo", b"5"),
    "echo-args-not-a-list": _req(POST, b"echo", b'{"args": "x"}'),
    "invalid-json": _req(POST, b"echo", b'[1,]{"a":'),
    "invalid-json-single-quotes": _req(POST, b"echo", b"{'a': 1}"),
    "json-nan-alone": _req(POST, b"echo", b"NaN"),
    "json-invalid-utf8": _req(POST, b"echo", b'["\xff\xfe", "\xc0\xaf"]'),
    "json-utf16": _req(POST, b"echo", '["\u00e9"]'.encode("utf-16")),
    "json-lone-high-surrogate-write": _req(POST, b"set", b'["fz:s", "\\ud800"]'),
    "json-lone-high-surrogate-echo": _req(POST, b"echo", b'["\\udbff"]'),
    "json-escaped-byte-surrogate": _req(POST, b"echo", b'["\\udcff", "\\udc80x"]'),
    "json-surrogate-in-error": _req(POST, b"fail", b'["\\udcff"]'),
    "json-surrogate-pair": _req(POST, b"echo", b'["\\ud83d\\ude00"]'),
    "json-deep": _req(POST, b"echo", b"[" * 1500 + b"]" * 1500),
    "json-deep-objects": _req(POST, b"echo", b'{"a":' * 1200 + b"1" + b"}" * 1200),
    "json-huge-integer": _req(POST, b"echo", b"[" + b"9" * 4400 + b"]"),
    "content-length-superscript": _req(POST, b"echo", b"[]", header=b"\xb2", flags=2),
    "content-length-negative": _req(POST, b"echo", b"[]", header=b"-1", flags=2),
    "content-length-huge": _req(POST, b"echo", b"[]", header=b"9" * 30, flags=2),
    "content-length-arabic-digit": _req(POST, b"echo", b"[]", header=b"\xd9\xa3", flags=2),
    "auth-wrong": _req(POST, b"echo", b"[]", header=b"Bearer nope", flags=16),
    "auth-not-ascii": _req(POST, b"echo", b"[]", header=b"Bearer \xff\xfe", flags=16),
    "auth-right": _req(POST, b"echo", b'["x"]', header=b"Bearer fuzz-secret", flags=16),
    "name-dot-dot": _req(POST, b"%2e%2e", b"[]"),
    "name-escaped-slash": _req(POST, b"..%2f..%2fetc%2fpasswd", b"[]"),
    "name-nul": _req(POST, b"echo%00", b"[]"),
    "name-invalid-utf8": _req(POST, b"\xff\xfe", b"[]"),
    "name-escaped-invalid-utf8": _req(POST, b"%ff%fe", b"[]"),
    "moved": _req(POST, b"moved", b'["a"]'),
    "client-gone-mid-body": _req(POST, b"set", b'["fz:gone", "v"]', flags=32 | 4),
    "client-gone-mid-pipeline": _req(PIPELINE, body=b'[["set", "fz:gone", "v"]]', flags=32),
    "get-query-args": _req(GET, b"echo", query=b"arg=%ff&arg=%00&arg=&arg=\xe9&x=1"),
    "get-write-refused": _req(GET, b"set", query=b"arg=fz:a&arg=1"),
    "get-query-junk": _req(GET, b"echo", query=b"arg=%zz&&=&arg=%&arg=%e"),
    "pipeline": _req(
        PIPELINE, body=b'[["echo","a"],["set","fz:p","1"],[],["\\udcff"],["fail","\\udcff"]]'
    ),
    "pipeline-not-commands": _req(PIPELINE, body=b'[["echo"], "x"]'),
    "pipeline-object": _req(PIPELINE, body=b'{"args": ["echo"]}'),
    "pipeline-deep": _req(PIPELINE, body=b"[" * 1500 + b"]" * 1500),
    "snapshot-traversal-escaped": _req(SNAP, b"..%2f..%2fetc%2fpasswd"),
    "snapshot-dot-dot": _req(SNAP, b"%2e%2e"),
    "snapshot-nul": _req(SNAP, b"1-1-1%00"),
    "snapshot-absolute": _req(SNAP, b"%2fetc%2fpasswd"),
    "snapshot-fullwidth-digits": _req(SNAP, "\uff11-1-1".encode()),
    "snapshot-huge-numbers": _req(SNAP, b"9" * 30 + b"-1-1"),
}


def main() -> None:
    for target, seeds in (("resp", RESP), ("sniff", SNIFF)):
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, (head, stream) in seeds.items():
            (folder / name).write_bytes(bytes([head]) + stream)
    folder = CORPUS / "http_args"
    folder.mkdir(parents=True, exist_ok=True)
    for name, request in HTTP_ARGS.items():
        (folder / name).write_bytes(encode_input(request))
    print(f"{len(RESP)} resp, {len(SNIFF)} sniff and {len(HTTP_ARGS)} http_args seeds in {CORPUS}")


if __name__ == "__main__":
    main()
