"""``bench.run_stages`` times the server by wrapping some of its functions: this fails when one of them is
renamed or no longer on a run's path, instead of the benchmark quietly reporting nothing for that stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.run_stages import STAGES, measure
from bench.server_latency import BENCH_CONFIG
from tests.fixtures.env import SetEnv

pytestmark = pytest.mark.live


async def test_every_stage_boundary_is_crossed_in_order_by_each_streamed_run(tmp_path: Path, set_env: SetEnv) -> None:
    set_env(LOOM_GRAPHS_CONFIG=str(BENCH_CONFIG))

    stamped, client, in_process = await measure(3, tmp_path)

    assert len(stamped) == len(client) == len(in_process) == 3
    boundaries = [STAGES[0][0], *(stop for _, stop, _ in STAGES)]
    for run in stamped:
        assert sorted(run) == sorted(boundaries)
        times = [run[name] for name in boundaries]
        assert times == sorted(times), run
