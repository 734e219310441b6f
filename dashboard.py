"""Entry point: `streamlit run dashboard.py`. Pages live in app_pages/, their parts in ui/.

(Not in pages/: a folder of that name switches Streamlit to its legacy multipage mode,
which runs a page requested by URL without this file, its navigation or its sidebar.)

Everything runs under `if __name__ == "__main__"`, as Streamlit runs this file: while a page
runs, this file is the `__main__` module, and a worker process started then (`spawn`)
imports it again as `__mp_main__`. Unguarded, every worker would run the app's start-up and
open the run history, applying the restart clean-up to the live server's runs.
"""


def main() -> None:
    import logging

    import streamlit as st

    import ui
    from mlp_core.errors import UserError

    st.set_page_config(page_title="MNIST MLP", page_icon="✍️", layout="wide")
    ui.serve()

    folder = "app_pages"
    pages = [
        st.Page(f"{folder}/overview.py", title="Overview", icon=":material/home:", default=True),
        st.Page(
            f"{folder}/train.py", title="Train", icon=":material/model_training:", url_path="train"
        ),
        st.Page(
            f"{folder}/samples.py", title="Samples", icon=":material/grid_view:", url_path="samples"
        ),
        st.Page(
            f"{folder}/predict.py", title="Predict", icon=":material/draw:", url_path="predict"
        ),
        st.Page(
            f"{folder}/step.py", title="Step through", icon=":material/footprint:", url_path="step"
        ),
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


if __name__ == "__main__":  # not in a worker process, which imports this as __mp_main__
    main()
