"""Fixtures: one simulator and one real server process per dialect, per test module; and the
session's order: tests that wait for a built environment last, its build begun at the start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import prebuild
import pytest
import pytest_asyncio
from harness import HomeAssistant, ServerProcess, running_server, server_config
from sim_client import assert_sdk_valid

from wyoming_realtime_text.simulator import RealtimeSimulator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    prebuild.order(items)  # what waits for a build goes last ...


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        prebuild.start(session.items)  # ... and the builds begin now, beside the rest


def pytest_sessionfinish() -> None:
    prebuild.stop()


@pytest.fixture(scope="module", params=["ga", "beta"])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[RealtimeSimulator]:
    async with RealtimeSimulator(host="127.0.0.1", port=0, serve_beta=True) as simulator:
        yield simulator
    # Whatever the module's tests did, both sides spoke the SDK's events (tests/sdk_oracle.py).
    assert_sdk_valid(simulator.connections, client=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sim: RealtimeSimulator, dialect: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp(f"server-{dialect}")
    async with running_server(tmp, server_config(sim.url, dialect)) as process:
        yield process


@pytest.fixture(autouse=False)
def server_log(server: ServerProcess) -> Iterator[ServerProcess]:
    """Use in tests that should show the server's log when they fail."""
    yield server


@pytest.fixture
def ha(server: ServerProcess) -> HomeAssistant:
    return HomeAssistant(server.uri)
