from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.settings import ServerSettings
from tests.server import nodes
from tests.server.harness import RunningServer, start_server


@pytest.fixture(autouse=True)
def _reset_gates() -> Iterator[None]:
    yield
    # Open every gate, so that no node is left waiting in a worker thread after a test.
    for gate in nodes.GATES.values():
        gate.set()
    nodes.GATES.clear()
    nodes.GATE_REACHED.clear()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start servers on folders under tmp_path; each is stopped at the end of the test."""
    servers: list[RunningServer] = []

    def starter(settings: ServerSettings | None = None) -> RunningServer:
        server = start_server(tmp_path, settings)
        servers.append(server)
        return server

    yield starter
    for gate in nodes.GATES.values():
        gate.set()
    for server in servers:
        server.stop()


@pytest.fixture
def server(start: Callable[..., RunningServer]) -> RunningServer:
    return start()


def gate(name: str) -> tuple[threading.Event, threading.Event]:
    """The (open, reached) events of Gate node `name`."""
    return (
        nodes.GATES.setdefault(name, threading.Event()),
        nodes.GATE_REACHED.setdefault(name, threading.Event()),
    )
