"""The review page in a real browser: Playwright driving Debian's Chromium (no browser download).

Fires a hook for a synthetic patient, checks the rendered cards, clicks a suggestion (real feedback) and saves a
screenshot to test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from cds_service.feedback import open_store
from cds_service.loadgen import ServerProcess

pytestmark = pytest.mark.slow
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("Chromium not installed (make test installs Debian's chromium; set CHROMIUM_PATH otherwise)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_review_page_shows_the_ketorolac_critical_card_and_sends_feedback(browser):
    with ServerProcess(workers=1) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.goto(f"{server.url}/sandbox?case=06-ketorolac-iv-then-oral")
        page.wait_for_selector("#call option", state="attached")
        page.click("#fire")
        card = page.wait_for_selector("article.card.critical[data-topic='ketorolac-duration']", timeout=15000)
        assert card.query_selector(".summary").inner_text().startswith("Ketorolac would run 6 days (limit 5")
        assert "First ketorolac dose" in card.query_selector(".detail table").inner_text()
        assert card.query_selector(".source a").get_attribute("href").startswith("https://dailymed.nlm.nih.gov/")
        labels = [b.inner_text() for b in card.query_selector_all(".suggestions button")]
        assert labels == ["Replace with naproxen 500 mg twice daily", "Keep ketorolac, limit to 4 days"]
        assert card.query_selector("select[aria-label='override reason']") is not None
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-ketorolac-critical.png"), full_page=True)
        card.query_selector(".suggestions button.recommended").click()
        page.wait_for_selector("article.card.critical .outcome:has-text('Accepted: Replace with naproxen')")
        assert '"resourceType": "MedicationRequest"' in card.query_selector(".actions pre").inner_text()
        assert len(open_store(server.database_url).card_uuids()) == 1
        page.close()


def test_review_page_override_sends_overridden_feedback(browser):
    with ServerProcess(workers=1) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/sandbox?case=20-cauda-equina")
        page.wait_for_selector("#call option", state="attached")
        page.click("#fire")
        card = page.wait_for_selector("article.card.critical[data-topic='imaging-red-flags']", timeout=15000)
        card.query_selector("select[aria-label='override reason']").select_option("already-under-specialist-care")
        card.query_selector(".override button").click()
        page.wait_for_selector("article.card .outcome:has-text('Overridden: Patient already under specialist care')")
        store = open_store(server.database_url)
        for _ in range(50):  # the issued-card ledger is written in the background, off the clinical path
            summary = store.summary()
            if summary and summary[0]["topic"] != "unknown":
                break
            time.sleep(0.1)
        assert summary == [{"topic": "imaging-red-flags", "outcome": "overridden", "overrideReason": "already-under-specialist-care",
                            "count": 1}]
        page.close()
