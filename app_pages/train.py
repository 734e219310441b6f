"""Train: fill in a recipe, start a run on this server, watch the loss fall, keep the model.

The run itself lives in `ui.trainer()` (mlp_core.jobs): its own thread, shared by every tab.
This page only fills a Recipe, starts or stops the run, and draws the run's snapshot.
"""

import re
from dataclasses import replace
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st
import torch

import ui
from mlp_core import (
    DataError,
    DeviceError,
    ModelFileError,
    Recipe,
    RecipeError,
    load_mnist,
    usable_devices,
)
from mlp_core.augment import random_affine
from mlp_core.checkpoint import check_quota, save_as
from mlp_core.data import to_float
from mlp_core.insight import grey_rgb, template_grid, tile
from mlp_core.jobs import JobBusyError, Snapshot
from mlp_core.lr_finder import LRFinderResult
from mlp_core.optim import OPTIMIZERS
from mlp_core.recipe import INITS, SCHEDULES

OPTIMIZER_NAMES = {
    "basic": "basic (the notebook's BasicOptim)",
    "sgd": "sgd (with momentum)",
    "adam": "adam",
}
SMOOTHING = 50  # the moving average spans ~50 batches, or 2% of a short run
MAX_POINTS = 1500  # points per curve sent to the browser; more only slows the chart down
MAX_COMPARED = 8  # earlier runs overlaid on the comparison chart, newest first
UNITS_SHOWN = [8, 16, 32, 64]  # choices for the grid of first-layer templates
AUGMENT_SHOWN = 8  # training pictures in the augmentation preview, each with 3 random warps


def shipped_recipe() -> Recipe:
    """The recipe of the model that ships with the app, the form's starting values."""
    try:
        return ui.load_model(ui.DEFAULT_MODEL).recipe
    except ModelFileError:
        return Recipe()


def parse_hidden(text: str) -> tuple[int, ...]:
    """'256, 64' -> (256, 64); anything that is not whole numbers -> RecipeError."""
    parts = text.replace(",", " ").split()
    if not parts:
        raise RecipeError("Give at least one hidden layer size, like 256, 64.")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise RecipeError(
            f"Hidden layer sizes must be whole numbers separated by commas, like 256, 64; "
            f"got {text!r}."
        ) from None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


def shown_path(out: str) -> str:
    """A model file as visitors see it: its name in the models folder, never the server's
    own folders."""
    return f"models/{Path(out).name}"


def smoothed(losses: list[float], total_steps: int, stride: int = 1) -> pd.Series:
    """Exponential moving average, corrected for its start at zero (what fastai plots).

    `stride`: batches per point (a long run's history averages neighbouring batches).
    """
    span = max(1, min(SMOOTHING, max(1, total_steps // 50)) // stride)
    return pd.Series(losses, dtype="float64").ewm(alpha=1 / span, adjust=True).mean()


def stride_of(snap: Snapshot) -> int:
    """Batches per point of a run's loss history (1 until it holds thousands)."""
    return max(1, round(snap.step / max(1, len(snap.losses))))


def thinned(df: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_POINTS evenly spaced rows, always keeping the last one."""
    stride = -(-len(df) // MAX_POINTS)
    return df if stride <= 1 else pd.concat([df.iloc[::stride], df.iloc[[-1]]]).drop_duplicates()


def recipe_form(defaults: Recipe, missing: str | None) -> None:
    """The recipe form; on Start, validate it and hand it to the server's trainer."""
    devices = dict(usable_devices())  # {'cpu': 'cpu', 'cuda:0': 'cuda:0 (NVIDIA ...)'}
    if st.session_state.get("train_recipe") is defaults and defaults.device in devices:
        device = defaults.device  # this session's last choice
    else:  # like the notebook: the first GPU when there is one, else the CPU
        device = next((d for d in devices if d != "cpu"), "cpu")
    with st.form("train_form"):
        c = st.columns(4)
        hidden = c[0].text_input(
            "Hidden layer sizes",
            ", ".join(map(str, defaults.hidden)),
            key="train_hidden",
            help="Units in each hidden layer between the 784 pixels and the 10 digit scores: "
            "256, 64 is the notebook's 784 → 256 → 64 → 10.",
        )
        init = c[1].selectbox(
            "Initialisation",
            INITS,
            INITS.index(defaults.init),
            key="train_init",
            help="Step 1, initialise the weights: 'notebook' draws randn × 0.1 as its Linear "
            "does; 'kaiming' scales them to each layer's input size so signals keep their size.",
        )
        optimizer = c[2].selectbox(
            "Optimizer",
            OPTIMIZERS,
            OPTIMIZERS.index(defaults.optimizer),
            format_func=OPTIMIZER_NAMES.get,
            key="train_optimizer",
            help="Step 5, step the weights: 'basic' is the notebook's p -= lr × grad; 'sgd' adds "
            "momentum; 'adam' also scales each weight's step by its recent gradients.",
        )
        device = c[3].selectbox(
            "Device",
            list(devices),
            list(devices).index(device),
            format_func=devices.get,
            key="train_device",
            help="Where the maths runs: the CPU, or a GPU (cuda) which the notebook picks "
            "whenever there is one.",
        )
        c = st.columns(4)
        lr = c[0].number_input(
            "Learning rate",
            value=float(defaults.lr),
            step=0.001,
            format="%g",
            key="train_lr",
            help="How far each step moves the weights against their gradients: too small and "
            "the loss barely falls, too large and it explodes.",
        )
        schedule = c[1].selectbox(
            "Schedule",
            SCHEDULES,
            SCHEDULES.index(defaults.schedule),
            key="train_schedule",
            help="'constant' keeps the learning rate fixed, as the notebook does; 'onecycle' "
            "warms it up, then lowers it to almost 0 to settle into a minimum.",
        )
        momentum = c[2].number_input(
            "Momentum",
            value=float(defaults.momentum),
            step=0.05,
            format="%g",
            key="train_momentum",
            help="sgd only: how much of the previous step carries into the next, so steps "
            "gather speed down a steady slope and noisy batches cancel out.",
        )
        weight_decay = c[3].number_input(
            "Weight decay",
            value=float(defaults.weight_decay),
            step=1e-4,
            format="%g",
            key="train_weight_decay",
            help="sgd and adam: pull every weight a little towards zero at each step, "
            "which discourages over-fitting; 0 turns it off.",
        )
        c = st.columns(4, vertical_alignment="center")
        batch_size = c[0].number_input(
            "Batch size",
            value=int(defaults.batch_size),
            step=1,
            key="train_batch_size",
            help="Images per mini-batch, so per gradient step; the notebook suggests 32, 64 or "
            "128 (bigger batches need more GPU memory).",
        )
        epochs = c[1].number_input(
            "Epochs",
            value=int(defaults.epochs),
            step=1,
            key="train_epochs",
            help="Passes over the 60,000 training images; after each one the model is tested "
            "on the 10,000 test images it never trains on.",
        )
        seed = c[2].number_input(
            "Seed",
            value=int(defaults.seed),
            step=1,
            key="train_seed",
            help="Fixes the starting weights and the shuffling of the batches: the same seed "
            "gives the same run (on the CPU).",
        )
        augment = c[3].checkbox(
            "Augment the training images",
            value=bool(defaults.augment),
            key="train_augment",
            help="Shift each training image by up to 2 pixels and turn it by up to 10 degrees, "
            "anew every epoch, so the network learns digits rather than exact pixels.",
        )
        with st.container(horizontal=True):
            start = st.form_submit_button(
                "Start training",
                type="primary",
                icon=":material/play_arrow:",
                disabled=missing is not None,
                key="train_start",
            )
            find = st.form_submit_button(
                "Find a learning rate",
                icon=":material/query_stats:",
                disabled=missing is not None,
                key="train_find",
                help="Try every learning rate from 1e-6 to 10 on this recipe for a few hundred "
                "batches (a few seconds), then suggest one. Nothing is trained or saved.",
            )
    if not (start or find):
        return
    try:
        recipe = replace(  # fields the form doesn't show keep the defaults' values
            defaults,
            hidden=parse_hidden(hidden),
            init=init,
            optimizer=optimizer,
            lr=float(lr),
            momentum=float(momentum),
            weight_decay=float(weight_decay),
            schedule=schedule,
            batch_size=int(batch_size),
            epochs=int(epochs),
            augment=augment,
            seed=int(seed),
            device=device,
        )
        st.session_state["train_recipe"] = recipe  # the form shows it again when you come back
        if find:
            find_lr(recipe)
            return
        ui.trainer().start(recipe)
    except (RecipeError, JobBusyError, DataError, DeviceError, ModelFileError) as e:
        st.error(ui.plain(str(e)), icon=":material/error:")  # it may quote what was typed
    else:
        st.rerun()  # redraw the whole app, sidebar included, with the live timers on


def find_lr(recipe: Recipe) -> None:
    """Run the learning-rate finder on `recipe`'s starting weights; keep the result."""
    try:
        with st.spinner("Trying learning rates from 1e-6 to 10…"):
            result = ui.trainer().find_lr(recipe)  # in the training slot: never beside a run
    except (DataError, DeviceError, RecipeError, JobBusyError) as e:
        st.error(ui.plain(str(e)), icon=":material/error:")
        return
    st.session_state["train_lrfind"] = {"result": result, "recipe": recipe}


def use_lr(lr: float) -> None:
    """Callback: put `lr` into the form (before its widget is drawn again)."""
    st.session_state["train_lr"] = lr
    if (recipe := st.session_state.get("train_recipe")) is not None:
        st.session_state["train_recipe"] = replace(recipe, lr=lr)


def short(x: float) -> str:
    """A learning rate in two significant digits: 0.0016, 0.2, 1e-6 (not 1e-06)."""
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m[1].replace('+', '')}{m[2]}", f"{x:.2g}")


def lr_chart(res: LRFinderResult, suggestion: float, current: float | None) -> alt.LayerChart:
    """Smoothed loss against learning rate (log scale), the suggestion and the form's rate."""
    df = pd.DataFrame({"learning rate": res.lrs, "loss": res.losses})
    x = alt.X(
        "learning rate:Q",
        scale=alt.Scale(type="log"),
        axis=alt.Axis(format=".0e", title="learning rate (log scale)"),
    )
    curve = (
        alt.Chart(df)
        .mark_line(color="#1f4e9c")
        .encode(
            x=x,
            y=alt.Y("loss:Q", title="loss (moving average)"),
            tooltip=[
                alt.Tooltip("learning rate:Q", format=".2g"),
                alt.Tooltip("loss:Q", format=".3f"),
            ],
        )
    )
    marks = [{"learning rate": suggestion, "mark": f"suggested {short(suggestion)}"}]
    if current is not None and current != suggestion and res.lrs[0] <= current <= res.lrs[-1]:
        marks.append({"learning rate": current, "mark": f"in the form {short(current)}"})
    rules = alt.Chart(pd.DataFrame(marks)).encode(
        x=x,
        color=alt.Color(
            "mark:N",
            scale=alt.Scale(
                domain=[m["mark"] for m in marks], range=["#ff4b4b", "#808495"][: len(marks)]
            ),
            legend=alt.Legend(title=None, orient="top"),
        ),
    )
    return (curve + rules.mark_rule(strokeWidth=2, strokeDash=[4, 2])).properties(
        title="Loss while the learning rate grows"
    )


def show_lr_finder() -> None:
    """The last learning-rate scan of this session: its curve, and a button to use it."""
    found = st.session_state.get("train_lrfind")
    if found is None:
        return
    res, recipe = found["result"], found["recipe"]
    suggestion = float(f"{res.suggestion:.2g}")  # 0.0016, not 0.0015885651294280524
    current = st.session_state.get("train_lr")
    chart, text = st.columns([3, 2], gap="large", vertical_alignment="center")
    with chart:
        st.altair_chart(lr_chart(res, suggestion, current), width="stretch", height=340)
    with text:
        st.markdown(f"#### Suggested learning rate: {short(suggestion)}")
        lowest = res.lrs[min(range(len(res.losses)), key=res.losses.__getitem__)]
        nb = lambda x: short(x).replace("-", "\u2011")  # 1e-6 never splits at its hyphen
        st.markdown(
            f"The finder trained this recipe's starting network for {len(res.lrs)} batches "
            f"while raising the learning rate from {nb(res.lrs[0])} to {nb(res.lrs[-1])}, then "
            "put the weights back. Too small a rate and the loss stays flat; too large and it "
            "shoots up. The suggestion is where the loss falls fastest, well before its lowest "
            f"point (at {nb(lowest)}), where the rate is already close to blowing up."
        )
        hidden = "-".join(map(str, recipe.hidden))
        st.caption(
            f"Scanned for {hidden}, {recipe.optimizer}, batch {recipe.batch_size}"
            + (", augmented" if recipe.augment else "")
            + (". With onecycle, this is the peak rate." if recipe.schedule == "onecycle" else ".")
        )
        if current is not None and abs(current - suggestion) < 1e-12:
            st.caption(":material/check: The form uses this learning rate: press Start training.")
        else:
            st.button(
                f"Use lr = {short(suggestion)}",
                key="train_use_lr",
                icon=":material/arrow_upward:",
                on_click=use_lr,
                args=(suggestion,),
                help="Put this learning rate into the form above; then press Start training.",
            )


def show_augmentation() -> None:
    """What augmentation does: a few training pictures and random warps of each."""
    with st.expander("What does augmenting do to a training picture?", icon=":material/shuffle:"):
        seed = st.session_state.setdefault("train_augment_seed", 0)
        images = to_float(load_mnist(True, download=False).images[:AUGMENT_SHOWN])  # (8, 28, 28)
        warps = random_affine(images.repeat(3, 1, 1), torch.Generator().manual_seed(seed))
        shown = tile(grey_rgb(images), cols=AUGMENT_SHOWN, pad=2)
        st.image(ui.enlarge(shown, 3), caption="The first training pictures, as they are")
        grid = tile(grey_rgb(warps), cols=AUGMENT_SHOWN, pad=2)
        st.image(
            ui.enlarge(grid, 3),
            caption="Three random warps of each: shifted by up to 2 pixels, turned by up to "
            "10 degrees",
        )
        st.caption(
            "Each epoch the network sees every training picture warped anew. The label stays "
            "the same, so it learns the digit, not its exact pixels: the shipped model was "
            "trained this way."
        )
        st.button(
            "Warp again",
            key="train_augment_again",
            icon=":material/refresh:",
            on_click=lambda: st.session_state.update(train_augment_seed=seed + 1),
        )


def loss_chart(snap: Snapshot) -> alt.Chart:
    df = pd.DataFrame({"batch": snap.loss_steps, "loss": snap.losses})
    df["smoothed"] = smoothed(snap.losses, snap.total_steps, stride_of(snap))
    df = thinned(df).melt("batch", var_name="curve", value_name="value")
    df["curve"] = df["curve"].map({"loss": "each batch", "smoothed": "moving average"})
    return (
        alt.Chart(df, title="Training loss")
        .mark_line()
        .encode(
            x=alt.X("batch:Q", title="batch (one gradient step each)", axis=alt.Axis(format="d")),
            y=alt.Y("value:Q", title="loss (cross-entropy)"),
            color=alt.Color(
                "curve:N",
                scale=alt.Scale(
                    domain=["each batch", "moving average"], range=["#a6c8ea", "#1f4e9c"]
                ),
                legend=alt.Legend(title=None, orient="top"),
            ),
            tooltip=["batch", "curve", alt.Tooltip("value:Q", format=".4f", title="loss")],
        )
    )


def accuracy_chart(snap: Snapshot) -> alt.Chart:
    df = pd.DataFrame(
        {"epoch": range(1, len(snap.accuracies) + 1), "test accuracy": snap.accuracies}
    )
    return (
        alt.Chart(df, title="Test accuracy after each epoch")
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("test accuracy:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format=".1%")),
            tooltip=["epoch", alt.Tooltip("test accuracy:Q", format=".4f")],
        )
    )


def show_outcome(snap: Snapshot) -> None:
    """What a finished, stopped or failed run leaves behind."""
    if snap.status == "diverged":
        st.error(snap.message, icon=":material/trending_up:")
        st.info(
            f"A learning rate of {snap.recipe.lr:g} makes each step overshoot, so the loss grows "
            f"instead of falling. Lower it, e.g. to {snap.recipe.lr / 10:g}, and start again.",
            icon=":material/lightbulb:",
        )
        return
    if snap.status == "failed":
        st.error(f"The run failed: {ui.plain(snap.message)}", icon=":material/error:")
        return
    if snap.out is None:  # stopped before the first epoch ended
        st.info(snap.message, icon=":material/stop_circle:")
        return
    st.success(f"Test accuracy: {snap.test_accuracy:.4f}", icon=":material/check_circle:")
    if snap.status == "stopped":
        st.caption(f"Stopped {snap.message.partition(' after ')[2] or 'early'}.")
    st.markdown(f"Saved as `{shown_path(snap.out)}`")
    c1, c2 = st.columns(2)
    if str(ui.active_model_path()) == snap.out:
        c1.caption("This is the active model: the Samples and Predict pages use it.")
    elif c1.button(
        "Use as the active model",
        key="train_use",
        icon=":material/task_alt:",
        help="The Samples and Predict pages then show this model's answers.",
    ):
        ui.set_active_model(snap.out)
        st.rerun()  # the sidebar shows the active model: redraw it too
    try:
        data = Path(snap.out).read_bytes()
    except OSError:
        c2.caption("The model file is no longer on disk.")
    else:
        c2.download_button(
            "Download the model file",
            data,
            file_name=Path(snap.out).name,
            mime="application/octet-stream",
            on_click="ignore",
            key="train_download",
            icon=":material/download:",
        )
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    name = c1.text_input(
        "Model name",
        key="train_save_name",
        help="Keep a copy of this model in models/ under a name of your own (letters, digits, "
        "'.', '_' and '-'); an existing model is never replaced.",
    )
    if c2.button("Save as…", key="train_save_as", icon=":material/save:"):
        try:
            check_quota(ui.models_dir())
            saved = save_as(snap.out, name, ui.models_dir())
        except ModelFileError as e:
            st.error(ui.plain(str(e)), icon=":material/error:")
        else:
            st.success(f"Saved a copy as `{shown_path(str(saved))}`", icon=":material/save:")


def show_run(snap: Snapshot) -> None:
    """The current run: its progress or outcome, then its loss and accuracy curves."""
    st.subheader(f"Run {snap.id}: {snap.recipe.describe()}")
    st.caption(f"on {snap.device} · {snap.status}")
    if snap.status == "starting":
        st.info(snap.message, icon=":material/hourglass_top:")
    elif snap.active:
        bar, button = st.columns([4, 1], vertical_alignment="bottom")
        epoch = min(snap.epoch + 1, snap.epochs)
        bar.progress(snap.progress, text=f"Epoch {epoch}/{snap.epochs}")
        if button.button("Stop training", key="train_stop", icon=":material/stop:"):
            ui.trainer().stop()  # the run ends after the batch in progress
            st.toast("Stopping after this batch…")
        c = st.columns(4)
        c[0].metric("Batches", f"{snap.step:,} / {snap.total_steps:,}")
        c[1].metric("Images per second", f"{snap.samples_per_sec:,.0f}")
        c[2].metric("Elapsed", duration(snap.elapsed))
        c[3].metric("Time left", duration(snap.eta))
    else:
        show_outcome(snap)
    left, right = st.columns([3, 2])
    with left:
        if len(snap.losses) > 1:
            st.altair_chart(loss_chart(snap), width="stretch")
        else:
            st.caption("The loss chart starts with the first batch.")
    with right:
        if snap.accuracies:
            st.altair_chart(accuracy_chart(snap), width="stretch")
        else:
            st.caption("Test accuracy appears after the first epoch.")
    show_weights(snap)


def norms_chart(norms: list[dict], metric: str, title: str) -> alt.Chart:
    """One line per Linear layer of `metric` ("weight norm" or "grad norm") per epoch."""
    df = pd.DataFrame(norms)
    # "Linear 1 (784->256)" -> "784→256": three short labels fit in one row under the chart
    df["layer"] = df["layer"].str.replace(r"^.*\((\d+)->(\d+)\)$", r"\1→\2", regex=True)
    return (
        alt.Chart(df, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y(f"{metric}:Q", scale=alt.Scale(type="log"), title=f"{metric} (log scale)"),
            color=alt.Color(
                "layer:N",
                sort=None,  # in the network's order, not alphabetical
                legend=alt.Legend(title="Linear layer", orient="bottom", direction="horizontal"),
            ),
            tooltip=["epoch", "layer", alt.Tooltip(f"{metric}:Q", format=".4g")],
        )
    )


def show_weights(snap: Snapshot) -> None:
    """The first layer's templates as pictures, live, and each layer's norms per epoch."""
    weights = snap.extras.get("weights")  # (64, 28, 28), refreshed every 50 batches
    if weights is None:
        return
    st.markdown("#### What the first layer is learning")
    grid, about = st.columns([3, 1], gap="large")
    with about:
        n = st.select_slider("Units shown", UNITS_SHOWN, value=32, key="train_units")
        step = snap.extras.get("weights_step", 0)
        when = f"after batch {step:,} of {snap.total_steps:,}" if step else "at the random start"
        st.markdown(
            f"Each square is one unit of the first Linear layer: its 784 weights, one per "
            f"pixel, drawn as a 28×28 picture ({when}). **Red**: ink there raises the unit; "
            "**blue**: ink there lowers it; white: the pixel doesn't matter. From random "
            "noise, strokes and digit-like templates appear as the network trains."
        )
        st.caption("Each square has its own colour scale. Refreshed every 50 batches.")
    with grid:
        shown = weights[:n]
        cols = 8 if len(shown) <= 32 else 16
        st.image(
            ui.enlarge(template_grid(shown, cols=cols), 3 if cols == 8 else 2),
            caption=f"Run {snap.id}: the first {len(shown)} of {snap.recipe.hidden[0]} units, "
            f"{when}",
        )
    norms = snap.extras.get("norms") or []
    if not norms:
        st.caption("Each layer's weight and gradient norms appear after the first epoch.")
        return
    c_weight, c_grad = st.columns(2)
    c_weight.altair_chart(
        norms_chart(norms, "weight norm", "Size of each layer's weights"), width="stretch"
    )
    c_grad.altair_chart(
        norms_chart(norms, "grad norm", "Size of its gradients (mean per batch)"), width="stretch"
    )
    st.caption(
        "Norm: the square root of the sum of squares, one number for a whole layer. In a "
        "healthy run the weight norms stay steady and the gradient norms drift down as the "
        "loss falls; a gradient norm near zero means a layer has stopped learning, a soaring "
        "one that the learning rate is too high."
    )


def show_runs(snaps: list[Snapshot]) -> None:
    """Every run this server has made, and their loss curves on one chart."""
    st.subheader("Runs on this server")
    rows = [
        {
            "run": s.id,
            "recipe": s.recipe.describe(),
            "device": s.device,
            "epochs": f"{s.epoch}/{s.epochs}",
            "test accuracy": s.test_accuracy,
            "seconds": round(s.elapsed, 1),
            "status": s.status,
        }
        for s in reversed(snaps)
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={"test accuracy": st.column_config.NumberColumn(format="%.4f")},
    )
    curves = []
    for s in [s for s in reversed(snaps) if len(s.losses) > 1][:MAX_COMPARED]:
        per_epoch = s.total_steps / s.epochs if s.total_steps else len(s.losses)
        df = pd.DataFrame({"epoch": [i / per_epoch for i in s.loss_steps]})
        df["loss"] = smoothed(s.losses, s.total_steps, stride_of(s))
        df["run"] = f"#{s.id} {s.recipe.describe()}"
        curves.append(thinned(df))
    if len(curves) < 2:
        st.caption(
            "Train again with another learning rate or optimizer: the runs' loss curves "
            "are then drawn here on one chart, to compare."
        )
        return
    chart = (
        alt.Chart(pd.concat(curves), title="Loss of each run (moving average)")
        .mark_line()
        .encode(
            x=alt.X("epoch:Q", title="epochs (passes over the training images)"),
            y=alt.Y("loss:Q", title="loss (cross-entropy)"),
            color=alt.Color(
                "run:N", legend=alt.Legend(title=None, orient="bottom", columns=2, labelLimit=0)
            ),
            tooltip=[
                "run",
                alt.Tooltip("epoch:Q", format=".2f"),
                alt.Tooltip("loss:Q", format=".4f"),
            ],
        )
    )
    st.altair_chart(chart, width="stretch")


st.title("Train a network")
st.markdown(
    "Pick a recipe and press **Start training**: the network trains on this server, so you "
    "can leave this page or close the tab and come back. Each point of the loss chart is one "
    "mini-batch going through steps 2–5 of learning (predict, measure the loss, compute the "
    "gradients, step the weights); the curve growing to the right is step 6, *repeat*. After "
    "each epoch the model is tested on the 10,000 test images it never trains on."
)
missing = ui.mnist_missing()
if missing is not None:
    st.warning(missing, icon=":material/warning:")
recipe_form(st.session_state.get("train_recipe") or shipped_recipe(), missing)
show_lr_finder()
if missing is None:
    show_augmentation()

active = ui.trainer().active() is not None


@st.fragment(run_every=1.0 if active else None)
def live() -> None:
    """Redrawn every second while a run is active; everything comes from the job's history."""
    trainer = ui.trainer()
    snaps = [job.snapshot() for job in trainer.jobs]
    if not snaps:
        st.info("No run on this server yet: fill in the recipe and press Start training.")
        return
    if active and not snaps[-1].active:
        st.rerun()  # the run ended since the page was drawn: redraw once, without the timer
    show_run(snaps[-1])
    st.divider()
    show_runs(snaps)


live()
