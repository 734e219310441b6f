"""Overview: what the app does, what the notebook teaches, and the active model."""

import streamlit as st

import ui

st.title("Teach a network to read handwritten digits")
st.markdown(
    """
This dashboard trains and uses a **multi-layer perceptron** (784 → 256 → 64 → 10) on MNIST,
70,000 pictures of handwritten digits of 28 × 28 pixels. Everything it runs is in the small
library `mlp_core`, written by hand from the annotated notebook so that you can read it end to end.

The network learns by **gradient descent**, in seven steps; under each, the code that does
it, as this server runs it:
"""
)
ui.show_steps()

c1, c2, c3 = st.columns(3)
with c1:
    st.page_link("app_pages/train.py", label="**Train**", icon=":material/model_training:")
    st.caption("Pick a recipe and a device, then watch the loss fall, live.")
with c2:
    st.page_link("app_pages/samples.py", label="**Samples**", icon=":material/grid_view:")
    st.caption("Browse MNIST with the model's answers and its mistakes.")
with c3:
    st.page_link("app_pages/predict.py", label="**Predict**", icon=":material/draw:")
    st.caption("Draw a digit or upload a photo of one, and see what the network thinks.")

st.subheader("Lessons")
ui.show_lessons()
st.page_link(
    "app_pages/train.py", label="Choose one in Train's **Start from**", icon=":material/school:"
)

st.subheader("Active model")
st.markdown(ui.model_caption(ui.active_model_name()))
if (msg := ui.mnist_missing()) is not None:
    st.info(msg)
