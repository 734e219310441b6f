"""Train: fill in a recipe, start a run on this server, watch the loss fall, keep the model.

The run itself lives in `ui.trainer()` (mlp_core.jobs): its own thread, shared by every tab.
This page reads the form, starts, scans or stops, and draws the runs' snapshots.
"""

import streamlit as st

import ui
from mlp_core.errors import UserError

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
                found = ui.trainer().find_lr(asked.recipe)  # in the slot: never beside a run
            st.session_state["train_lrfind"] = {"result": found, "recipe": asked.recipe}
        elif asked.action == "start":  # "share" only puts the recipe in the link, below
            ui.trainer().start(asked.recipe)
            st.rerun()  # redraw the whole app, sidebar included, with the live timers on
    except UserError as e:
        st.error(ui.plain(str(e)), icon=":material/error:")  # it may quote what was typed

ui.write_link(st.session_state.get("train_recipe") or ui.shipped_recipe())

ui.show_lr_finder()
if missing is None:
    ui.show_augmentation()

active = ui.trainer().active() is not None


@st.fragment(run_every=1.0 if active else None)
def live() -> None:
    """Redrawn every second while a run is active; everything comes from the job's history."""
    snaps = [job.snapshot() for job in ui.trainer().jobs]
    if not snaps:
        st.info("No run on this server yet: fill in the recipe and press Start training.")
        return
    if active and not snaps[-1].active:
        st.rerun()  # the run ended since the page was drawn: redraw once, without the timer
    ui.show_run(snaps[-1])
    st.divider()
    ui.show_runs(snaps)
    ui.show_compare(snaps)


live()
