"""One rule for node ids and addresses: the command line, the data directory
and RAFT SERVER ADD all use uhaha.names."""

from __future__ import annotations

import pytest

from uhaha.names import check_name, split_address


@pytest.mark.parametrize("name", ["1", "node-1", "a.b_c", "_x", "Z" * 128])
def test_names_that_can_be_a_path_component(name: str) -> None:
    check_name("node id", name)


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "-x", "a/b", "a\\b", "a b", "a:b", "é", "x\n", "Z" * 129]
)
def test_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid node id"):
        check_name("node id", name)


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("127.0.0.1:11001", "127.0.0.1", ("127.0.0.1", 11001)),
        (":11001", "127.0.0.1", ("127.0.0.1", 11001)),
        ("[::1]:7", "127.0.0.1", ("::1", 7)),
        ("host:65535", None, ("host", 65535)),
    ],
)
def test_addresses(text: str, default: str | None, expected: tuple[str, int]) -> None:
    assert split_address(text, default) == expected


@pytest.mark.parametrize(
    ("text", "default"),
    [
        ("x", "127.0.0.1"),
        ("host:", "127.0.0.1"),
        ("host:0", "127.0.0.1"),
        ("host:65536", "127.0.0.1"),
        ("host:-1", "127.0.0.1"),
        ("host:\u00b2", "127.0.0.1"),  # isdigit() says yes, int() says no
        ("host:\u0661", "127.0.0.1"),  # an Arabic-Indic one, which int() takes
        (":11001", None),
    ],
)
def test_addresses_refused(text: str, default: str | None) -> None:
    with pytest.raises(ValueError, match="invalid address"):
        split_address(text, default)
