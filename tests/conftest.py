"""Shared fixtures: tiny synthetic MNIST files, the real MNIST, a live server, a browser.

With CI=true, a test whose prerequisite (real MNIST, Chromium) is missing fails
instead of skipping: CI must run everything.
"""

import contextlib
import gc
import io
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from mlp_core.data import mnist_available
from mlp_core.learner import Callback

CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


FIGURES: list[str] = []


@pytest.fixture
def report(request):
    """report(line): a figure the test measured, printed in pytest's summary even when
    output is captured (make test, CI), so a green run still shows what it measured."""

    def add(line: str) -> None:
        print(f"\n{line}")
        FIGURES.append(f"{request.node.name}: {line}")

    return add


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("measured figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def shown(markdown: str) -> str:
    """The text a reader sees for markdown that escapes what a user typed (ui.plain)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")


def need(condition: bool, reason: str) -> None:
    """Skip locally when a prerequisite is missing; fail under CI."""
    if not condition:
        (pytest.fail if CI else pytest.skip)(reason)


def write_idx(raw: Path, prefix: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Write MNIST's IDX format: big-endian magic and sizes, then raw uint8 bytes."""
    raw.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.to(torch.uint8).numpy().tobytes())
    with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.to(torch.uint8).numpy().tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable fake digits: class k lights a 6x6 block at a spot of its own, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.int32)
    for i, k in enumerate(labels.tolist()):
        r, c = 3 + (k // 4) * 8, 3 + (k % 4) * 6
        images[i, r : r + 6, c : c + 6] += 180
    return images.clamp(0, 255).to(torch.uint8), labels


def make_tiny_mnist(root: Path, n_train: int = 600, n_test: int = 200) -> Path:
    raw = root / "MNIST" / "raw"
    write_idx(raw, "train", *synthetic_digits(n_train, 0))
    write_idx(raw, "t10k", *synthetic_digits(n_test, 1))
    return root


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    """A folder holding MNIST/raw/ with 600 train and 200 test synthetic images."""
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


@pytest.fixture(scope="session")
def bad_corpus(tmp_path_factory) -> tuple[Path, list]:
    """The hostile and awkward upload files of make_bad_corpus.py, and what each must give."""
    from make_bad_corpus import write_bad_corpus

    folder = tmp_path_factory.mktemp("bad_corpus")
    return folder, write_bad_corpus(folder)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real MNIST (MNIST_ROOT); skipped locally when absent, a failure under CI."""
    root = os.environ.get("MNIST_ROOT")
    need(bool(root) and mnist_available(root), "real MNIST not found: set MNIST_ROOT")
    return Path(root)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(env: dict[str, str] | None = None, timeout: float = 60.0):
    """Run `streamlit run dashboard.py` on a free loopback port; yield its URL; stop it."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "dashboard.py",
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    # the log goes to a file, not a pipe: a pipe nobody reads fills up and stalls the server
    log = tempfile.TemporaryFile(mode="w+")
    env = {**os.environ, **(env or {})}
    if "MLP_HISTORY" not in env:  # a history of its own, never the repository's
        env["MLP_HISTORY"] = str(Path(tempfile.mkdtemp(prefix="history-")) / "runs.sqlite")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"streamlit exited early:\n{log.read()}")
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("streamlit did not become healthy in time")
            time.sleep(0.3)
        proc.url = url
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# The health poller's loop, run in a process of its own: in the test's process its thread
# would wait for that process's interpreter (busy driving nine browsers) and count the wait
# as the server's.
_POLL = """
import sys, time, urllib.request
url, every = sys.argv[1], float(sys.argv[2])
while True:
    began = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status = "ok" if r.status == 200 else f"HTTP {r.status}"
    except OSError as e:
        status = repr(e).replace(" ", "_")
    print(began, time.monotonic() - began, status, flush=True)
    time.sleep(every)
"""


class HealthWatch:
    """Polls /_stcore/health a few times a second from its own process; `stop` returns it
    with every check's latency (seconds), start time (time.monotonic) and failures."""

    def __init__(self, url: str, every: float = 0.25):
        self.url, self.every = f"{url}/_stcore/health", every
        self.latencies: list[float] = []
        self.when: list[float] = []  # time.monotonic() each check was sent (one clock for all)
        self.failures: list[str] = []

    def start(self) -> "HealthWatch":
        self._out = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _POLL, self.url, str(self.every)], stdout=self._out
        )
        return self

    def __enter__(self) -> "HealthWatch":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> "HealthWatch":
        self._proc.terminate()
        self._proc.wait(10)
        self._out.seek(0)
        for line in self._out.read().splitlines():
            began, latency, status = line.split()
            self.when.append(float(began))
            self.latencies.append(float(latency))
            if status != "ok":
                self.failures.append(status)
        self._out.close()
        return self


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _chromium(executable: str):
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    need(Path(CHROMIUM).exists() or bool(shutil.which("chromium")), "chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api") if not CI else None
    if sync_api is None:
        from playwright import sync_api
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture  # one per test: a test that leaves pages or load behind cannot slow the next
def browser():
    """Chromium, as every browser test uses it."""
    yield from _chromium(CHROMIUM)


@pytest.fixture
def visitors_browser():
    """Chromium at the training worker's low priority, standing in for visitors' browsers
    on their own machines: the load test measures the server, not how the server and nine
    Chromiums share two cores (see chromium_elsewhere.sh)."""
    yield from _chromium(str(REPO / "tests" / "chromium_elsewhere.sh"))


# -- the dashboard under AppTest ---------------------------------------------------------------

DASHBOARD = str(REPO / "dashboard.py")
TRAIN, SAMPLES, PREDICT = "app_pages/train.py", "app_pages/samples.py", "app_pages/predict.py"


@pytest.fixture(autouse=True)
def process_settings():
    """What a test changes of this process's settings is undone after it, so a test runs the
    same alone and in the suite: AppTests run ui.serve() here (torch's threads, the
    interpreter's switch interval, frozen garbage), lessons set torch's threads."""
    threads, interop, interval = (
        torch.get_num_threads(),
        torch.get_num_interop_threads(),
        sys.getswitchinterval(),
    )
    frozen = gc.get_freeze_count()
    yield
    torch.set_num_threads(threads)
    sys.setswitchinterval(interval)
    if frozen == 0 and gc.get_freeze_count():
        gc.unfreeze()
    assert torch.get_num_interop_threads() == interop  # cannot be set back: never set it


@pytest.fixture(autouse=True)
def dashboard_state(tmp_path, monkeypatch):
    """Each test's dashboard saves and lists models in its own tmp_path and starts with no
    cached trainer or model; any run it started is stopped and joined at the end.

    AppTest runs dashboard.py inside this process: `ui` is imported once and its
    st.cache_resource singletons (the trainer) are shared by every AppTest, so they are
    cleared here. The server reads MLP_MODELS_DIR when asked (ui.models_dir), never at import.
    """
    monkeypatch.setenv("MLP_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("MLP_HISTORY", str(tmp_path.parent / f"{tmp_path.name}-runs.sqlite"))
    if "ui" in sys.modules:
        import streamlit as st

        st.cache_resource.clear()
    yield
    if "ui" in sys.modules:
        import streamlit as st

        from mlp_core.service import trainer

        for made in list(trainer._LIVE):  # a trainer the test's pages made (none if unused)
            made.close()  # stops its runs and its worker processes
        st.cache_resource.clear()


def open_page(page: str, timeout: float = 60):
    """The whole dashboard under AppTest, switched to `page` (e.g. TRAIN), without errors."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(DASHBOARD, default_timeout=timeout).run()
    at.switch_page(page).run()
    assert not at.exception
    return at


@pytest.fixture
def app(tiny_mnist, monkeypatch):
    """The Train page on tiny synthetic MNIST, with a fresh trainer (see dashboard_state)."""
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    return open_page(TRAIN, timeout=30)


def start(at, **fields):
    """Fill the recipe form's train_<field> widgets, press Start training, run the page."""
    for name, value in fields.items():
        at.get_by_key(f"train_{name}").set_value(value)
    return at.button(key="train_start").click().run()


def wait_for(condition, timeout: float = 60.0, poll: float = 0.02, why=lambda: "timed out"):
    """Wait until condition() is true; fail after `timeout` seconds, saying why()."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, why()
        time.sleep(poll)


def wait_until_training(run, steps: int = 2, timeout: float = 60) -> None:
    """Wait until `run` has trained `steps` batches (its worker process starts first)."""
    wait_for(lambda: run.snapshot(curves=False).step >= steps, timeout, poll=0.05,
             why=lambda: run.snapshot(curves=False).message)  # fmt: skip


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc (psutil is not needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def assert_draws_follow_the_seed(a: list, b: list, c: list) -> None:
    """a, b: the draws of three steps from seed 0, twice; c: from seed 1."""
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[1], a[2])  # new draws each step
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)  # same seed, same draws
    assert not torch.equal(a[0], c[0])


class Nudge(Callback):
    """Moves every starting weight by one float32 ulp: the smallest change float32 can make."""

    order = -100

    def before_fit(self, learn):
        with torch.no_grad():
            for p in learn.model.parameters():
                p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))


def assert_within_rounding(got, want, nudged, factor: float = 10) -> None:
    """`got` (losses, or weights) is the computation `want` is, as far as float32 can tell.

    Two training runs whose arithmetic is ordered differently round differently, and every
    step carries the rounding forward, so no fixed tolerance fits 50 steps on every CPU. The
    yardstick: how far `want`'s own run drifts when its start moves by one ulp (`nudged`,
    by Nudge). Within `factor` times that, the two are the same computation; a real
    difference (a rate one step late, a missing decay) is thousands of times larger.
    """

    def gap(a, b) -> float:
        a = [torch.as_tensor(x).detach() for x in ([a] if isinstance(a[0], float) else a)]
        b = [torch.as_tensor(x).detach() for x in ([b] if isinstance(b[0], float) else b)]
        return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))

    floor = max(gap(nudged, want), torch.finfo(torch.float32).eps)
    assert gap(got, want) <= factor * floor, (gap(got, want), floor)


def texts(elements) -> list[str]:
    return [e.value for e in elements]


# -- what a page shows, and what a hostile browser sends ------------------------------------


@pytest.fixture
def forge(monkeypatch):
    """forge(key, value): from now on the selectbox `key` sends `value` as its state, as a
    browser that rewrites its websocket messages does (the real frontend sends the
    chosen option's label as a string)."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from streamlit.testing.v1.element_tree import Selectbox

    forged: dict[str, str] = {}
    real = Selectbox._widget_state.fget

    def state(self):
        if self.key not in forged:
            return real(self)
        ws = WidgetState()
        ws.id, ws.string_value = self.id, forged[self.key]
        return ws

    monkeypatch.setattr(Selectbox, "_widget_state", property(state))
    return forged.__setitem__


@pytest.fixture
def outside_model(tmp_path) -> str:
    """A valid model file outside the models folder, whose answers differ from the shipped one."""
    from mlp_core import DigitClassifier, Recipe, save_checkpoint

    torch.manual_seed(1)
    outside = tmp_path / "elsewhere" / "outside.pt"  # tmp_path itself is the models folder
    return str(save_checkpoint(outside, DigitClassifier(), Recipe()))


def forged_values(tmp_path, outside_model) -> list[str]:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    return [outside_model, "/dev/zero", str(fifo), "../models/default.pt", "/etc/passwd"]


def markdown(at) -> list[str]:
    return [m.value for m in at.markdown]


def predictions(at) -> list[str]:
    return [m for m in markdown(at) if "Prediction:" in m]


def grid(at) -> list[int]:
    """The picture numbers shown in the grid, in order (the `#i` button under each picture)."""
    return [int(b.label[1:]) for b in at.button if b.key and b.key.startswith("samples_pick_")]


def chart_data(chart, i: int = 0):
    """Dataset `i` of an st.altair_chart element, decoded from the Arrow bytes it sends."""
    import pyarrow as pa

    return pa.ipc.open_stream(chart.proto.datasets[i].data.data).read_all().to_pandas()


# -- pictures and callbacks --------------------------------------------------------------------


def png(img, fmt: str = "PNG") -> bytes:
    """A PIL image's bytes as a file of format `fmt`."""
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def seven_png() -> bytes:
    """A thick white 7 on black, as drawn on the dashboard's canvas, as PNG bytes."""
    from make_bad_corpus import seven

    return png(seven())


@pytest.fixture(scope="session")
def tiny():
    """(train, test) Splits of learnable synthetic digits: 500 and 200 images."""
    from mlp_core import Split

    return Split(*synthetic_digits(500, 0)), Split(*synthetic_digits(200, 1))


class Raise(Callback):
    """A callback raising `error` at batch `step`, as a crash in the training thread would."""

    def __init__(self, error: BaseException, step: int = 3):
        self.error, self.step = error, step

    def after_batch(self, learn):
        if learn.step == self.step:
            raise self.error


# the width and height of an element's part that the boxes around it, in its page or in the
# component's shadow tree, leave in view (those whose overflow is not visible clip it)
VISIBLE = """e => {
    const r = e.getBoundingClientRect();
    let [l, t, rt, b] = [r.left, r.top, r.right, r.bottom];
    for (let n = e.parentNode; n && n !== document; n = n.parentNode || n.host) {
        if (!(n instanceof Element)) continue;
        const s = getComputedStyle(n);
        if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
        const q = n.getBoundingClientRect();
        [l, t, rt, b] = [Math.max(l, q.left), Math.max(t, q.top), Math.min(rt, q.right),
                         Math.min(b, q.bottom)];
    }
    return [Math.round(Math.max(0, rt - l)), Math.round(Math.max(0, b - t))];
}"""


def draw_strokes(page, canvas, strokes: list[list[tuple[int, int]]]) -> None:
    """Draw each stroke (points in the canvas's pixels) with the mouse, as a visitor does:
    press at its first point, move through the others, release."""
    box = canvas.bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        page.mouse.up()


@contextlib.contextmanager
def open_dashboard(browser, env: dict[str, str], width=1400, height=2000, timeout_ms=60_000):
    """A live server (streamlit_server with `env`) and a browser page at its root, as a
    visitor enters; yields (server, page) and closes both."""
    with streamlit_server(env) as server:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(timeout_ms)
        try:
            page.goto(server.url)
            yield server, page
        finally:
            page.close()
