"""A service of monotonically increasing tickets (the uhaha README's example).

python examples/ticket.py -n 1 -a :11001
python examples/ticket.py -n 2 -a :11002 -j :11001
python examples/ticket.py -n 3 -a :11003 -j :11001
redis-cli -p 11001 TICKET          # (integer) 1
curl -X POST localhost:11001/cmd/ticket
"""

from __future__ import annotations

from uhaha import App, Machine
from uhaha.errors import wrong_args

# All servers of a cluster must use the same app name. The initial data is
# the state when the cluster's first server starts for the first time; the
# data is JSON-friendly, so the built-in JSON snapshots will do.
app = App("ticket", version="1.0.0", initial_data={"ticket": 0}, json_snapshots=True)


@app.write("ticket")
def ticket(m: Machine, args: list[str]) -> int:
    """TICKET: a new ticket, at least one greater than any given before."""
    if args:
        raise wrong_args()
    m.data["ticket"] += 1
    ticket_number: int = m.data["ticket"]
    return ticket_number


if __name__ == "__main__":
    app.main()
