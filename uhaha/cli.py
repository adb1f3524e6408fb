"""uhaha's command line: the same flags, defaults and help layout as the Go uhaha.

Bad flags end the process with one clear line and exit status 2 (never a
traceback); ``-h`` prints the usage, ``-v`` the version.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .limits import parse_limits
from .log import FORMATS, LEVELS
from .names import check_name, split_address

__all__ = ["Options", "UsageError", "parse_address", "parse_args", "usage"]


class UsageError(Exception):
    """A bad command line; the message is one line for the user."""


@dataclass
class Options:
    node_id: str = "1"
    addr: str = "127.0.0.1:11001"
    data_dir: Path = Path("data")
    join: str = ""
    log_level: str = "info"
    log_format: str = "text"
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_client_certs: bool = False
    auth: str = ""
    advertise: str = ""
    nonvoter: bool = False
    nosync: bool = False
    openreads: bool = False
    localtime: bool = False
    restore: str = ""
    backend: str = "sqlite"
    try_errors: bool = False
    ntp: str = ""
    snapshot_every: int = 10_000
    backup_dir: str = ""
    backups: int = 5
    limits: dict[str, str] = field(default_factory=dict)
    show_version: bool = False
    show_help: bool = False

    @property
    def bind(self) -> tuple[str, int]:
        return parse_address(self.addr)

    @property
    def ntp_servers(self) -> list[tuple[str, int]]:
        """``--ntp`` as (host, port) pairs (port 123 by default)."""
        out = []
        for item in filter(None, (x.strip() for x in self.ntp.split(","))):
            host, sep, port = item.rpartition(":")
            if sep and port.isdigit():
                out.append((host.strip("[]"), int(port)))
            else:
                out.append((item, 123))
        return out

    @property
    def advertised(self) -> str:
        """The address other servers and clients use for this one."""
        if self.advertise:
            host, port = parse_address(self.advertise)
        else:
            host, port = self.bind
            if host in ("0.0.0.0", "::"):
                host = "127.0.0.1"
        return f"{host}:{port}"


def usage(prog: str) -> str:
    return f"""Usage: {prog} [-n id] [-a addr] [options]

Basic options:
  -v               : display version
  -h               : display help, this screen
  -a addr          : bind to address  (default: 127.0.0.1:11001)
  -n id            : node ID  (default: 1)
  -d dir           : data directory  (default: data)
  -j addr          : address of any server of a cluster to join
  -l level         : log level  (default: info) [debug,verb,info,warn,silent]
  --log-format fmt : log format  (default: text) [text,json]

Security options:
  --tls-cert path  : path to TLS certificate
  --tls-key path   : path to TLS private key
  --tls-ca path    : CA certificates that peers' (and with --tls-client-certs,
                     clients') certificates must chain to  (default: trust
                     exactly --tls-cert, which all servers then share)
  --tls-client-certs : require a certificate signed by --tls-ca from every
                     connection, peers and clients alike (mutual TLS)
  --auth auth      : cluster authorization, shared by all servers and clients
                     (or set UHAHA_AUTH, or --auth @path to read it from a file)

Networking options:
  --advertise addr : advertise address  (default: network bound address)

Advanced options:
  --nosync         : do not sync the log to disk after every write: faster
                     writes, but a power failure can lose acknowledged data
  --openreads      : let followers answer read commands, possibly stale
  --localtime      : take the machine's time from the local clock instead of
                     internet time (risks time jumps if the clock is changed)
  --restore path   : start a new single-node cluster from a snapshot file;
                     ignored when the data directory already exists; not
                     with -j
  --nonvoter       : join as a non-voting member (receives the log, never votes)
  --backend name   : log storage: sqlite (default) or memory (lost on exit)
  --try-errors     : answer TRY <addr> instead of MOVED 0 <addr> on followers
  --ntp servers    : internet time servers, host[:port] separated by commas
                     (default: time.google.com,pool.ntp.org)
  --snapshot-every n : take a snapshot after n applied entries, then compact
                     the log  (default: 10000; 0: only RAFT SNAPSHOT NOW)
  --backup-dir dir : copy every new snapshot into dir (--restore takes them)
  --backups n      : how many backups to keep in --backup-dir  (default: 5)
  --limit name=n   : change one of the limits on what clients may send or
                     cost (repeatable; names and defaults in the README)
"""


_VALUED = {
    "-a": "addr",
    "-n": "node_id",
    "-d": "data_dir",
    "-j": "join",
    "--join": "join",
    "-l": "log_level",
    "--log-format": "log_format",
    "--tls-cert": "tls_cert",
    "--tls-key": "tls_key",
    "--tls-ca": "tls_ca",
    "--auth": "auth",
    "--advertise": "advertise",
    "--restore": "restore",
    "--backend": "backend",
    "--ntp": "ntp",
    "--snapshot-every": "snapshot_every",
    "--backup-dir": "backup_dir",
    "--backups": "backups",
    "--limit": "limits",
}
_FLAGS = {
    "-v": "show_version",
    "--version": "show_version",
    "-h": "show_help",
    "--help": "show_help",
    "--nonvoter": "nonvoter",
    "--nosync": "nosync",
    "--openreads": "openreads",
    "--localtime": "localtime",
    "--try-errors": "try_errors",
    "--tls-client-certs": "tls_client_certs",
}


def parse_address(text: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (the local loopback), or ``[v6]:port``."""
    try:
        return split_address(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def parse_args(argv: list[str], env: dict[str, str] | None = None) -> Options:
    env = dict(os.environ) if env is None else env
    opts = Options()
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in _VALUED:
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise UsageError(f"flag {name} needs a value")
            if name == "--limit":
                key, sep, amount = value.partition("=")
                if not sep:
                    raise UsageError(f"--limit needs name=value, not {value!r}")
                opts.limits[key.strip()] = amount.strip()
            else:
                values[_VALUED[name]] = value
        elif arg in _FLAGS:
            setattr(opts, _FLAGS[arg], True)
        else:
            raise UsageError(f"unknown flag {arg!r} (see -h)")
        i += 1
    for key, value in values.items():
        if key == "data_dir":
            opts.data_dir = Path(value)
        elif key in ("snapshot_every", "backups"):
            if not value.isdigit():
                raise UsageError(f"--{key.replace('_', '-')} needs a whole number, not {value!r}")
            setattr(opts, key, int(value))
        else:
            setattr(opts, key, value)
    _validate(opts, env)
    return opts


def _validate(opts: Options, env: dict[str, str]) -> None:
    if opts.show_help or opts.show_version:
        return
    try:
        check_name("node id", opts.node_id)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if opts.log_level not in LEVELS:
        raise UsageError(f"invalid log level {opts.log_level!r}: one of {', '.join(LEVELS)}")
    if opts.log_format not in FORMATS:
        raise UsageError(f"invalid log format {opts.log_format!r}: one of {', '.join(FORMATS)}")
    if opts.backend not in ("sqlite", "memory"):
        raise UsageError(f"invalid backend {opts.backend!r}: sqlite or memory")
    opts.bind  # noqa: B018  (validates -a)
    if opts.advertise:
        parse_address(opts.advertise)
    if opts.join:
        parse_address(opts.join)
    for server in opts.ntp_servers:
        if not server[0] or not 0 < server[1] < 65536:
            raise UsageError(f"invalid --ntp server in {opts.ntp!r}")
    if opts.backups < 1:
        raise UsageError("--backups must be at least 1")
    if opts.restore and opts.join:
        raise UsageError("--restore cannot be used with -j")
    if bool(opts.tls_cert) != bool(opts.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if (opts.tls_ca or opts.tls_client_certs) and not opts.tls_cert:
        raise UsageError("--tls-ca and --tls-client-certs need --tls-cert and --tls-key")
    if opts.tls_client_certs and not opts.tls_ca:
        raise UsageError("--tls-client-certs needs --tls-ca (the CA client certificates chain to)")
    if opts.limits:
        try:
            parse_limits(opts.limits)
        except ValueError as e:
            raise UsageError(str(e)) from None
    if not opts.auth:
        opts.auth = env.get("UHAHA_AUTH", "")
    elif opts.auth.startswith("@"):
        path = opts.auth[1:]
        try:
            opts.auth = Path(path).read_text().strip()
        except OSError as e:
            raise UsageError(f"cannot read the auth secret from {path}: {e.strerror}") from None
        if not opts.auth:
            raise UsageError(f"the auth secret file {path} is empty")


def fail(message: str, status: int = 1) -> None:
    """End the process with one clear line (for start-up problems)."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(status)
