"""Entry point: `streamlit run dashboard.py`. Pages live in app_pages/, their parts in ui/.

(Not in pages/: a folder of that name switches Streamlit to its legacy multipage mode,
which runs a page requested by URL without this file, its navigation or its sidebar.)
"""

import logging

import streamlit as st

import ui
from mlp_core.errors import UserError

st.set_page_config(page_title="MNIST MLP", page_icon="✍️", layout="wide")
ui.serve()

PAGES = "app_pages"
pages = [
    st.Page(f"{PAGES}/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page(f"{PAGES}/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page(
        f"{PAGES}/samples.py", title="Samples", icon=":material/grid_view:", url_path="samples"
    ),
    st.Page(f"{PAGES}/predict.py", title="Predict", icon=":material/draw:", url_path="predict"),
    st.Page(f"{PAGES}/step.py", title="Step through", icon=":material/footprint:", url_path="step"),
]
page = st.navigation(pages)
ui.sidebar(page)
try:
    page.run()
except UserError as e:  # a sentence for the visitor, whichever page raised it
    st.error(ui.plain(str(e)), icon=":material/error:")
except Exception:  # a bug: the server's log gets the traceback, the visitor one sentence
    logging.getLogger("dashboard").exception("page %s failed", page.url_path or "overview")
    st.error("Something went wrong on this page; the server's log has the details.")
