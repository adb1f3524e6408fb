"""The security and limit flags: --tls-ca, --tls-client-certs, --limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from uhaha.cli import UsageError, parse_args, usage
from uhaha.limits import LIMITS, NodeLimits, parse_limits, table


def test_usage_lists_the_security_and_limit_flags() -> None:
    text = usage("ticket")
    for flag in ("--tls-ca", "--tls-client-certs", "--limit"):
        assert f"  {flag} " in text, flag


def test_tls_flags_need_each_other() -> None:
    ok = parse_args(["--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca", "--tls-client-certs"])
    assert ok.tls_ca == "ca" and ok.tls_client_certs
    with pytest.raises(UsageError, match="need --tls-cert"):
        parse_args(["--tls-ca", "ca"])
    with pytest.raises(UsageError, match="needs --tls-ca"):
        parse_args(["--tls-cert", "c", "--tls-key", "k", "--tls-client-certs"])


def test_limit_values_reach_every_layer() -> None:
    opts = parse_args(
        ["--limit", "max-connections=7", "--limit=resp-bulk-bytes=2k", "--limit",
         "http-body-bytes=3m", "--limit", "resp-pending=9", "--limit", "sniff-timeout=2.5s"]
    )  # fmt: skip
    limits = parse_limits(opts.limits)
    assert limits.door.max_connections == 7
    assert limits.parser.max_bulk == 2048
    assert limits.http_body == 3 << 20
    assert limits.max_pending == 9
    assert limits.door.sniff_timeout == 2.5
    # Untouched ones keep their defaults.
    assert limits.parser.max_array == NodeLimits().parser.max_array
    assert limits.resp_idle_timeout == 0  # never, as in Redis
    assert parse_limits({"resp-idle-timeout": "300"}).resp_idle_timeout == 300
    assert parse_limits({"resp-idle-timeout": "0"}).resp_idle_timeout == 0  # off again


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("resp-array", "needs name=value"),
        ("nope=1", "unknown limit 'nope'"),
        ("resp-array=0", "positive whole number"),
        ("resp-array=-3", "positive whole number"),
        ("resp-array=1.5", "positive whole number"),
        ("sniff-timeout=never", "number of seconds"),
        ("sniff-timeout=inf", "number of seconds"),
        ("sniff-timeout=nan", "number of seconds"),
        ("sniff-timeout=0", "number of seconds"),  # only the idle timeout can be off
        ("resp-idle-timeout=-1", "number of seconds"),
    ],
)
def test_bad_limits_are_usage_errors(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args(["--limit", value])


def test_every_limit_is_in_the_readme_table() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert table() in readme
    assert len(LIMITS) == table().count("\n") - 1


def test_the_readme_shows_the_whole_usage() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Command-line options\n\n```\n", 1)[1].split("```", 1)[0]
    assert block == usage("ticket").rstrip("\n") + "\n"
