"""The overview's seven steps of learning, each with its code, and the list of lessons."""

import streamlit as st

from mlp_core.teach import LESSONS, STEPS, source


def show_steps() -> None:
    """Each step in a line, and under it the function that does it, read at run time."""
    for i, step in enumerate(STEPS, 1):
        st.markdown(f"{i}. **{step.title}**: {step.text}")
        with st.expander(f"The code: {step.where}", icon=":material/code:"):
            st.code(source(step), language="python")


def show_lessons() -> None:
    """The lessons the Train page's "Start from" offers, one line each."""
    st.markdown("\n".join(f"- **{lesson.name}**" for lesson in LESSONS))
    st.caption(
        "Each one fills the Train form with a recipe that shows one idea, and says what to "
        "watch; a short run on MNIST checks each lesson's claim in this app's tests."
    )
