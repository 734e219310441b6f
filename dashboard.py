"""Entry point: `streamlit run dashboard.py`. Pages live in app_pages/, shared parts in ui.py.

(Not in pages/: a folder of that name switches Streamlit to its legacy multipage mode,
which runs a page requested by URL without this file, its navigation or its sidebar.)
"""

import streamlit as st

import ui

st.set_page_config(page_title="MNIST MLP", page_icon="✍️", layout="wide")

PAGES = "app_pages"
pages = [
    st.Page(f"{PAGES}/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page(f"{PAGES}/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page(
        f"{PAGES}/samples.py", title="Samples", icon=":material/grid_view:", url_path="samples"
    ),
    st.Page(f"{PAGES}/predict.py", title="Predict", icon=":material/draw:", url_path="predict"),
]
page = st.navigation(pages)
ui.sidebar(page)
page.run()
