"""The Train page's view of runs: the current one live (progress, curves, the first layer's
templates, norms), what a finished one leaves, and every run of this server.

Everything comes from `Snapshot`s of mlp_core.jobs; the only action here is Stop and what a
finished model offers (make it active, download, save a copy).
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from mlp_core import ModelFileError
from mlp_core.checkpoint import check_quota, save_as
from mlp_core.insight import template_grid
from mlp_core.jobs import Snapshot

from .charts import accuracy_chart, loss_chart, norms_chart, runs_chart
from .format import duration, enlarge, plain, shown_path
from .models import active_model_path, set_active_model
from .server import models_dir, trainer

UNITS_SHOWN = [8, 16, 32, 64]  # choices for the grid of first-layer templates


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
            trainer().stop()  # the run ends after the batch in progress
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
        st.error(f"The run failed: {plain(snap.message)}", icon=":material/error:")
        return
    if snap.out is None:  # stopped before the first epoch ended
        st.info(snap.message, icon=":material/stop_circle:")
        return
    st.success(f"Test accuracy: {snap.test_accuracy:.4f}", icon=":material/check_circle:")
    if snap.status == "stopped":
        st.caption(f"Stopped {snap.message.partition(' after ')[2] or 'early'}.")
    st.markdown(f"Saved as `{shown_path(snap.out)}`")
    c1, c2 = st.columns(2)
    if str(active_model_path()) == snap.out:
        c1.caption("This is the active model: the Samples and Predict pages use it.")
    elif c1.button(
        "Use as the active model",
        key="train_use",
        icon=":material/task_alt:",
        help="The Samples and Predict pages then show this model's answers.",
    ):
        set_active_model(snap.out)
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
            check_quota(models_dir())
            saved = save_as(snap.out, name, models_dir())
        except ModelFileError as e:
            st.error(plain(str(e)), icon=":material/error:")
        else:
            st.success(f"Saved a copy as `{shown_path(str(saved))}`", icon=":material/save:")


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
            enlarge(template_grid(shown, cols=cols), 3 if cols == 8 else 2),
            caption=f"Run {snap.id}: the first {len(shown)} of {(snap.recipe.hidden or (10,))[0]} "
            f"units, {when}",  # a linear model's units are the ten digits' scores
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
    chart = runs_chart(snaps)
    if chart is None:
        st.caption(
            "Train again with another learning rate or optimizer: the runs' loss curves "
            "are then drawn here on one chart, to compare."
        )
        return
    st.altair_chart(chart, width="stretch")
