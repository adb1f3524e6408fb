"""The uhaha command line: flags, defaults, addresses, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from uhaha.cli import UsageError, parse_address, parse_args, usage


def test_defaults_are_uhahas() -> None:
    o = parse_args([], env={})
    assert (o.node_id, o.addr, o.data_dir, o.log_level) == (
        "1",
        "127.0.0.1:11001",
        Path("data"),
        "info",
    )
    assert o.bind == ("127.0.0.1", 11001)
    assert o.advertised == "127.0.0.1:11001"
    assert not (o.nosync or o.openreads or o.localtime or o.nonvoter or o.try_errors)


def test_seed_readme_command_lines() -> None:
    o = parse_args(["-n", "2", "-a", ":11002", "-j", ":11001"], env={})
    assert o.node_id == "2" and o.bind == ("127.0.0.1", 11002) and o.join == ":11001"
    o = parse_args(
        ["-n", "3", "-a", "10.0.0.3:11001", "--auth", "my-secret", "-j", "10.0.0.1:11001"], env={}
    )
    assert o.bind == ("10.0.0.3", 11001) and o.auth == "my-secret"
    o = parse_args(
        ["--join=:11001", "--advertise", "192.168.1.5:7000", "-a", "0.0.0.0:7000"], env={}
    )
    assert o.advertised == "192.168.1.5:7000"


def test_all_flags_parse() -> None:
    o = parse_args(
        "-l debug --nosync --openreads --localtime --nonvoter --backend memory --try-errors "
        "--tls-cert c.pem --tls-key k.pem".split(),
        env={},
    )
    assert o.log_level == "debug" and o.backend == "memory" and o.tls_cert == "c.pem"
    assert o.log_format == "text"
    assert parse_args(["--log-format", "json"], env={}).log_format == "json"
    assert parse_args(["--log-format=json"], env={}).log_format == "json"
    assert o.nosync and o.openreads and o.localtime and o.nonvoter and o.try_errors


def test_auth_from_environment_or_file(tmp_path: Path) -> None:
    assert parse_args([], env={"UHAHA_AUTH": "s3"}).auth == "s3"
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    assert parse_args(["--auth", f"@{secret}"], env={}).auth == "from-file"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--bogus"], "unknown flag"),
        (["-a"], "needs a value"),
        (["-a", "nonsense"], "invalid address"),
        (["-a", ":99999"], "the port must be 1 to 65535"),
        (["-a", "127.0.0.1:\u00b2"], "invalid address"),  # a digit to isdigit(), not to int()
        (["--advertise", "[::1]:0"], "the port must be 1 to 65535"),
        (["-l", "loud"], "invalid log level"),
        (["--log-format", "xml"], "invalid log format"),
        (["--backend", "redis"], "invalid backend"),
        (["-n", "../x"], "invalid node id"),
        (["-n", "a:b"], "invalid node id"),  # a name the data directory would refuse
        (["--restore", "f.snap", "-j", ":11001"], "cannot be used with -j"),
        (["--tls-cert", "c.pem"], "go together"),
        (["--auth", "@/nonexistent/secret"], "cannot read the auth secret"),
    ],
)
def test_bad_flags_give_one_clear_line(argv: list[str], needle: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_args(argv, env={})
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_ntp_servers() -> None:
    o = parse_args(["--ntp", "127.0.0.1:1123, time.example.org"], env={})
    assert o.ntp_servers == [("127.0.0.1", 1123), ("time.example.org", 123)]
    with pytest.raises(UsageError, match="invalid --ntp"):
        parse_args(["--ntp", "host:0"], env={})


def test_addresses() -> None:
    assert parse_address(":11001") == ("127.0.0.1", 11001)
    assert parse_address("[::1]:5") == ("::1", 5)
    with pytest.raises(UsageError):
        parse_address("11001")


def test_usage_lists_every_flag() -> None:
    text = usage("ticket")
    for flag in (
        "-v -h -a -n -d -j -l --tls-cert --tls-key --auth --advertise --nosync "
        "--openreads --localtime --restore --nonvoter --backend --try-errors --ntp "
        "--log-format".split()
    ):
        assert f"  {flag} " in text, flag
