"""Train: fill in a recipe, queue a run on this server, watch the loss fall, keep the model.

The runs live in `ui.trainer()` (mlp_core.service.trainer): a queue shared by every browser, each
run trained in a worker process. This page reads the form, queues or scans, and draws the
runs' snapshots; Stop, Cancel and Delete are this browser's, for its own runs.
"""

import streamlit as st

import ui
from mlp_core.errors import UserError
from mlp_core.service import ACTIVE, WAITING, RunStatus

st.title("Train a network")
st.markdown(
    "Pick a recipe and press **Start training**: the network trains on this server (after "
    "the runs already waiting, if others are training), so you can leave this page or close "
    "the tab and come back. Each point of the loss chart is one "
    "mini-batch going through steps 2–5 of learning (predict, measure the loss, compute the "
    "gradients, step the weights); the curve growing to the right is step 6, *repeat*. After "
    "each epoch the model is tested on the 10,000 test images it never trains on."
)
missing = ui.mnist_missing()
if missing is not None:
    st.warning(missing, icon=":material/warning:")

ui.start_from()  # a lesson, or the recipe in the page's link (nothing runs before Start)
asked = ui.recipe_form(
    st.session_state.get("train_recipe") or ui.shipped_recipe(), disabled=missing is not None
)
if asked is not None:
    try:
        if asked.error is not None:
            raise UserError(asked.error)
        st.session_state["train_recipe"] = asked.recipe  # the form shows it when you return
        if asked.action == "find":
            with st.spinner("Trying learning rates from 1e-6 to 10…"):
                found = ui.trainer().lr_find(asked.recipe)  # in the worker; one scan at a time
            st.session_state["train_lrfind"] = {"result": found, "recipe": asked.recipe}
        elif asked.action == "start":  # "share" only puts the recipe in the link, below
            run = ui.trainer().start(asked.recipe, owner=ui.browser(), address=ui.address())
            if run.status == RunStatus.QUEUED:
                st.toast(f"Run {run.id} is waiting: {ui.starts_in(run)}.")
            st.rerun()  # redraw the whole app, sidebar included, with the live timers on
    except UserError as e:
        st.error(ui.plain(str(e)), icon=":material/error:")  # it may quote what was typed

ui.write_link(st.session_state.get("train_recipe") or ui.shipped_recipe())

ui.show_lr_finder()
if missing is None:
    ui.show_augmentation()

ui.show_teacher()  # only where the server has a teacher password
busy = ui.trainer().busy()
every = ui.refresh_every(ui.watchers()) if busy else None  # slower when many pages watch


@st.fragment(run_every=every)
def live() -> None:
    """The queue and one run, redrawn every second (less often when many watch) while runs
    train or wait."""
    trainer = ui.trainer()
    if trainer.problem:
        st.warning(trainer.problem, icon=":material/database:")
    runs = trainer.runs
    if not runs:
        st.info("No run on this server yet: fill in the recipe and press Start training.")
        return
    watching = ui.watchers() if busy else 0
    if busy and (not trainer.busy() or ui.retime(every, watching)):
        st.rerun()  # the runs ended, or many more (or fewer) watch: redraw once, new timer
    if every and every > 1:
        st.caption(
            f"{watching} pages are watching this server's runs, so each refreshes every "
            f"{every:g} s."
        )
    ui.show_queue(runs)
    # this browser's run in training, else its next waiting, else its newest not cancelled;
    # else what trains now; else the newest run
    mine = [r for r in runs if r.owner == ui.browser()]
    training = [r for r in runs if r.status in ACTIVE]
    waiting = [r for r in mine if r.status in WAITING][:1]
    kept = [r for r in mine if r.status != RunStatus.CANCELLED]
    run = ([r for r in training if r in mine] or waiting or kept or training or runs)[-1]
    ui.show_run(run, ui.starts_in(run))


live()
# the history is drawn with the page, not every second: redrawing its tables and charts
# each second in every open tab kept the server busy (the live part reruns the page when
# the runs end, and the history with it)
if runs := ui.trainer().runs:
    st.divider()
    ui.show_runs(runs)
    ui.show_compare(runs)
