"""Step through: one mini-batch at a time, every number of the seven steps beside its code."""

import streamlit as st

import ui

st.title("Step through learning")
st.caption(
    "Stop time and walk through gradient descent on real digits: a small network of your "
    "own learns from one mini-batch per Step, and every number of the seven steps is shown "
    "beside the code that computes it, read from the library as this server runs it. Change "
    "the learning rate or the optimizer between steps and watch the next step change."
)
if (msg := ui.mnist_missing()) is not None:
    st.info(msg)
    st.stop()
stepper = ui.stepper()
ui.network_form(stepper)
stepper = ui.stepper()  # the form may have made a new one
pick = ui.step_settings(stepper)
ui.step_act(stepper, ui.step_buttons(), pick)
ui.show_step(stepper)
