"""Shared fixtures: tiny synthetic MNIST files, the real MNIST, a live server, a browser.

With CI=true, a test whose prerequisite (real MNIST, Chromium) is missing fails
instead of skipping: CI must run everything.
"""

import contextlib
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
    proc = subprocess.Popen(
        cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
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


@pytest.fixture  # one per test: a test that leaves pages or load behind cannot slow the next
def browser():
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    need(Path(CHROMIUM).exists() or bool(shutil.which("chromium")), "chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api") if not CI else None
    if sync_api is None:
        from playwright import sync_api
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
