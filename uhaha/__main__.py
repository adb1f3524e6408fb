"""``python -m uhaha [flags]``: a node with only the built-in commands."""

from __future__ import annotations

import sys

from . import __version__
from .cli import UsageError, parse_args, usage


def main(argv: list[str] | None = None, *, prog: str = "uhaha") -> int:
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    if opts.show_help:
        print(usage(prog), end="")
        return 0
    if opts.show_version:
        print(f"{prog} {__version__}")
        return 0
    from .server import run  # noqa: PLC0415  (keeps -h and -v fast)

    return run(opts, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
