"""Every page opened by its own URL in headless Chromium: the full app, never a bare script."""

import pytest

from conftest import streamlit_server


@pytest.mark.browser
def test_deep_links_open_each_page_inside_the_dashboard(browser, tmp_path):
    from playwright.sync_api import expect

    with streamlit_server({"MLP_MODELS_DIR": str(tmp_path)}) as server:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            # a fresh server's very first request is a deep link: the legacy pages/ mode
            # would run the page alone, with file names in the navigation and no sidebar
            for path, heading in [("/predict", "Predict"), ("/samples", "Samples"),
                                  ("/train", "Train"), ("/step", "Step through learning"),
                                  ("/", "Teach a network")]:  # fmt: skip
                page.goto(server.url + path)
                nav = page.get_by_test_id("stSidebarNav")
                expect(nav.get_by_role("link", name="Overview", exact=True)).to_be_visible()
                expect(nav.get_by_text("dashboard", exact=True)).to_have_count(0)
                sidebar = page.get_by_test_id("stSidebar")
                expect(sidebar.get_by_text("Active model")).to_be_visible()
                expect(page.get_by_role("heading", name=heading).first).to_be_visible()
                expect(page.get_by_test_id("stException")).to_have_count(0)
        finally:
            page.close()
