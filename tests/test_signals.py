"""The signals that stop `aioflow run`, on Windows too: a real SIGINT reaches the run's loop.

Windows event loops cannot handle signals, so there `receive_stop_signals` installs
`signal.signal` handlers instead of anyio's receiver. These tests take that path on any platform
by making `sys.platform` read "win32" while the receiver is chosen, and send the test process
a real SIGINT with `signal.raise_signal`. The POSIX path is covered by the Ctrl-C test of the
command line (`test_cli.py`), which signals a real `aioflow run` process.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflow import FlowSpec, Run, step
from aioflow.cli import flow_commands, signals
from aioflow.runtime.config import RunConfig
from aioflow.runtime.runner import prepare
from aioflow.store.keeper import StoreKeeper, store_keeper

pytestmark = pytest.mark.timeout(30)


def windows_receiver(monkeypatch: pytest.MonkeyPatch) -> AbstractContextManager[AsyncIterator[int]]:
    """The receiver `receive_stop_signals` chooses on Windows."""
    with monkeypatch.context() as patch:
        patch.setattr(sys, "platform", "win32")
        return signals.receive_stop_signals()


async def test_the_windows_receiver_yields_a_real_sigint(monkeypatch: pytest.MonkeyPatch) -> None:
    before = signal.getsignal(signal.SIGINT)
    with windows_receiver(monkeypatch) as received:
        handler = signal.getsignal(signal.SIGINT)
        assert getattr(handler, "__module__", None) == signals.__name__  # not the loop's own
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        with anyio.fail_after(10):
            assert [await anext(received), await anext(received)] == [signal.SIGINT] * 2
    assert signal.getsignal(signal.SIGINT) is before  # the previous handling is back


async def test_a_signal_arriving_as_the_receiver_closes_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    before = signal.getsignal(signal.SIGINT)
    with windows_receiver(monkeypatch):
        signal.raise_signal(signal.SIGINT)  # forwarded to the loop, delivered after the close
    await anyio.sleep(0)  # the forwarded delivery runs, finds the stream closed, drops it
    assert reported == []
    assert signal.getsignal(signal.SIGINT) is before


def test_windows_asks_for_ctrl_c_and_ctrl_break(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[int] = []
    monkeypatch.setattr(signals, "_receive_through_handlers", installed.extend)
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)  # Windows' number for it
    monkeypatch.setattr(sys, "platform", "win32")
    signals.receive_stop_signals()
    assert installed == [signal.SIGINT, 21]


class SignalledFlow(FlowSpec):
    @step
    async def start(self) -> None:
        # Ctrl-C while a step is in progress, and the step would never end by itself.
        signal.raise_signal(signal.SIGINT)
        await anyio.sleep_forever()
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


async def test_sigint_cancels_a_cli_run_through_the_windows_receiver(
    monkeypatch: pytest.MonkeyPatch, aioflow_root: Path
) -> None:
    monkeypatch.setattr(
        flow_commands, "receive_stop_signals", lambda: windows_receiver(monkeypatch)
    )
    prepared = prepare(SignalledFlow, {}, from_cli=True)
    opened: list[str] = []
    notices: list[str] = []
    keepers: list[StoreKeeper] = []
    with anyio.fail_after(20):
        outcome = await flow_commands._run_until_signal(
            prepared, RunConfig(root=aioflow_root), opened.append, notices.append, keepers
        )
    assert keepers == [store_keeper()]  # the loop's, for `aioflow run` to close after it
    assert outcome is None  # cancelled, as `aioflow run` reports a Ctrl-C
    assert notices == ["Cancelling the run (press Ctrl-C again to exit at once)..."]
    run = Run(f"SignalledFlow/{opened[0]}")
    assert run.status == "cancelled"
    assert run["start"].task.metadata_dict["status"] == "cancelled"  # interrupted
