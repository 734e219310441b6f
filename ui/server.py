"""What every page of the dashboard shares: the server's trainer, model files, the sidebar.

Streamlit code lives here and in app_pages/; mlp_core never imports Streamlit.
"""

import contextlib
import ctypes
import functools
import gc
import os
import re
import threading
import time
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image
from streamlit.runtime import Runtime
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from mlp_core import Checkpoint, ModelFileError, load_checkpoint, load_mnist, mnist_available
from mlp_core.checkpoint import MAX_FILE_BYTES, Summary, read_summary
from mlp_core.data import data_root
from mlp_core.files import regular_file_size
from mlp_core.insight import (
    activations,
    diverging_rgb,
    saliency,
    saliency_overlay,
    top_units,
    weight_images,
)
from mlp_core.jobs import Trainer
from mlp_core.metrics import predict_probs
from mlp_core.numbers import UNSURE, verdict
from mlp_core.preprocess import Preprocessed

DEFAULT_MODEL = Path(__file__).parent / "models" / "default.pt"
DEFAULT_NAME = "default"
MODELS_DIR = Path(os.environ.get("MLP_MODELS_DIR", Path(__file__).parent / "models"))


def models_dir() -> Path:
    """Where models are saved and listed (MLP_MODELS_DIR, else models/ beside this file)."""
    return Path(MODELS_DIR)


# A training run shares the machine with this web server and the browsers watching it. With
# torch's default of one thread per core, every op then waits for a core that is busy
# elsewhere: on 2 cores, one epoch took 44 s instead of 5 s while a browser watched. So the
# dashboard leaves one core free (the CLI keeps torch's default).
torch.set_num_threads(max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0)) - 1)))


MAX_FILES_PER_UPLOAD = 20  # pictures read from one upload
MAX_SESSION_UPLOAD_BYTES = 50 * 2**20  # uploaded bytes one browser session may hold


def _trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim; else nothing).

    An upload arrives in many small pieces, which land in the heap between other objects;
    once freed, their pages stay with the process unless trimmed.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _return_freed_memory_to_the_system() -> None:
    """Let freed uploads go back to the operating system, not stay in the server's heap.

    glibc serves allocations above a threshold with their own mmap, returned on free; but
    after each such free it raises the threshold (up to 32 MB), so the next uploads (a few
    MB each) land in the heap, which rarely shrinks: the server kept 2.7 GB after three
    browsers uploaded 750 MB and left. Fixing the threshold at 1 MB keeps every upload in
    its own mapping. Elsewhere (not glibc) this does nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 2**20)  # M_MMAP_THRESHOLD


_return_freed_memory_to_the_system()


SWEEP_SECONDS = 5.0  # how often uploads of departed browsers are looked for


def _sweep_departed_uploads_forever() -> None:
    """Free the uploaded files of sessions that no longer exist, every SWEEP_SECONDS.

    Streamlit keeps a departed browser's session for server.disconnectedSessionTTL
    seconds, in case it reconnects, and then forgets it without closing it: its state and
    uploads would stay in the server's memory for good (three browsers that uploaded
    750 MB and left cost the server 2.7 GB until restart). This closes expired sessions
    and frees any upload whose session is gone. (It reads Streamlit's session storage,
    which has no public API for this; any failure here is ignored.)
    """
    while True:
        time.sleep(SWEEP_SECONDS)
        with contextlib.suppress(Exception):  # never let housekeeping take the server down
            runtime = Runtime.instance()
            # sessions past their TTL: closed properly (state, uploads), not merely forgotten
            stored = runtime._session_mgr._session_storage._cache
            expired = stored.expire()
            for _, info in expired:
                info.session.shutdown()
            mgr = runtime.uploaded_file_mgr
            departed = []
            if isinstance(mgr, MemoryUploadedFileManager):
                live = {info.session.id for info in runtime._session_mgr.list_sessions()}
                departed = [sid for sid in list(mgr.file_storage) if sid not in live]
                for session_id in departed:
                    mgr.remove_session_files(session_id)
            if expired or departed:
                gc.collect()  # a session's objects refer to each other: free them now
                _trim_heap()


@st.cache_resource
def start_upload_sweeper() -> threading.Thread | None:
    """One sweeper thread per server (none under AppTest, which has no Runtime)."""
    if not Runtime.exists():
        return None
    thread = threading.Thread(target=_sweep_departed_uploads_forever, daemon=True)
    thread.start()
    return thread


def limit_uploads(files: list) -> tuple[list, str | None]:
    """The uploaded files this page will read, and a sentence if some were dropped.

    At most MAX_FILES_PER_UPLOAD files and MAX_SESSION_UPLOAD_BYTES in all; the rest are
    removed from the server's memory at once (see keep_only_uploads).
    """
    kept, total = [], 0
    for f in files or []:
        if len(kept) < MAX_FILES_PER_UPLOAD and total + f.size <= MAX_SESSION_UPLOAD_BYTES:
            kept.append(f)
            total += f.size
    dropped = len(files or []) - len(kept)
    if not dropped:
        return kept, None
    return kept, (
        f"Only the first {len(kept)} pictures were read: one upload takes at most "
        f"{MAX_FILES_PER_UPLOAD} pictures and {MAX_SESSION_UPLOAD_BYTES // 2**20} MB in all. "
        "Remove some and add the others after."
    )


def keep_only_uploads(files: list) -> None:
    """Free every file this session uploaded except `files` (call after the page's last
    uploader): files beyond the limits, and any a forged request sent that no widget
    shows, leave the server's memory now rather than when the session ends."""
    start_upload_sweeper()
    ctx = get_script_run_ctx()
    mgr = getattr(ctx, "uploaded_file_mgr", None)
    if not isinstance(mgr, MemoryUploadedFileManager):
        return
    keep = {f.file_id for f in files if f is not None}
    for file_id in list(mgr.file_storage.get(ctx.session_id, {})):
        if file_id not in keep:
            mgr.remove_file(ctx.session_id, file_id)


@st.cache_resource
def trainer() -> Trainer:
    """The server's one training slot, shared by every session (designed for that)."""
    return Trainer(models_dir=models_dir())


@st.cache_resource(max_entries=16, show_spinner=False)
def _load(path: str, size: int, mtime: int) -> Checkpoint:
    return load_checkpoint(path)  # size and mtime in the key: a re-saved file is loaded afresh


def _version(path: Path) -> tuple[int, int]:
    """(size, mtime in ns) of a regular model file, or ModelFileError without opening it."""
    size = regular_file_size(path, MAX_FILE_BYTES, ModelFileError, "model file")
    return size, path.stat().st_mtime_ns


def load_model(path: str | Path) -> Checkpoint:
    """A model file, loaded once per version and shared read-only; raises ModelFileError.

    Only for paths from `model_files()`: never for a name a browser sent.
    """
    p = Path(path)
    return _load(str(p), *_version(p))


@functools.lru_cache(maxsize=512)
def _summary(path: str, size: int, mtime: int) -> Summary | str:
    try:
        return read_summary(path)
    except ModelFileError as e:
        return str(e)


def summary(path: Path) -> Summary | str:
    """Recipe and accuracy of a model file for its label (not its weights), or why not."""
    try:
        return _summary(str(path), *_version(path))
    except ModelFileError as e:
        return str(e)


def model_files() -> dict[str, Path]:
    """{name: path}: the shipped default first, then the models folder's files, newest first.

    The only model files the dashboard opens: a name a browser sends is looked up here.
    """
    saved = []
    for p in models_dir().glob("*.pt"):
        with contextlib.suppress(OSError):
            if p.is_file() and p.resolve() != DEFAULT_MODEL.resolve():
                saved.append((p.stat().st_mtime, p))
    files = {DEFAULT_NAME: DEFAULT_MODEL}
    for _, p in sorted(saved, reverse=True):
        files.setdefault(p.stem, p)
    return files


def active_model_name() -> str:
    """This session's active model (the shipped default until the user picks another)."""
    name = st.session_state.get("active_model")
    if name not in model_files():  # never set, deleted since, or not a name we gave
        name = st.session_state["active_model"] = DEFAULT_NAME
    return name


def active_model_path() -> Path:
    return model_files()[active_model_name()]


def set_active_model(path: str | Path) -> None:
    """Make the model file at `path` (one of model_files()) the active one."""
    name = next((n for n, p in model_files().items() if str(p) == str(path)), DEFAULT_NAME)
    st.session_state["active_model"] = name


def mnist_missing() -> str | None:
    """One sentence if MNIST is not on disk here, else None (no server folders in it)."""
    if mnist_available():
        return None
    return (
        "MNIST is not on this server and cannot be downloaded now: whoever runs it can set "
        "the MNIST_ROOT variable to a folder that holds MNIST/raw/ and restart the app."
    )


def model_caption(name: str) -> str:
    """Name, test accuracy and recipe of a model file, in one short line."""
    info = summary(model_files().get(name, DEFAULT_MODEL))
    if isinstance(info, str):
        return f"{plain(name)}: {plain(info)}"
    acc = info.test_accuracy
    acc_text = f"test accuracy {acc:.4f}" if acc is not None else "accuracy unknown"
    return f"**{plain(name)}** · {acc_text} · {plain(info.recipe.describe())}"


def sidebar(page) -> None:
    """The active model on every page, and a running job's progress on the pages other
    than Train (which shows the run live)."""
    start_upload_sweeper()
    with st.sidebar:
        st.markdown("**Active model**")
        st.caption(model_caption(active_model_name()))
        # Drawn with the page, not refreshed by a timer: a fragment ticking every second on
        # every page made Streamlit drop the output of long page runs (eight users uploading
        # pictures while a run trained were left with some answers missing, for good).
        job = trainer().current
        snap = job.snapshot() if job is not None else None
        if snap is not None and snap.active and page.url_path != "train":
            st.markdown("**Training**")
            epoch = f"Epoch {min(snap.epoch + 1, snap.epochs)}/{snap.epochs}"
            st.progress(snap.progress, text=f"{epoch} when this page opened")
            st.page_link("app_pages/train.py", label="Follow it live", icon=":material/monitoring:")


# Shared by the Samples and Predict pages: a model chooser, cached predictions over MNIST,
# and the pictures and charts that show what a model thinks.


def model_label(name: str) -> str:
    """`default (shipped) · 99.18%` from the file's small summary; any value is safe here,
    since a forged widget value reaches this function too (it is never opened as a path)."""
    path = model_files().get(name) if isinstance(name, str) else None
    if path is None:
        return "unknown model"
    shown = f"{name} (shipped)" if name == DEFAULT_NAME else name
    info = summary(path)
    if isinstance(info, str):
        return f"{shown} · unreadable"
    acc = info.test_accuracy
    return f"{shown} · {acc:.2%}" if acc is not None else f"{shown} · accuracy unknown"


def model_picker(key: str) -> tuple[Path, Checkpoint | None]:
    """Choose a model file, the active one preselected; a bad file shows its sentence -> None.

    The options are names from the server's own list. A value that is not among them (a
    browser can send anything) is ignored and the active model kept.
    """
    files = model_files()
    names = list(files)
    active = active_model_name()
    choice = st.selectbox(
        "Model", names, index=names.index(active), format_func=model_label, key=key
    )
    if choice not in files:
        choice = active
    path = files[choice]
    try:
        return path, load_model(path)
    except ModelFileError as e:
        st.error(plain(str(e)))
        return path, None


@st.cache_data(max_entries=8, show_spinner="Running the model over MNIST…")
def _split_probs(path: str, mtime: float, root: str, train: bool) -> np.ndarray:
    split = load_mnist(train, root, download=False)
    return predict_probs(load_model(path).model, split.images).numpy()


def split_probs(path: str | Path, train: bool) -> np.ndarray:
    """(N, 10) probabilities of a model over a whole MNIST split, computed once per model file.

    Keyed by the file's mtime (a re-saved model is rerun) and by where MNIST is read from.
    Raises ModelFileError or DataError.
    """
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        raise ModelFileError(f"The model file {p.name} no longer exists.") from None
    return _split_probs(str(p), mtime, str(data_root().resolve()), train)


def upscale(image: Image.Image | torch.Tensor, side: int) -> Image.Image:
    """A 28x28 picture (PIL, or a uint8 tensor) blown up with hard pixel edges, to be seen."""
    if isinstance(image, torch.Tensor):
        image = Image.fromarray(image.numpy())
    return image.resize((side, side), Image.Resampling.NEAREST)


def enlarge(rgb: np.ndarray, factor: int) -> Image.Image:
    """An (h, w, 3) uint8 picture blown up `factor` times with hard pixel edges."""
    h, w = rgb.shape[:2]
    return Image.fromarray(rgb).resize((w * factor, h * factor), Image.Resampling.NEAREST)


def plain(text: str) -> str:
    """Text a user typed or named (a file name, a field), shown literally inside markdown.

    On one line, only inline marks can act: emphasis, code, strikethrough, math, tables,
    HTML, [links](...), ![images](...), :red[colours] and :material/icons:; a character
    of each is escaped. Bare addresses (www.x.org, a@b.c, http://...) become links
    after escapes are read, so a zero-width space breaks their pattern instead.
    """
    text = " ".join(str(text).splitlines())  # one line: no headings, lists or blocks
    text = re.sub(r"(?i)(www|://|@)", lambda m: m[1][:1] + "\u200b" + m[1][1:], text)
    text = re.sub(r"([\\`*_<>~|$])", r"\\\1", text).replace("](", "]\\(")
    return re.sub(r":(?=\S)", r"\\:", text)  # :red[...], :material/icon:


def prediction_line(probs) -> str:
    """`Prediction: 7 (98.2%)` for ten probabilities."""
    digit = int(np.argmax(probs))
    return f"Prediction: {digit} ({float(probs[digit]):.1%})"


def probability_chart(probs, height: int = 180) -> alt.Chart:
    """Bars of the ten class probabilities, digits 0-9 in order, the winner highlighted."""
    digits = [str(d) for d in range(10)]
    df = pd.DataFrame({"digit": digits, "probability": [float(p) for p in probs]})
    top = digits[int(np.argmax(probs))]
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("digit:O", sort=digits, axis=alt.Axis(labelAngle=0, title="digit")),
            y=alt.Y(
                "probability:Q",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", title=None, values=[0, 0.25, 0.5, 0.75, 1]),
            ),
            color=alt.condition(alt.datum.digit == top, alt.value("#ff4b4b"), alt.value("#a3a8b8")),
            tooltip=["digit", alt.Tooltip("probability:Q", format=".2%")],
        )
        .properties(height=height)
    )


def show_prediction(
    model: torch.nn.Module, prep: Preprocessed, key: str, why_open: bool = False
) -> np.ndarray:
    """The answer, its ten probabilities and the 28x28 picture the network saw; returns probs.

    Below them, a "Why this answer?" expander (widget key `key`, open if `why_open`) looks
    inside the network. Its views are computed only while it is open: drawing them costs a
    few times more than the answer itself, too much for many uploads at once.
    """
    probs = predict_probs(model, prep.tensor)[0].numpy()  # (10,)
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        st.image(upscale(prep.preview, 140), caption="What the network sees")
    with right:
        st.markdown(f"#### {prediction_line(probs)}")
        if float(np.max(probs)) < UNSURE:  # say so rather than only print a digit
            st.caption(f"The network is {verdict(probs)}.")
        st.altair_chart(probability_chart(probs), width="stretch")
    why = st.expander(
        "Why this answer?",
        expanded=why_open,
        key=key,
        on_change="rerun",
        icon=":material/psychology:",
    )
    with why:
        if why.open:
            show_why(model, prep.tensor[0], int(np.argmax(probs)))
    return probs


STRIP_HEIGHT = 44  # pixels: a row of markers above a 30-pixel strip of cells


def activation_strip(values: torch.Tensor, marked: list[int] = ()) -> alt.LayerChart:
    """One hidden layer's activations as a row of cells, pale grey = 0, darker = more active;
    a red triangle above each unit in `marked`."""
    df = pd.DataFrame({"unit": range(len(values)), "activation": values.tolist()})
    x = alt.X("unit:O", axis=None)
    cells = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=x,
            y=alt.value(10),  # pixels from the top: below the markers
            y2=alt.value(STRIP_HEIGHT),
            color=alt.Color(
                "activation:Q",
                # rgb: the default (hcl) interpolation tints the low end pink
                scale=alt.Scale(range=["#eceef3", "#3f007d"], domainMin=0, interpolate="rgb"),
                legend=None,
            ),
            tooltip=["unit", alt.Tooltip("activation:Q", format=".3f")],
        )
    )
    markers = (
        alt.Chart(pd.DataFrame({"unit": list(marked)}))
        .mark_point(shape="triangle-down", filled=True, size=50, color="#ff4b4b", opacity=1)
        .encode(x=x, y=alt.value(4), tooltip=["unit"])
    )
    return (cells + markers).configure_view(stroke=None)


def show_why(model: torch.nn.Module, x: torch.Tensor, digit: int) -> None:
    """Inside the network for one image `x` (28, 28) answered `digit`: activations, the units
    that voted for it and the pixels that drove it, each with one line for a learner."""
    acts = activations(model, x)  # [(256,), (64,)]
    units = top_units(model, x, digit, k=5)  # [(unit, contribution)], largest first
    sal = saliency(model, x, digit)  # (28, 28)
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        st.image(enlarge(saliency_overlay(x, sal), 5), caption="Which ink mattered")
    with right:
        for i, a in enumerate(acts):
            st.markdown(
                f":small[**Hidden layer {i + 1}**: {int((a > 0).sum())} of {len(a)} units active]"
            )
            marked = [u for u, _ in units] if i == 0 else []
            st.altair_chart(activation_strip(a, marked), width="stretch", height=STRIP_HEIGHT)
    st.caption(
        f"**Left:** red ink pushed the answer towards {digit}, blue ink pushed against it "
        "(gradient × pixel). **Right:** each cell is one unit after its ReLU, darker = more "
        "active, pale grey = silent (0); the red triangles mark the units below."
    )
    st.markdown(f"**The first-layer units that voted most for {digit}**")
    templates = weight_images(model, n=len(acts[0]))  # (256, 28, 28)
    for col, (u, c) in zip(st.columns(len(units)), units):
        col.image(enlarge(diverging_rgb(templates[u]), 4), caption=f"unit {u} · {c:+.2f}")
    st.caption(
        "Each picture is one unit's 784 weights: ink on red pixels raises the unit, ink on "
        f"blue ones lowers it. The number is how much the unit added to the score of {digit}."
    )


def confusion_chart(cm: torch.Tensor) -> alt.LayerChart:
    """Heatmap of a confusion matrix with its counts: rows true digit, columns predicted."""
    n = cm.shape[0]
    df = pd.DataFrame(
        [(str(t), str(p), int(cm[t, p])) for t in range(n) for p in range(n)],
        columns=["true", "predicted", "count"],
    )
    digits = [str(d) for d in range(n)]
    base = alt.Chart(df).encode(
        x=alt.X("predicted:O", sort=digits, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("true:O", sort=digits),
    )
    # symlog: the diagonal holds ~1000 per cell, mistakes a handful; both must stay readable.
    zero = alt.datum.count == 0
    cells = base.mark_rect().encode(
        color=alt.when(zero)
        .then(alt.value("white"))
        .otherwise(
            alt.Color("count:Q", scale=alt.Scale(type="symlog", scheme="blues"), legend=None)
        ),
        tooltip=["true", "predicted", "count"],
    )
    text = base.mark_text(fontSize=12).encode(
        text="count:Q",
        color=alt.when(zero)
        .then(alt.value("#c7c9d1"))
        .when(alt.datum.count > 100)
        .then(alt.value("white"))
        .otherwise(alt.value("#262730")),
    )
    return (cells + text).properties(height=380)
