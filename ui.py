"""What every page of the dashboard shares: the server's trainer, model files, the sidebar.

Streamlit code lives here and in app_pages/; mlp_core never imports Streamlit.
"""

import os
import re
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image

from mlp_core import Checkpoint, ModelFileError, load_checkpoint, load_mnist, mnist_available
from mlp_core.data import data_root
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
from mlp_core.preprocess import Preprocessed

DEFAULT_MODEL = Path(__file__).parent / "models" / "default.pt"
MODELS_DIR = Path(os.environ.get("MLP_MODELS_DIR", Path(__file__).parent / "models"))

# A training run shares the machine with this web server and the browsers watching it. With
# torch's default of one thread per core, every op then waits for a core that is busy
# elsewhere: on 2 cores, one epoch took 44 s instead of 5 s while a browser watched. So the
# dashboard leaves one core free (the CLI keeps torch's default).
torch.set_num_threads(max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0)) - 1)))


@st.cache_resource
def trainer() -> Trainer:
    """The server's one training slot, shared by every session (designed for that)."""
    return Trainer(models_dir=MODELS_DIR)


@st.cache_resource(max_entries=16, show_spinner=False)
def _load(path: str, mtime: float) -> Checkpoint:
    return load_checkpoint(path)  # mtime in the key: a re-saved file is loaded afresh


def load_model(path: str | Path) -> Checkpoint:
    """A model file, loaded once per version and shared read-only; raises ModelFileError."""
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        raise ModelFileError(f"The model file {p.name} no longer exists.") from None
    return _load(str(p), mtime)


def model_files() -> list[Path]:
    """The shipped default first, then models saved from the Train page, newest first."""
    saved = sorted(MODELS_DIR.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [DEFAULT_MODEL, *[p for p in saved if p.resolve() != DEFAULT_MODEL.resolve()]]


def active_model_path() -> Path:
    """This session's active model (the shipped default until the user picks another)."""
    path = Path(st.session_state.setdefault("active_model", str(DEFAULT_MODEL)))
    if not path.exists():
        st.session_state["active_model"] = str(DEFAULT_MODEL)
        return DEFAULT_MODEL
    return path


def set_active_model(path: str | Path) -> None:
    st.session_state["active_model"] = str(path)


def mnist_missing() -> str | None:
    """One sentence if MNIST is not on disk here, else None."""
    if mnist_available():
        return None
    return (
        f"MNIST is not on this machine (looked in {data_root().resolve() / 'MNIST' / 'raw'}) "
        "and cannot be downloaded now: set the MNIST_ROOT variable to a folder that holds "
        "MNIST/raw/ and restart the app."
    )


def model_caption(path: Path) -> str:
    """Name, test accuracy and recipe of a model file, in one short line."""
    try:
        ckpt = load_model(path)
    except ModelFileError as e:
        return f"{path.name}: {e}"
    acc = ckpt.test_accuracy
    acc_text = f"test accuracy {acc:.4f}" if acc is not None else "accuracy unknown"
    return f"**{path.stem}** · {acc_text} · {ckpt.recipe.describe()}"


def sidebar(page) -> None:
    """The active model on every page, and a running job's progress on the pages other
    than Train (which shows the run live)."""
    with st.sidebar:
        st.markdown("**Active model**")
        st.caption(model_caption(active_model_path()))
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


def _model_label(path: str) -> str:
    p = Path(path)
    name = f"{p.stem} (shipped)" if p.resolve() == DEFAULT_MODEL.resolve() else p.stem
    try:
        acc = load_model(p).test_accuracy
    except ModelFileError:
        return f"{name} · unreadable"
    return f"{name} · {acc:.2%}" if acc is not None else f"{name} · accuracy unknown"


def model_picker(key: str) -> tuple[Path, Checkpoint | None]:
    """Choose a model file, the active one preselected; a bad file shows its sentence -> None."""
    active = active_model_path()
    files = model_files()
    if not any(p.resolve() == active.resolve() for p in files):
        files.append(active)
    index = next(i for i, p in enumerate(files) if p.resolve() == active.resolve())
    choice = Path(
        st.selectbox(
            "Model", [str(p) for p in files], index=index, format_func=_model_label, key=key
        )
    )
    try:
        return choice, load_model(choice)
    except ModelFileError as e:
        st.error(str(e))
        return choice, None


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


def md_escape(text: str) -> str:
    """Text (a file name) shown literally inside Streamlit markdown."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~:$])", r"\\\1", text)


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
