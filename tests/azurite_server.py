"""A real Azure Blob Storage server for tests: Azurite, Microsoft's emulator (the npm package
`azurite`), started as a subprocess on 127.0.0.1 and stopped at the end. obstore talks to it as
to Azure, through its emulator settings (`env()`).

Azurite is a Node program, so it is not a Python dependency: `.ci/run` installs it when absent
with `npm install --prefix <AZURITE_PREFIX> azurite@3`, the folder this module looks in. Where it
is not installed the tests that need it fail, saying how to install it; they never skip.

The server is asked for port 0 and the port it took is read from the line it prints once it
listens, so there is neither a port race nor polling; it must print that line within
`START_TIMEOUT` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from collections import deque
from email.utils import formatdate
from pathlib import Path

#: The environment variable that may name the `azurite-blob` program to run.
AZURITE_ENV = "AIOFLOW_AZURITE"
#: Where `.ci/run` installs Azurite (`npm install --prefix` this folder).
AZURITE_PREFIX = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aioflow-test" / "azurite"
)
#: The major version `.ci/run` installs.
AZURITE_MAJOR = 3
#: Seconds Azurite may take to listen.
START_TIMEOUT = 60
#: Azurite's one account and its key: public constants of the emulator, not secrets.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_LISTENING = re.compile(r"Blob service (?:is )?successfully listens on (http://\S+)")


def find_azurite() -> Path:
    """The `azurite-blob` program: `$AIOFLOW_AZURITE`, on PATH, or in `AZURITE_PREFIX`;
    RuntimeError saying how to install it when it is nowhere."""
    named = os.environ.get(AZURITE_ENV)
    if named:
        return Path(named)
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    installed = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    if installed.exists():
        return installed
    raise RuntimeError(
        "Azurite (the Azure Storage emulator) is not installed: npm install --prefix "
        f"{AZURITE_PREFIX} azurite@{AZURITE_MAJOR} (as .ci/run does), or name its azurite-blob "
        f"in ${AZURITE_ENV}."
    )


class AzuriteServer:
    """One Azurite blob service on 127.0.0.1 (call `stop()` at the end)."""

    def __init__(self) -> None:
        program = find_azurite()
        self.folder = Path(tempfile.mkdtemp(prefix="aioflow-azurite-"))
        self._process = subprocess.Popen(
            [
                str(program),
                "--blobHost", "127.0.0.1", "--blobPort", "0",
                "--location", str(self.folder),
                "--silent", "--disableTelemetry", "--skipApiVersionCheck",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self._output: deque[str] = deque(maxlen=50)
        self._listening = threading.Event()
        self.endpoint = ""
        # Reads what Azurite prints until it exits, so its pipe never fills.
        self._reader = threading.Thread(target=self._read, name="azurite-output", daemon=True)
        self._reader.start()
        if not self._listening.wait(START_TIMEOUT) or not self.endpoint:
            output = " | ".join(self._output)
            self.stop()
            raise RuntimeError(f"Azurite did not listen within {START_TIMEOUT} s: {output}")
        self._containers = itertools.count(1)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._output.append(line.strip())
            found = _LISTENING.search(line)
            if found and not self.endpoint:
                self.endpoint = found.group(1).rstrip("/")
                self._listening.set()
        self._listening.set()  # it exited: whoever waits learns it at once

    def env(self) -> dict[str, str]:
        """The environment that points obstore at this server (its emulator mode)."""
        return {
            "AZURE_STORAGE_USE_EMULATOR": "true",
            "AZURITE_BLOB_STORAGE_URL": self.endpoint,
            "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT,
            "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY,
            "AZURE_ALLOW_HTTP": "true",
        }

    def container(self) -> str:
        """Create a new empty container and return its name (a request signed with the
        account's key, as Azure's Create Container takes it)."""
        name = f"aioflow-test-{next(self._containers)}"
        headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
        signed = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        resource = f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        text = "PUT\n" + "\n" * 11 + signed + resource
        digest = hmac.new(base64.b64decode(ACCOUNT_KEY), text.encode(), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {ACCOUNT}:{base64.b64encode(digest).decode()}"
        request = urllib.request.Request(
            f"{self.endpoint}/{ACCOUNT}/{name}?restype=container",
            method="PUT",
            headers={**headers, "Content-Length": "0"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        return name

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)
        self._reader.join(timeout=30)
        if self._process.stdout is not None:
            self._process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)
