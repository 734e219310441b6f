"""Train: fill in a recipe, start a run on this server, watch the loss fall, keep the model.

The run itself lives in `ui.trainer()` (mlp_core.jobs): its own thread, shared by every tab.
This page only fills a Recipe, starts or stops the run, and draws the run's snapshot.
"""

from dataclasses import replace
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

import ui
from mlp_core import ModelFileError, Recipe, RecipeError, usable_devices
from mlp_core.jobs import JobBusyError, Snapshot
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
    """The model file relative to the app's folder when it is inside it (models/...)."""
    try:
        return str(Path(out).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return out


def smoothed(losses: list[float], total_steps: int) -> pd.Series:
    """Exponential moving average, corrected for its start at zero (what fastai plots)."""
    span = min(SMOOTHING, max(1, total_steps // 50))
    return pd.Series(losses, dtype="float64").ewm(alpha=1 / span, adjust=True).mean()


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
        start = st.form_submit_button(
            "Start training",
            type="primary",
            icon=":material/play_arrow:",
            disabled=missing is not None,
            key="train_start",
        )
    if not start:
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
        ).validate()
        st.session_state["train_recipe"] = recipe  # the form shows it again when you come back
        ui.trainer().start(recipe)
    except (RecipeError, JobBusyError) as e:
        st.error(str(e), icon=":material/error:")
    else:
        st.rerun()  # redraw the whole app, sidebar included, with the live timers on


def loss_chart(snap: Snapshot) -> alt.Chart:
    df = pd.DataFrame({"batch": range(1, len(snap.losses) + 1), "loss": snap.losses})
    df["smoothed"] = smoothed(snap.losses, snap.total_steps)
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
        st.error(f"The run failed: {snap.message}", icon=":material/error:")
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
        df = pd.DataFrame({"epoch": [i / per_epoch for i in range(1, len(s.losses) + 1)]})
        df["loss"] = smoothed(s.losses, s.total_steps)
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
