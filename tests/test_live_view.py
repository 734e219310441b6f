"""The live view of a run (ui/live.py): built once a second, shared by every page, rebuilt
at once when the run's status changes, with what did not change taken from the last."""

import pyarrow as pa
import torch

from mlp_core.recipe import Recipe
from mlp_core.service import Run
from ui import live


def a_run() -> Run:
    run = Run(1, Recipe(hidden=(16,), epochs=3))
    run.began(300)
    run.progressed([2.3, 2.1, 1.9], 3, 3 * 64, 0.5)
    run.publish("weights", torch.randn(16, 28, 28))
    return run


def test_pages_within_a_second_share_one_view_and_a_later_one_sees_the_run_move_on(
    monkeypatch,
):
    clock = [100.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    views, run = live.Views(), a_run()
    first = views.of(run)
    run.progressed([1.7], 4, 4 * 64, 0.6)
    clock[0] += 0.5
    assert views.of(run) is first  # half a second later: the same view, one batch behind
    clock[0] += 0.6
    later = views.of(run)
    assert later is not first and later.snap.step == 4
    clock[0] += 5
    assert views.of(run) is later  # the run has not moved: nothing is rebuilt
    run.epoch_ended(1, 0.5)
    run.ended("stopped", "Stopped after batch 4.")
    assert views.of(run).snap.status == "stopped"  # a new status: at once


def test_what_did_not_change_is_taken_from_the_last_view(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    views, run = live.Views(), a_run()
    run.epoch_ended(1, 0.5)
    first = views.of(run)
    picture = first.templates(8)
    run.progressed([1.7], 4, 4 * 64, 0.6)
    clock[0] += 2
    second = views.of(run)
    assert second.loss != first.loss  # one point more
    assert second.accuracy is first.accuracy and second.templates(8) is picture
    data = pa.ipc.open_stream(next(iter(second.loss["datasets"].values()))).read_all()
    assert data.num_rows == 2 * 4  # each batch and the moving average, 4 batches


def test_many_watching_pages_refresh_less_often(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    views = live.Views()
    counts = [views.watching(f"page {i}") for i in range(live.WATCHERS_SLOWER + 1)]
    assert counts[-1] == live.WATCHERS_SLOWER + 1
    assert live.refresh_every(counts[-2]) == live.LIVE_EVERY == 1
    assert live.refresh_every(counts[-1]) == 2
    assert [live.refresh_every(n) for n in (14, 15, 21, 22, 100)] == [2, 3, 3, 4, live.SLOW_EVERY]
    clock[0] += live.SEEN_FOR + 1  # they all left; one page refreshes
    assert views.watching("page 0") == 1


def test_a_page_slows_down_at_once_and_speeds_up_only_when_clearly_fewer_watch():
    assert live.retime(1, 8) and live.retime(2, 15)  # more watch: slower at once
    assert not live.retime(2, 8) and not live.retime(3, 11)  # a few fewer: as it is
    assert live.retime(3, 9) and live.retime(2, 4)  # clearly fewer: faster again
