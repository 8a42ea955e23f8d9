"""A real S3 server for tests and benchmarks: moto's `ThreadedMotoServer` on a free 127.0.0.1
port, in this process (Werkzeug serving real HTTP), stopped at the end. obstore talks to it as to
any S3-compatible server, through the usual AWS_* variables (`env()`).
"""

from __future__ import annotations

import itertools
import logging
import socket
import urllib.request

from moto.server import ThreadedMotoServer

#: Credentials moto accepts; real ones are never needed (nor read) by the tests.
KEY_ID = "aioflow-test"
SECRET = "aioflow-test-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """One moto S3 server on 127.0.0.1 (call `stop()` at the end)."""

    def __init__(self) -> None:
        # Werkzeug logs every request at INFO: thousands of lines in a benchmark's output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        port = _free_port()  # (moto < 5.0.?: no way to ask the server which port it took)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._buckets = itertools.count(1)

    def env(self) -> dict[str, str]:
        """The environment that points obstore (and any AWS client) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def bucket(self, name: str | None = None) -> str:
        """Create a new empty bucket (named `name`, else a new name) and return its name."""
        name = name or f"aioflow-test-{next(self._buckets)}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        return name

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()
