"""The Train page's view of runs: the queue, one run live (progress, curves, the first
layer's templates, norms), what a finished one leaves, and every run in the history.

Everything comes from the trainer's `Run`s and their `Snapshot`s (mlp_core.service.jobs); the
actions here are Stop, Cancel and Delete (each only for this browser's own runs:
mlp_core.service.trainer checks it again) and what a finished model offers (make it active,
download, save a copy).
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from mlp_core import ModelFileError, UserError
from mlp_core.service import (
    ACTIVE,
    ENDED,
    WAITING,
    Run,
    RunStatus,
    Snapshot,
    check_quota,
    save_as,
)

from .charts import runs_chart
from .format import duration, plain, run_name, shown_path
from .live import View, views
from .models import active_model_path, set_active_model
from .server import browser, models_dir, trainer

UNITS_SHOWN = [8, 16, 32, 64]  # choices for the grid of first-layer templates


def teacher_pass() -> str | None:
    """The pass the trainer gave this session for the teacher password, if it did (the
    trainer checks it again on every teacher's action: a forged one is refused there)."""
    token = st.session_state.get("teacher_pass")
    return token if trainer().is_teacher(token) else None


def act(verb: str, run_id: int) -> bool:
    """Stop, cancel (both `stop`) or delete run `run_id` as this browser (or as the teacher,
    with the teacher's pass); an error shown."""
    try:
        getattr(trainer(), verb)(run_id, owner=browser(), teacher=teacher_pass())
    except UserError as e:
        st.error(plain(str(e)), icon=":material/error:")
        return False
    return True


def who(snap: Snapshot) -> str:
    return "you" if snap.owner == browser() else "another browser"


def starts_in(run: Run) -> str:
    """'number 2 in line on cpu, starts in about 1 min 30 s' for a waiting run; else ""."""
    if (place := trainer().place(run)) is None:
        return ""
    seconds = trainer().starts_in(run) or 0.0
    return f"number {place} in line on {run.device}, starts in about {duration(seconds)}"


def show_queue(runs: list[Run]) -> None:
    """What trains now and what waits, for everyone to see; Cancel on this browser's own."""
    busy = [r for r in runs if r.status in (*ACTIVE, *WAITING)]
    if not busy:
        return
    st.subheader("Training now on this server")
    rows = []
    for run in busy:
        snap = run.snapshot(curves=False)
        state = (
            f"waiting: {starts_in(run)}"
            if snap.waiting
            else f"training: {snap.progress:.0%}, {duration(snap.eta)} left"
        )
        rows.append({"run": snap.id, "recipe": snap.recipe.describe(), "device": snap.device,
                     "state": state, "started by": who(snap)})  # fmt: skip
    widths = {  # "waiting: number 2 in line on cpu, starts in about 1 min 30 s" and its owner
        "state": st.column_config.TextColumn(width=360),
        "started by": st.column_config.TextColumn(width=115),
    }
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config=widths)
    mine = [r for r in busy if r.status in WAITING and r.owner == browser()]
    for run in mine:
        cancel_button(run.id, f"Cancel run {run.id}", key=f"train_cancel_{run.id}")


def cancel_button(run_id: int, label: str, key: str) -> None:
    """Cancel a waiting run of this browser's (the trainer checks both again)."""
    if st.button(label, key=key, icon=":material/close:") and act("stop", run_id):
        st.toast(f"Run {run_id} cancelled.")
        st.rerun()


def show_run(run: Run, place: str = "") -> None:
    """One run: its place in line, progress or outcome, then its loss and accuracy curves,
    the curves and pictures from the view every page watching it shares (live.py, up to
    a second old), the rest as it is now. Stop and Cancel are offered to the browser that
    started it only."""
    snap = run.snapshot(curves=False)  # cheap: no curves, no pictures
    mine = snap.owner == browser()
    st.subheader(f"Run {snap.id}: {snap.recipe.describe()}")
    st.caption(f"on {snap.device} · {snap.status} · started by {who(snap)}")
    if snap.waiting:
        st.info(f"Waiting for its turn: {place}.", icon=":material/hourglass_top:")
        if mine:
            cancel_button(snap.id, "Cancel this run", key="train_cancel")
        return
    if snap.status == RunStatus.STARTING:
        st.info(snap.message, icon=":material/hourglass_top:")
    elif snap.active:
        bar, button = st.columns([4, 1], vertical_alignment="bottom")
        epoch = min(snap.epoch + 1, snap.epochs)
        bar.progress(snap.progress, text=f"Epoch {epoch}/{snap.epochs}")
        if mine and button.button("Stop training", key="train_stop", icon=":material/stop:"):
            if act("stop", snap.id):  # the run ends after the batch in progress
                st.toast("Stopping after this batch…")
        c = st.columns(4)
        c[0].metric("Batches", f"{snap.step:,} / {snap.total_steps:,}")
        c[1].metric("Images per second", f"{snap.samples_per_sec:,.0f}")
        c[2].metric("Elapsed", duration(snap.elapsed))
        c[3].metric("Time left", duration(snap.eta))
    else:
        show_outcome(snap)
    view = views().of(run)
    left, right = st.columns([3, 2])
    with left:
        if view.loss is not None:
            st.vega_lite_chart(spec=dict(view.loss), width="stretch")
        else:
            st.caption("The loss chart starts with the first batch.")
    with right:
        if view.accuracy is not None:
            st.vega_lite_chart(spec=dict(view.accuracy), width="stretch")
        else:
            st.caption("Test accuracy appears after the first epoch.")
    show_weights(view)


def show_outcome(snap: Snapshot) -> None:
    """What a finished, stopped or failed run leaves behind."""
    if snap.status == RunStatus.DIVERGED:
        st.error(snap.message, icon=":material/trending_up:")
        st.info(
            f"A learning rate of {snap.recipe.lr:g} makes each step overshoot, so the loss grows "
            f"instead of falling. Lower it, e.g. to {snap.recipe.lr / 10:g}, and start again.",
            icon=":material/lightbulb:",
        )
        return
    if snap.status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
        what = "failed" if snap.status == RunStatus.FAILED else "was interrupted"
        st.error(f"The run {what}: {plain(snap.message)}", icon=":material/error:")
        return
    if snap.status == RunStatus.CANCELLED:
        st.info(snap.message, icon=":material/cancel:")
        return
    if snap.out is None:  # stopped before the first epoch ended
        st.info(snap.message, icon=":material/stop_circle:")
        return
    st.success(f"Test accuracy: {snap.test_accuracy:.4f}", icon=":material/check_circle:")
    if snap.status == RunStatus.STOPPED:
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


def show_weights(view: View) -> None:
    """The first layer's templates as pictures, live, and each layer's norms per epoch."""
    snap = view.snap
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
        n = n if n in UNITS_SHOWN else 32  # a forged value: the default
        st.image(
            view.templates(n),
            output_format="PNG",  # as made: "auto" would decode it and encode a JPEG per page
            caption=f"Run {snap.id}: the first {len(weights[:n])} of "
            f"{(snap.recipe.hidden or (10,))[0]} units, {when}",  # a linear model's units
        )  # are the ten digits' scores
    if view.norms is None:
        st.caption("Each layer's weight and gradient norms appear after the first epoch.")
        return
    c_weight, c_grad = st.columns(2)
    c_weight.vega_lite_chart(spec=dict(view.norms[0]), width="stretch")
    c_grad.vega_lite_chart(spec=dict(view.norms[1]), width="stretch")
    st.caption(
        "Norm: the square root of the sum of squares, one number for a whole layer. In a "
        "healthy run the weight norms stay steady and the gradient norms drift down as the "
        "loss falls; a gradient norm near zero means a layer has stopped learning, a soaring "
        "one that the learning rate is too high."
    )


RUNS_SHOWN = ("All runs", "Only mine")


def show_runs(runs: list[Run]) -> None:
    """Every run in the history (or only this browser's), their curves overlaid, and
    Delete for this browser's ended runs."""
    st.subheader("Runs")
    shown = st.segmented_control(
        "Show", RUNS_SHOWN, default=RUNS_SHOWN[0], key="train_runs_shown",
        label_visibility="collapsed",
    )  # fmt: skip
    snaps = [r.snapshot(curves=False) for r in runs]
    if shown == RUNS_SHOWN[1]:  # anything else (none picked, or forged) shows all
        snaps = [s for s in snaps if s.owner == browser()]
    if not snaps:
        st.caption("You have not started a run on this server yet.")
        return
    rows = [
        {
            "run": s.id,
            "recipe": s.recipe.describe(),
            "device": s.device,
            "epochs": f"{s.epoch}/{s.epochs}",
            "test accuracy": s.test_accuracy,
            "seconds": round(s.elapsed, 1),
            "status": s.status,
            "by": who(s),
        }
        for s in reversed(snaps)
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={"test accuracy": st.column_config.NumberColumn(format="%.4f")},
    )
    ids = [s.id for s in reversed(snaps)]  # newest first
    with_losses = [s.id for s in reversed(snaps) if s.step > 1]
    picked = st.multiselect(
        "Overlay the loss curves of", ids, default=with_losses[:3], key="train_overlay",
        format_func=run_name,
    )  # fmt: skip
    by_id = {r.id: r for r in runs}
    chart = runs_chart([by_id[i].snapshot() for i in picked if i in by_id])
    if chart is None:
        st.caption(
            "Pick two runs or more to draw their loss curves on one chart; train again with "
            "another learning rate or optimizer to have something to compare."
        )
    else:
        st.altair_chart(chart, width="stretch")
    mine = [s.id for s in reversed(snaps) if s.owner == browser() and s.status in ENDED]
    if mine:
        with st.expander("Delete a run"):
            run_id = st.selectbox("Run", mine, key="train_delete_pick", format_func=run_name)
            st.caption("Deletes the run from the history, and its model file if it saved one.")
            if st.button("Delete run and model", key="train_delete", icon=":material/delete:"):
                if run_id in mine and act("delete", run_id):
                    st.toast(f"Run {run_id} deleted.")
                    st.rerun()


def _unlock() -> None:
    """The Unlock button's: trade the typed password for the trainer's teacher pass (the
    field is emptied first: the password is kept nowhere)."""
    typed = st.session_state.get("teacher_password")
    st.session_state["teacher_password"] = ""
    try:
        st.session_state["teacher_pass"] = trainer().teacher_login(
            typed if isinstance(typed, str) else ""
        )
    except UserError as e:
        st.session_state["teacher_error"] = str(e)


def show_teacher() -> None:
    """The teacher's panel, on servers with a teacher password: the password, then who
    queued what, Clear the queue, and Stop, Cancel or Delete for any run. Every action is
    checked again by the trainer against the pass it gave."""
    if not trainer().has_teacher:
        return
    token = teacher_pass()
    with st.expander("Teacher", icon=":material/school:", expanded=token is not None):
        if token is None:
            st.text_input("Teacher password", type="password", key="teacher_password",
                          max_chars=200)  # fmt: skip
            st.button("Unlock", key="teacher_unlock", on_click=_unlock)
            if error := st.session_state.pop("teacher_error", None):
                st.error(plain(error), icon=":material/error:")
            return
        rows = trainer().who_queued(token)
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True)
        else:
            st.caption("Nothing trains or waits.")
        if st.button("Clear the queue", key="teacher_clear", icon=":material/clear_all:"):
            n = trainer().clear_queue(token)
            st.toast(f"{n} waiting runs cancelled.")
            st.rerun()
        ids = [r.id for r in reversed(trainer().runs)]
        if ids:
            run_id = st.selectbox("Any run", ids, key="teacher_pick")
            left, right = st.columns(2)
            if left.button("Stop or cancel", key="teacher_stop", icon=":material/stop:"):
                if run_id in ids and act("stop", run_id):
                    st.toast(f"Run {run_id}: stopping.")
            if right.button("Delete run and model", key="teacher_delete",
                            icon=":material/delete:"):  # fmt: skip
                if run_id in ids and act("delete", run_id):
                    st.rerun()
        if st.button("Lock", key="teacher_lock", icon=":material/lock:"):
            st.session_state.pop("teacher_pass", None)
            st.rerun()
