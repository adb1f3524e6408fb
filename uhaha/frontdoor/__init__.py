"""One address, every protocol: RESP, HTTP/1.x, HTTP/2 and application services.

`FrontDoor` listens on one socket (optionally TLS) and picks each
connection's protocol from its first bytes (see `sniff`): RESP goes to a
`uhaha.resp.RespHandler`, HTTP/1.x to uvicorn and HTTP/2 to Hypercorn (both
serving the same ASGI app on the node's event loop), and an application
`Service` may claim connections of its own protocol first.
"""

from uhaha.frontdoor.config import Limits, Service, StartupError
from uhaha.frontdoor.door import ASGIApp, FrontDoor
from uhaha.frontdoor.sniff import H2_PREFACE, Kind, sniff

__all__ = [
    "H2_PREFACE",
    "ASGIApp",
    "FrontDoor",
    "Kind",
    "Limits",
    "Service",
    "StartupError",
    "sniff",
]
