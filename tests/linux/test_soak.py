"""A short soak (``benchmarks/soak.py``): the daemon at full offered load for
15 s keeps its memory flat after a 5 s warm-up (every process grows < 5 %)
and answers its control socket within 200 ms throughout -- with one process
and with two workers.  The 60-second version is ``python3
benchmarks/soak.py [--workers N]``."""

from __future__ import annotations

import pytest
from benchmarks.soak import run_soak

from .conftest import require_netns

pytestmark = pytest.mark.root


@pytest.mark.parametrize("workers", [1, 2])
def test_soak_memory_flat_and_control_responsive(workers: int) -> None:
    require_netns()
    res = run_soak(15.0, workers=workers, warmup=5.0, report=False)
    summary = res.summary()
    assert not res.failures(), f"{res.failures()}\n{summary}\n{res.log_tail}"
    assert res.latencies_ms and max(res.latencies_ms) < 200.0
    assert len(res.latencies_ms) >= 50  # ~10 probes a second were answered
    assert all(g < 0.05 for g in res.growth().values()), summary
    assert res.forwarded > 100_000, summary  # it really was under load
