"""A run's live view, built at most once a second and shared by every page that shows it.

A class watching one run: thirty Train pages each rerun their live part every second, and
each drew the same run from scratch (a snapshot, three Altair charts validated and
converted, the first layer's templates painted and encoded as a PNG): 30 times the work of
one page, on a server with two cores. Here the first page to ask after the run moved on
builds the view; the others, for the next second, take it as it is (`LIVE_EVERY`). A page
asking while another builds takes the last one built rather than wait.

With more than WATCHERS_SLOWER pages watching (MLP_WATCHERS_SLOWER), each refreshes less
often, one second more per WATCHERS_SLOWER pages (2 s for 8-14, 3 s for 15-21, 4 s for
22-28, at most SLOW_EVERY), and says so: the server then runs about WATCHERS_SLOWER page refreshes a
second however many watch. Each refresh is a new thread for the page's session, and the
server's event loop waits for each to start: with 30 pages refreshing every 2 s, the
health check's p99 was 255-440 ms; with 31 pages at 4 s (10 per step), 210-280 ms in
four runs of six; at 5 s (7 per step), 55-95 ms.
"""

import io
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from mlp_core.insight import template_grid
from mlp_core.service import Run, Snapshot

from .charts import accuracy_chart, loss_chart, norms_chart, spec
from .format import enlarge

LIVE_EVERY = 1.0  # seconds: a run's view is rebuilt at most this often, however many watch
WATCHERS_SLOWER = 7  # more pages than this watching live: each refreshes less often
SLOW_EVERY = 5.0  # seconds between a page's refreshes at most, however many watch
SEEN_FOR = 12.0  # seconds: a page that has not refreshed for this long no longer watches
# (over two of its slowest refreshes: a page still watching is never left out of the count)


@dataclass
class View:
    """What every page shows of one run at one moment."""

    snap: Snapshot
    built: float  # time.monotonic() when built
    loss: dict | None = None  # Vega-Lite specs (charts.spec); None: too few points yet
    accuracy: dict | None = None
    norms: tuple[dict, dict] | None = None  # weight norms, gradient norms
    _pictures: dict[int, bytes] = field(default_factory=dict)  # units shown -> PNG

    def templates(self, n: int) -> bytes | None:
        """The first `n` units' templates as one PNG (made once per view and count)."""
        if (picture := self._pictures.get(n)) is not None:
            return picture
        weights = self.snap.extras.get("weights")  # (64, 28, 28)
        if weights is None:
            return None
        shown = weights[:n]
        cols = 8 if len(shown) <= 32 else 16
        buf = io.BytesIO()
        enlarge(template_grid(shown, cols=cols), 3 if cols == 8 else 2).save(buf, "PNG")
        picture = self._pictures[n] = buf.getvalue()
        return picture


def build(snap: Snapshot, last: View | None = None) -> View:
    """The view of `snap`: its charts' specs (the pictures are made when first shown).
    What has not changed since `last` (the accuracies and norms change once an epoch, the
    templates every 50 batches) is taken from it."""
    view = View(snap, time.monotonic())
    was = last.snap if last is not None else None
    if len(snap.losses) > 1:
        view.loss = spec(loss_chart(snap))
    if was is not None and was.accuracies == snap.accuracies:
        view.accuracy = last.accuracy
    elif snap.accuracies:
        view.accuracy = spec(accuracy_chart(snap))
    norms = snap.extras.get("norms")
    if was is not None and was.extras.get("norms") == norms:
        view.norms = last.norms
    elif norms:
        view.norms = (
            spec(norms_chart(norms, "weight norm", "Size of each layer's weights")),
            spec(norms_chart(norms, "grad norm", "Size of its gradients (mean per batch)")),
        )
    if was is not None and was.extras.get("weights") is snap.extras.get("weights"):
        view._pictures = last._pictures  # the same templates: the same pictures
    return view


class Views:
    """The views of the runs being watched (one per run), and who watches."""

    def __init__(self):
        self._lock = threading.Lock()
        self._views: dict[int, View] = {}
        self._building: set[int] = set()
        self._seen: dict[str, float] = {}  # a page (its session) -> when it last refreshed

    def of(self, run: Run) -> View:
        """`run`'s view: the one held if it is current, or of the same status and younger
        than LIVE_EVERY or being rebuilt by another page; else a new one, built here."""
        now = time.monotonic()
        with self._lock:
            held = self._views.get(run.id)
            if held is not None and (
                held.snap.version == run.version
                or (
                    held.snap.status == run.status
                    and (now - held.built < LIVE_EVERY or run.id in self._building)
                )
            ):
                return held
            self._building.add(run.id)
        try:
            view = build(run.snapshot(), held)
        finally:
            with self._lock:
                self._building.discard(run.id)
        with self._lock:
            self._views[run.id] = view
            for old in list(self._views)[:-8]:  # the runs shown lately, at most 8
                del self._views[old]
        return view

    def watching(self, page: str) -> int:
        """Note that `page` refreshes now; how many pages did in the last SEEN_FOR s."""
        now = time.monotonic()
        with self._lock:
            self._seen[page] = now
            for p, when in list(self._seen.items()):
                if now - when > SEEN_FOR:
                    del self._seen[p]
            return len(self._seen)


@st.cache_resource
def views() -> Views:
    """The server's one Views, shared by every session."""
    return Views()


def watchers() -> int:
    """Count this page as watching now; how many pages watched in the last few seconds."""
    page = st.session_state.setdefault("live_page", secrets.token_hex(8))
    return views().watching(page)


def refresh_every(watchers: int) -> float:
    """Seconds between a live page's refreshes when `watchers` pages watch: 1 s up to
    WATCHERS_SLOWER pages, then a second more per WATCHERS_SLOWER, at most SLOW_EVERY."""
    slower = max(1, int(os.environ.get("MLP_WATCHERS_SLOWER", WATCHERS_SLOWER)))
    return min(SLOW_EVERY, LIVE_EVERY * math.ceil(max(1, watchers) / slower))


def retime(every: float, watchers: int) -> bool:
    """Whether a page refreshing every `every` s should be drawn again with a new timer:
    at once when it should refresh less often, but more often only when half as many
    pages again would still allow it (so a count moving around a step does not redraw
    every page back and forth)."""
    return refresh_every(watchers) > every or refresh_every(watchers * 3 // 2) < every
