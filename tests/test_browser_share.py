"""A shared link opened in headless Chromium fills the Train form and runs nothing."""

import pytest

from conftest import streamlit_server
from mlp_core.recipe import to_query
from mlp_core.teach.lessons import BY_KEY


@pytest.mark.browser
def test_a_shared_link_opens_the_train_page_with_its_lesson_and_recipe(
    browser, tmp_path, mnist_root
):
    from urllib.parse import urlencode

    from playwright.sync_api import expect

    lesson = BY_KEY["batch"]
    params = {"lesson": lesson.key} | to_query(lesson.recipe) | {"epochs": "7", "lr": "oops"}
    env = {"MLP_MODELS_DIR": str(tmp_path), "MNIST_ROOT": str(mnist_root)}
    with streamlit_server(env) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{server.url}/train?{urlencode(params)}")
            expect(page.get_by_text(lesson.text)).to_be_visible()
            expect(page.get_by_role("spinbutton", name="Batch size")).to_have_value("8")
            expect(page.get_by_role("spinbutton", name="Epochs")).to_have_value("7")
            expect(page.get_by_role("spinbutton", name="Learning rate")).to_have_value(
                "0.01"
            )  # the lesson's
            expect(page.get_by_text("This link's lr could not be used")).to_be_visible()
            expect(page.get_by_text("No run on this server yet")).to_be_visible()
            expect(page.get_by_test_id("stException")).to_have_count(0)
            page.wait_for_function("() => location.search.includes('epochs=7')")
            assert "lr=0.01" in page.url  # the link now holds the form's recipe, fixed
        finally:
            page.close()
