"""The model files a visitor may choose: the server's own list, cached loads, the chooser.

A name a browser sends is looked up in `model_files()`, never opened as a path.
"""

import contextlib
import functools
from pathlib import Path

import numpy as np
import streamlit as st

from mlp_core import Checkpoint, ModelFileError, load_checkpoint, load_mnist
from mlp_core.checkpoint import MAX_FILE_BYTES, Summary, read_summary
from mlp_core.data import data_root
from mlp_core.files import regular_file_size
from mlp_core.metrics import predict_probs

from .format import plain
from .server import models_dir

DEFAULT_MODEL = Path(__file__).parents[1] / "models" / "default.pt"
DEFAULT_NAME = "default"


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


def model_caption(name: str) -> str:
    """Name, test accuracy and recipe of a model file, in one short line."""
    info = summary(model_files().get(name, DEFAULT_MODEL))
    if isinstance(info, str):
        return f"{plain(name)}: {plain(info)}"
    acc = info.test_accuracy
    acc_text = f"test accuracy {acc:.4f}" if acc is not None else "accuracy unknown"
    return f"**{plain(name)}** · {acc_text} · {plain(info.recipe.describe())}"


def model_label(name: str, files: dict[str, Path] | None = None) -> str:
    """`default (shipped) · 99.36%` from the file's small summary; any value is safe here,
    since a forged widget value reaches this function too (it is never opened as a path).

    `files`: the list the chooser was built from (else read again), so labelling every
    option does not list the folder once per option.
    """
    files = model_files() if files is None else files
    path = files.get(name) if isinstance(name, str) else None
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
        "Model",
        names,
        index=names.index(active),
        format_func=functools.partial(model_label, files=files),
        key=key,
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
