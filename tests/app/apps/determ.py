"""A test app whose writes draw on everything a replay must reproduce:
the replicated time (``m.now()``), the random stream (``m.rand``) and the
order of the log. ``DUMP`` returns the whole data as canonical JSON.

    python tests/app/apps/determ.py -n 1 -a :11001 --localtime
"""

from __future__ import annotations

import json
from typing import Any

from uhaha import App, Machine
from uhaha.errors import wrong_args

app = App("determ", version="1.0.0", initial_data=dict, json_snapshots=True)


@app.write("put")
def put(m: Machine, args: list[str]) -> str:
    """PUT key: store the time and random draws this write sees; returns them as JSON."""
    if len(args) != 1:
        raise wrong_args()
    first = m.now()
    entry: dict[str, Any] = {
        "now": first,
        "again": m.now(),  # each call inside a write is 1 ns later
        "u64": m.rand.uint64(),
        "uuid": str(m.rand.uuid()),
        "float": m.rand.float(),
        "hex": m.rand.read(8).hex(),
        "index": m.index,
        "seq": len(m.data),
    }
    m.data[args[0]] = entry
    return json.dumps(entry, sort_keys=True)


@app.read("dump")
def dump(m: Machine, args: list[str]) -> str:
    """DUMP: the whole data, as canonical JSON."""
    if args:
        raise wrong_args()
    return json.dumps(m.data, sort_keys=True)


if __name__ == "__main__":
    app.main()
