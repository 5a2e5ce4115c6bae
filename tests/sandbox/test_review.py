"""The review page in a real browser: Playwright driving Debian's Chromium (no browser download).

The flows a clinician uses: order a drug, see the card, click each kind of suggestion (a replacement, a change of
supply, a removal, orders created from a patient-view card), see the order change and the next hook call's result;
override a card; real feedback each time. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from bench.loadgen import ServerProcess
from cds_service.feedback import open_store
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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
        assert labels == [
            "Replace with naproxen 500 mg twice daily",
            "Shorten this order to 4 days (supply and duration)",
        ]
        assert card.query_selector("select[aria-label='override reason']") is not None
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-ketorolac-critical.png"), full_page=True)
        assert (
            page.inner_text("#drafts li[data-ref='MedicationRequest/d1']").split(" — ")[1]
            == "Ketorolac Tromethamine 10 MG Oral Tablet"
        )
        card.query_selector(".suggestions button.recommended").click()
        # the draft itself becomes naproxen (same id) and the hook is called again with it: nothing left to flag
        page.wait_for_selector(
            '#history li:has-text(\'Applied "Replace with naproxen 500 mg twice daily" → next order-select call: 0 '
            "card(s)')"
        )
        order = page.inner_text("#drafts li[data-ref='MedicationRequest/d1']")
        assert order.startswith(
            "MedicationRequest/d1 — Naproxen 500 MG Oral Tablet — 500 mg by mouth twice daily with food"
        )
        assert page.query_selector_all("#drafts li") and len(page.query_selector_all("#drafts li")) == 1
        assert page.query_selector_all("article.card") == []
        assert len(open_store(server.database_url).card_uuids()) == 1
        page.close()


def _fire(browser, server, case, call_label=None):
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.goto(f"{server.url}/sandbox?case={case}")
    page.wait_for_selector("#call option", state="attached")
    if call_label:
        page.select_option("#call", label=call_label)
    page.click("#fire")
    return page


def test_shortening_the_order_changes_its_supply_and_the_next_call_is_clean(browser):
    with ServerProcess(workers=1) as server:
        page = _fire(browser, server, "06-ketorolac-iv-then-oral")
        card = page.wait_for_selector("article.card.critical[data-topic='ketorolac-duration']", timeout=15000)
        card.query_selector(".suggestions button:has-text('Shorten this order to 4 days')").click()
        page.wait_for_selector("#history li:has-text('next order-select call: 0 card(s)')")
        assert "supply 4 days" in page.inner_text(
            "#drafts li[data-ref='MedicationRequest/d1']"
        )  # IV yesterday + 4 = 5 days
        page.close()


def test_removing_a_contraindicated_order_empties_the_draft_list(browser):
    with ServerProcess(workers=1) as server:
        page = _fire(browser, server, "10-ketorolac-ckd4-gi-bleed")
        card = page.wait_for_selector("article.card.critical[data-topic='ketorolac-contraindication']", timeout=15000)
        assert "Planned ketorolac exposure" in card.query_selector(".detail").inner_text()
        card.query_selector(".suggestions button:has-text('Remove the ketorolac order')").click()
        page.wait_for_selector("#history li:has-text('next order-select call: 0 card(s)')")
        assert page.inner_text("#drafts") == "(no draft orders)"
        page.close()


def test_orders_created_from_a_red_flag_card_are_placed_and_the_card_goes(browser):
    with ServerProcess(workers=1) as server:
        page = _fire(browser, server, "20-cauda-equina", "patient-view: chart opened")
        card = page.wait_for_selector("article.card.critical[data-topic='imaging-red-flags']", timeout=15000)
        assert (
            card.query_selector(".summary").inner_text()
            == "Red flag: cauda equina signs. Order emergency MRI and same-day neurosurgery referral now."
        )
        card.query_selector(".suggestions button.recommended").click()
        page.wait_for_selector("#history li:has-text('next patient-view call: 0 card(s)')")
        placed = [li.inner_text() for li in page.query_selector_all("#placed li")]
        assert [p.split(" — ")[1] for p in placed] == [
            "MRI lumbar spine without contrast",
            "Referral to neurosurgeon (procedure)",
        ]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-red-flag-accepted.png"), full_page=True)
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
        assert summary == [
            {
                "topic": "imaging-red-flags",
                "outcome": "overridden",
                "overrideReason": "already-under-specialist-care",
                "count": 1,
            }
        ]
        page.close()
