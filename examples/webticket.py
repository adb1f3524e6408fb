"""Custom services: the ticket app plus a Starlette route and a protocol of its own.

    python examples/webticket.py -n 1 -a :11001
    curl localhost:11001/next                 # {"ticket": 1}: a custom HTTP route
    printf 'NEXT\\n' | nc localhost 11001      # 2: a line protocol on the same port

Inside custom handlers, ``await app.execute([...])`` runs a command through
the cluster exactly as a client would (writes go through the log).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from uhaha import App, CommandError, Machine
from uhaha.errors import Moved

app = App("webticket", version="1.0.0", initial_data={"ticket": 0}, json_snapshots=True)


@app.write("ticket")
def ticket(m: Machine, args: list[str]) -> int:
    m.data["ticket"] += 1
    number: int = m.data["ticket"]
    return number


@app.route("/next", methods=["GET", "POST"])
async def next_ticket(request: Request) -> JSONResponse:
    try:
        number = await app.execute(["ticket"])
    except CommandError as e:
        # On a follower: 307 to the same route on the leader (curl -L follows it).
        headers = {"Location": f"http://{e.leader}/next"} if isinstance(e, Moved) else None
        return JSONResponse({"error": e.message}, status_code=e.status, headers=headers)
    return JSONResponse({"ticket": number})


def looks_like_next(first: bytes) -> bool | None:
    """Claim connections that start with NEXT (None: not enough bytes yet)."""
    if len(first) < 4:
        return None if b"NEXT".startswith(first) else False
    return first.startswith(b"NEXT")


async def serve_next(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One ticket per NEXT line, answered with the number and a newline."""
    while line := await reader.readline():
        if line.strip() != b"NEXT":
            writer.write(b"ERR expected NEXT\n")
            break
        try:
            number = await app.execute(["ticket"])
            writer.write(b"%d\n" % number)
        except CommandError as e:
            writer.write(e.message.encode() + b"\n")
        await writer.drain()


app.add_service("next", looks_like_next, serve_next)

if __name__ == "__main__":
    app.main()
