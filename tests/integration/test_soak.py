"""The soak's scenarios, once each on a real uvicorn: every outcome they report is what happened.

For a client that vanishes, the outcome is the server's own record of how the app's call ended
(bench/soak.py's CallLog), so a call that was never cancelled, or a send that never raised, shows.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import pytest

from bench import soak
from tests.support.servers import serve


@pytest.fixture(autouse=True)
def quiet_crashes() -> Iterator[None]:
    """The /crash route raises on purpose: keep its traceback out of the captured log."""
    logger = logging.getLogger("wsproxy")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize(
    "scenario", [scenario for scenario, _, _ in soak.SCENARIOS], ids=lambda scenario: scenario.__name__
)
async def test_each_soak_scenario_reports_what_happened(ws_impl: str, scenario: soak.Scenario) -> None:
    expected = {fn: outcome for fn, _, outcome in soak.SCENARIOS}[scenario]
    random.seed(3)
    async with serve(soak.build_app(), ws=ws_impl) as running:
        outcomes = [await scenario(running.ws) for _ in range(3)]
    assert outcomes == [expected] * 3
