"""What a worker answers while it is still preparing."""

from __future__ import annotations

import pytest

from scoring.settings import Settings
from service.served import NotReady, Preparing
from service.worker import Worker


def test_a_plan_asked_for_while_the_uplifts_are_computed_is_told_when_to_come_back(tmp_path):
    w = Worker(Settings(data_dir=tmp_path))
    w.snapshot = object()  # loaded; the planning thread has not finished
    with pytest.raises(Preparing) as waiting:
        w.planned_for(wait_s=0.01)
    assert waiting.value.retry_after >= 1
    w.planning_done.set()  # finished, and failed: not ready, and not coming
    with pytest.raises(NotReady) as failed:
        w.planned_for(wait_s=0.01)
    assert not isinstance(failed.value, Preparing)
