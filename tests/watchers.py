"""Visitors that speak Streamlit's websocket protocol, as its frontend does, without a browser.

Thirty Chromium tabs on a 2-core machine measure the tabs, not the server. A `Visitor` opens
`/_stcore/stream`, asks for a page (a `rerun_script` BackMsg), and from then on does what
the real frontend does for an `st.fragment(run_every=...)`: when the server sends
`auto_rerun` (a fragment id and an interval), it sends that fragment's rerun every interval,
whether or not the last one was answered (the frontend's `setInterval`), until
`stop_auto_rerun`. Like the frontend it keeps the cacheable messages it was sent and lists
their hashes in each rerun (the server then sends a reference, not the message), dropping
those not used in the last `max_cached_message_age` runs.

`Tally` reads the two directions' frames, from a Visitor or from a real tab's websocket
(Playwright's `framesent`/`framereceived`), the same way: a refresh's latency is from a
fragment rerun's request to the `script_finished` of the first run that began after it (the
server folds requests that arrive while the fragment runs into one later run).

`elsewhere` runs the visitors in a process of their own, in a session of their own at nice 10
(as tests/chromium_elsewhere.sh does for the load test's Chromium): visitors' browsers run on
their own machines, so here they get only the CPU the server does not use. The health checks
are polled from the caller's process, at its priority.
"""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

LONG_RUN = "hidden=32&batch_size=16&epochs=1000"  # tiny MNIST: a run that trains for minutes
FRAGMENT_DONE = ForwardMsg.ScriptFinishedStatus.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
PAGE_DONE = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY


@dataclass
class Tally:
    """What one page was sent and showed: refresh latencies, progress, errors."""

    latencies: list[tuple[float, float]] = field(default_factory=list)  # (asked, seconds)
    progress: list[int] = field(default_factory=list)  # each progress bar's value (0-100)
    errors: list[str] = field(default_factory=list)  # error alerts' and exceptions' texts
    page_runs: int = 0  # whole-page runs finished
    fragment_runs: int = 0  # fragment runs finished
    bytes_in: int = 0
    asked: list[float] = field(default_factory=list)  # fragment reruns sent, not yet answered
    _run: str = ""  # the script run whose messages arrive now
    _began: float = 0.0  # when its first message arrived

    def sent(self, data: bytes, at: float) -> None:
        msg = BackMsg.FromString(data)
        if msg.WhichOneof("type") == "rerun_script" and msg.rerun_script.fragment_id:
            self.asked.append(at)

    def received(self, msg: ForwardMsg, size: int, at: float) -> None:
        self.bytes_in += size
        run = msg.metadata.run.script_run_id
        if run and run != self._run:
            self._run, self._began = run, at
        kind = msg.WhichOneof("type")
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            what = element.WhichOneof("type")
            if what == "progress":
                self.progress.append(element.progress.value)
            elif what == "exception":
                self.errors.append(f"{element.exception.type}: {element.exception.message}")
            elif what == "alert" and element.alert.format == Alert.ERROR:
                self.errors.append(element.alert.body)
        elif kind == "script_finished":
            if msg.script_finished == FRAGMENT_DONE:
                self.fragment_runs += 1
                answered = [t for t in self.asked if t <= self._began]
                self.asked = self.asked[len(answered) :]
                self.latencies += [(t, at - t) for t in answered]
            elif msg.script_finished == PAGE_DONE:
                self.page_runs += 1

    def between(self, began: float, ended: float) -> tuple[list[float], int]:
        """The latencies of the refreshes asked from `began` to `ended` (time.monotonic),
        and how many of those were still unanswered at `ended`."""
        answered = [s for t, s in self.latencies if began <= t <= ended and t + s <= ended]
        return answered, sum(began <= t <= ended for t in self.asked) + sum(
            began <= t <= ended < t + s for t, s in self.latencies
        )


class Visitor:
    """One page open in a browser that is only its websocket (see the module's docstring)."""

    def __init__(self, url: str, page: str = "train", query: str = ""):
        self.url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.page, self.query = page, query
        self.tally = Tally()
        self.widgets: dict[str, str] = {}  # a widget's key -> its id, as the page drew it
        self._page_hash = ""  # the page's script hash, once the server said it
        self._cache: dict[str, tuple[ForwardMsg, int]] = {}  # hash -> (message, last run used)
        self._max_age = 2  # runs a cached message is kept unused (the server's config says)
        self._runs = 0
        self._ticker: asyncio.Task | None = None
        self._ticking: tuple[str, float] | None = None  # (fragment id, interval)
        self._ws = None

    async def visit(self, until: asyncio.Event, clicks: tuple[str, ...] = ()) -> Tally:
        """Open the page and follow it until `until` is set; `clicks`: the keys of buttons
        pressed, in turn, as soon as the page has drawn each."""
        from websockets.asyncio.client import connect

        clicks = list(clicks)
        async with connect(self.url, subprotocols=["streamlit"], max_size=None) as ws:
            self._ws = ws
            await self._rerun()
            reader = asyncio.create_task(self._read())
            try:
                while not until.is_set():
                    if clicks and clicks[0] in self.widgets:
                        await self._rerun([self._trigger(clicks.pop(0))])
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(until.wait(), 0.1)
            finally:
                reader.cancel()
                if self._ticker is not None:
                    self._ticker.cancel()
        return self.tally

    def _trigger(self, key: str) -> WidgetState:
        state = WidgetState(id=self.widgets[key])
        state.trigger_value = True
        return state

    async def _rerun(self, states=(), fragment: str = "") -> None:
        msg = BackMsg()
        r = msg.rerun_script
        r.query_string, r.page_script_hash = self.query, self._page_hash
        r.page_name = "" if self._page_hash else self.page  # the first time: by its URL
        r.widget_states.widgets.extend(states)
        r.cached_message_hashes.extend(self._cache)
        if fragment:
            r.fragment_id, r.is_auto_rerun = fragment, True
        data = msg.SerializeToString()
        self.tally.sent(data, time.monotonic())
        await self._ws.send(data)

    async def _tick(self, fragment: str, interval: float) -> None:
        """The frontend's setInterval: a rerun of `fragment` every `interval` seconds."""
        while True:
            await asyncio.sleep(interval)
            await self._rerun(fragment=fragment)

    async def _read(self) -> None:
        async for data in self._ws:
            self._received(ForwardMsg.FromString(data), len(data))

    def _received(self, msg: ForwardMsg, size: int) -> None:
        if msg.WhichOneof("type") == "ref_hash":  # a message this visitor said it holds
            cached, _ = self._cache[msg.ref_hash]
            self._cache[msg.ref_hash] = (cached, self._runs)
            msg = cached
        elif msg.metadata.cacheable:
            self._cache[msg.hash] = (msg, self._runs)
        self.tally.received(msg, size, time.monotonic())
        match msg.WhichOneof("type"):
            case "new_session":
                self._page_hash = msg.new_session.page_script_hash or self._page_hash
                self._max_age = msg.new_session.config.max_cached_message_age or self._max_age
            case "navigation":
                self._page_hash = msg.navigation.page_script_hash or self._page_hash
            case "delta" if msg.delta.WhichOneof("type") == "new_element":
                element = msg.delta.new_element
                what = element.WhichOneof("type")
                widget = getattr(element, what, None) if what else None
                if widget is not None and getattr(widget, "id", "").startswith("$$ID-"):
                    self.widgets[widget.id.rsplit("-", 1)[-1]] = widget.id
            case "auto_rerun":
                ticking = (msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
                if ticking != self._ticking:
                    self._stop_ticking()
                    self._ticking = ticking
                    self._ticker = asyncio.create_task(self._tick(*ticking))
            case "stop_auto_rerun":
                if self._ticking and self._ticking[0] in msg.stop_auto_rerun.fragment_ids:
                    self._stop_ticking()
            case "script_finished":
                self._runs += 1
                self._cache = {
                    h: (m, used)
                    for h, (m, used) in self._cache.items()
                    if self._runs - used <= self._max_age
                }

    def _stop_ticking(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self._ticker, self._ticking = None, None


class Window:
    """The server's CPU time (and, with `health`, health checks, 20 a second: a p99 of a
    few dozen would be their maximum) over a measuring window."""

    def __init__(self, url: str, pid: int, health: bool = True):
        self.url, self.pid, self.polls = url, pid, health

    def start(self) -> None:
        if self.polls:
            from conftest import HealthWatch

            self.health = HealthWatch(self.url, every=0.05).start()
        self.cpu, self.began = cpu_seconds(self.pid), time.monotonic()
        self.client = time.process_time()  # this process's: the visitors' own work

    def stop(self) -> None:
        self.ended = time.monotonic()
        self.cpu = (cpu_seconds(self.pid) - self.cpu) / (self.ended - self.began)
        self.client = (time.process_time() - self.client) / (self.ended - self.began)
        if self.polls:
            self.health.stop()


def saw_it_train(t: Tally) -> bool:
    """Whether a page has been refreshed twice and seen the run's progress move."""
    return t.fragment_runs >= 2 and len(t.progress) > 1 and max(t.progress) > min(t.progress)


async def arrive_and_watch(
    pages: list[Tally], window: Window, seconds: float, settle: float = 90, steady: float = 5
) -> None:
    """Pages arrive; once each has drawn the whole page (or after `settle` seconds), and
    `steady` seconds more (as more pages arrive, the first ones are drawn again with a
    slower timer), `window` measures for `seconds`. Then the pages go on watching until
    each has seen the run train (saw_it_train; at most `settle` seconds more): on a slow or
    busy machine the window's seconds may not hold two refreshes of every page."""
    deadline = time.monotonic() + settle
    while any(t.page_runs < 1 for t in pages) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(steady)
    window.start()
    await asyncio.sleep(seconds)
    window.stop()
    deadline = time.monotonic() + settle
    while not all(saw_it_train(t) for t in pages) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def crowd(url: str, n: int, window: Window, seconds: float, stagger: float = 0.05):
    """`n` visitors open the Train page `stagger` s apart; once all have drawn it, `window`
    measures for `seconds`. Their tallies."""
    stop = asyncio.Event()
    visitors = [Visitor(url) for _ in range(n)]

    async def one(i: int, visitor: Visitor) -> Tally:
        await asyncio.sleep(i * stagger)
        return await visitor.visit(stop)

    tasks = [asyncio.create_task(one(i, v)) for i, v in enumerate(visitors)]
    try:
        await arrive_and_watch([v.tally for v in visitors], window, seconds)
    finally:
        stop.set()
    return list(await asyncio.gather(*tasks))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used (its children not included)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


async def watch(url: str, pid: int, n: int, seconds: float, start: bool = True) -> dict:
    """One page starts a long run (LONG_RUN; with `start` False, one that trains already
    is followed); while it trains `n` pages arrive, and once all have drawn the page,
    `seconds` are measured. What each page saw in that window."""
    stop = asyncio.Event()
    starter = Visitor(url, query=LONG_RUN)
    clicks = ("train_start",) if start else ()
    started = asyncio.create_task(starter.visit(stop, clicks=clicks))
    deadline = time.monotonic() + 60
    try:
        while not starter.tally.progress:  # the worker process starts, then the run trains
            if time.monotonic() > deadline or started.done():
                raise RuntimeError(f"the run did not start: {starter.tally.errors}")
            await asyncio.sleep(0.1)
        window = Window(url, pid, health=False)
        tallies = await crowd(url, n, window, seconds)
    finally:
        stop.set()
        await started
    pages = []
    for t in tallies:
        answered, unanswered = t.between(window.began, window.ended)
        pages.append({
            "latencies": answered, "unanswered": unanswered, "page_runs": t.page_runs,
            "fragment_runs": t.fragment_runs, "progress": t.progress, "errors": t.errors,
            "bytes": t.bytes_in,
        })  # fmt: skip
    return {"began": window.began, "ended": window.ended, "cpu": window.cpu,
            "client": window.client, "pages": pages}  # fmt: skip


def _elsewhere() -> None:
    """In the visitors' process: a session of its own at nice 10 (see the docstring)."""
    with contextlib.suppress(OSError):
        with open("/proc/self/autogroup", "w") as f:
            f.write("10")
    os.nice(10)


def elsewhere(url: str, pid: int, n: int, seconds: float, start: bool = True):
    """`watch` in a process of its own at a low priority, the health checks polled from
    here meanwhile: (what `watch` returns, the health checks sent within its window)."""
    from conftest import HealthWatch

    health = HealthWatch(url, every=0.05).start()
    try:
        done = subprocess.run(
            [sys.executable, __file__, url, str(pid), str(n), str(seconds), str(int(start))],
            capture_output=True, text=True, timeout=seconds + 300, start_new_session=True,
            preexec_fn=_elsewhere,
        )  # fmt: skip
    finally:
        health.stop()
    if done.returncode:
        raise RuntimeError(f"the visitors' process failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    window = result["began"], result["ended"]
    health.latencies = [
        s for s, t in zip(health.latencies, health.when, strict=True) if window[0] <= t <= window[1]
    ]
    return result, health


if __name__ == "__main__":  # elsewhere's child: URL PID N SECONDS START
    url, pid, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(watch(url, pid, n, seconds, sys.argv[5] == "1"))))
