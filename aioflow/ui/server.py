"""Serving the UI: bind the socket here, then hand it to uvicorn.

Binding first means `--port 0` picks a free port and the address printed is the real one, and
a port that is taken is one clear error before uvicorn starts.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from ..store import Store
from .app import create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free one); OSError when it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(
    store: Store,
    sock: socket.socket,
    *,
    announce: Callable[[str], None] = print,
    location: str | None = None,
) -> None:
    """Serve the UI of `store` on the bound `sock` until interrupted (Ctrl-C); the first line
    names `location` (default: the store's) and the address."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    where = location or store.location
    announce(f"aioflow ui: {where} at http://{shown}:{port}/ (Ctrl-C to stop)")
    config = uvicorn.Config(create_app(store), log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
