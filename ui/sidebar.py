"""The sidebar on every page: the active model, and a running job's progress."""

import streamlit as st

from mlp_core.service import ACTIVE

from .models import active_model_name, model_caption
from .server import browser, start_upload_sweeper, trainer


def sidebar(page) -> None:
    """The active model on every page, and a running job's progress on the pages other
    than Train (which shows the run live)."""
    start_upload_sweeper()
    with st.sidebar:
        st.markdown("**Active model**")
        st.caption(model_caption(active_model_name()))
        # Drawn with the page, not refreshed by a timer: a fragment ticking every second on
        # every page made Streamlit drop the output of long page runs (eight users uploading
        # pictures while a run trained were left with some answers missing, for good).
        if page.url_path == "train":
            return
        runs = [r for r in trainer().runs if r.status in ACTIVE]
        mine = [r for r in runs if r.owner == browser()]
        if runs:
            snap = (mine or runs)[-1].snapshot(curves=False)
            st.markdown("**Training your run**" if mine else "**Training**")
            epoch = f"Epoch {min(snap.epoch + 1, snap.epochs)}/{snap.epochs}"
            st.progress(snap.progress, text=f"{epoch} when this page opened")
            st.page_link("app_pages/train.py", label="Follow it live", icon=":material/monitoring:")
