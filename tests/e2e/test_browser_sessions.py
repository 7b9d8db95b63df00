"""Two users of one server in a real browser: each sees only their own names and results (#13).

Two Playwright contexts (two browsers' worth of cookies) upload the same bytes under different
hostile names; each must see only its own name, character for character, in the heading, the
track picker and the Compare heatmap, and never the other's. In session A the test also checks
that four consecutive picks each show at once, that removing a chip removes its result, that a
reload of the same session brings the results back, and that A's URL opened in another browser
opens nothing. Uses the `server` fixture of tests/helpers/browser.py (one server for this module);
needs Chromium at /usr/bin/chromium and ../shared's GTZAN clips. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re

import pytest

from tests.helpers.browser import ANALYSIS_TIMEOUT_MS, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, shoot
from tests.helpers.data import shared_path

pytestmark = [pytest.mark.browser, pytest.mark.shared, pytest.mark.slow]
ALICE = "alice *private* _demo_ <i>x<i> &lt; `c` :smile:.flac"
BOB = "bob <b>&amp; 'co' <img src=x onerror=alert(1)>.flac"
PICK_LABEL = "Show details for"
HEATMAP_TITLE = "Genre probabilities per track"
TIMEOUT_MS = 30_000


def heatmap_rows(page, timeout_ms: int = TIMEOUT_MS) -> list[str]:
    """The Compare heatmap's row labels as the browser draws them (SVG text, entities decoded)."""
    handle = page.wait_for_function(
        """(title) => {
            for (const plot of document.querySelectorAll('.js-plotly-plot')) {
                const t = plot.querySelector('.gtitle');
                const rows = [...plot.querySelectorAll('.ytick text')].map(e => e.textContent);
                if (t && t.textContent.includes(title) && rows.length) return rows;
            }
            return null;
        }""",
        arg=HEATMAP_TITLE, timeout=timeout_ms,
    )
    return handle.json_value()


def shown_name(name: str) -> str:
    """A name as the heatmap shortens it."""
    return name if len(name) <= 32 else name[:30] + "…"


def heading(page):
    """The detail view's file-name heading (the only h3 of the Analyze page).

    Elements of the previous run that a rerun has not replaced yet are marked data-stale="true";
    under load the old track's heading can linger beside the new one for a moment, so it is skipped.
    """
    return page.locator("[data-testid=stMain] [data-testid=stElementContainer]:not([data-stale=true]) h3")


def picker(page):
    return page.locator("[data-testid=stSelectbox]").filter(has_text=PICK_LABEL)


def picked(page) -> str:
    """The value the track picker shows."""
    return picker(page).get_by_role("combobox").input_value()


def wait_idle(page, quiet_ms: int = 1200, timeout_ms: int = 90_000) -> None:
    """Wait until the script has not been running for `quiet_ms` (a rerun redraws widgets under the mouse)."""
    running = page.locator("[data-testid=stStatusWidgetRunningIcon]")
    quiet, waited = 0, 0
    while quiet < quiet_ms:
        page.wait_for_timeout(200)
        waited += 200
        quiet = 0 if running.count() else quiet + 200
        if waited > timeout_ms:
            raise TimeoutError("the app kept running")


def open_picker(page) -> None:
    """Open the track picker's list (opening is retried; the pick itself is not)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    wait_idle(page)
    options = page.get_by_role("option")
    for _ in range(5):
        if not options.count():
            picker(page).get_by_role("button", name="Open").click()
        try:
            options.first.wait_for(state="visible", timeout=5_000)
            return
        except PlaywrightTimeout:  # closed again by a late redraw: open it again
            wait_idle(page)
    raise AssertionError("the track picker's list did not open")


def pick(page, name: str) -> None:
    """Choose a track in "Show details for", once (no retry: the first try must work)."""
    open_picker(page)
    page.get_by_role("option", name=name, exact=True).click()


def upload(page, files: list[tuple[str, bytes]]) -> None:
    """Drop files on the Analyze page's uploader (names set exactly as given)."""
    uploader = page.locator("[data-testid=stFileUploader] input[type=file]").first
    uploader.set_input_files([{"name": n, "mimeType": "audio/flac", "buffer": b} for n, b in files])


def open_analyze(page, url: str) -> None:
    from playwright.sync_api import expect

    page.goto(url, wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Analyze")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("[data-testid=stFileUploader] input[type=file]")).to_have_count(1, timeout=60_000)


def text_of(page) -> str:
    """Everything the page holds as text, SVG labels and hidden accessibility text included."""
    return page.evaluate("document.body.textContent")


def test_two_sessions_see_only_their_own_names_and_results(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    clips = [shared_path("data", "gtzan_mini", g, f"{g}.00000.flac") for g in ("jazz", "metal", "blues", "disco")]
    same = clips[0].read_bytes()
    a_files = [(ALICE, same), ("metal.flac", clips[1].read_bytes()), ("blues.flac", clips[2].read_bytes()),
               ("disco.flac", clips[3].read_bytes())]
    b_files = [(BOB, same), ("b-other.flac", clips[3].read_bytes())]
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            ctx_a, ctx_b = (browser.new_context(viewport={"width": 1440, "height": 900}) for _ in range(2))
            page_a, page_b = ctx_a.new_page(), ctx_b.new_page()
            for page in (page_a, page_b):
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                open_analyze(page, server)
            upload(page_a, a_files)
            upload(page_b, b_files)
            for page, n in ((page_a, 4), (page_b, 2)):
                expect(page.get_by_text(f"Compare · {n} tracks")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS * 2)
                expect(heading(page)).to_have_count(1, timeout=TIMEOUT_MS)

            # each session sees its own name, exactly, and nothing of the other's
            for page, mine, theirs in ((page_a, ALICE, BOB), (page_b, BOB, ALICE)):
                pick(page, mine)
                expect(heading(page)).to_have_text(mine, timeout=TIMEOUT_MS)
                assert heading(page).text_content() == mine
                assert picked(page) == mine
                assert shown_name(mine) in heatmap_rows(page)
                assert theirs.split()[0] not in text_of(page), f"{theirs.split()[0]}'s name leaked"
                assert page.locator("img[src=x]").count() == 0 and page.locator("[data-testid=stMain] b").count() == 0
            assert not dialogs, dialogs
            shoot(page_a, "sessions-01-alice")
            shoot(page_b, "sessions-02-bob")

            # four consecutive picks, each shown at once and kept
            page = page_a
            for name in ("metal.flac", "blues.flac", ALICE, "disco.flac"):
                pick(page, name)
                expect(heading(page)).to_have_text(name, timeout=TIMEOUT_MS)
                page.wait_for_timeout(1500)  # the bug reverted the box after the rerun
                assert heading(page).text_content() == name and picked(page) == name

            # removing a chip removes its result
            wait_idle(page)
            chip = page.locator("[data-testid=stFileChip]").filter(has_text="blues.flac")
            chip.locator("[data-testid=stFileChipDeleteBtn]").click()
            expect(page.get_by_text("Compare · 3 tracks")).to_be_visible(timeout=TIMEOUT_MS)
            page.wait_for_timeout(1000)
            assert "blues.flac" not in heatmap_rows(page)
            open_picker(page)
            options = page.get_by_role("option").all_inner_texts()
            page.keyboard.press("Escape")
            assert sorted(options) == sorted([ALICE, "metal.flac", "disco.flac"]), options
            shoot(page, "sessions-03-chip-removed")

            # a reload of the same session brings the results back; its token is in the URL
            url = page.url
            assert re.search(r"[?&]s=[A-Za-z0-9_-]{32,}", url), url
            page.reload(wait_until="domcontentloaded")
            expect(page.get_by_text("Compare · 3 tracks")).to_be_visible(timeout=60_000)
            expect(heading(page)).to_have_text("disco.flac", timeout=TIMEOUT_MS)
            assert sorted(heatmap_rows(page)) == sorted([shown_name(ALICE), "metal.flac", "disco.flac"])
            assert page.locator("[data-testid=stFileChip]").count() == 0
            expect(page.get_by_role("button", name="Forget this track")).to_be_visible()
            shoot(page, "sessions-04-after-reload")

            # the same URL in another browser (no cookie of A's) opens nothing of A's
            ctx_c = browser.new_context(viewport={"width": 1440, "height": 900})
            page_c = ctx_c.new_page()
            open_analyze(page_c, url)
            expect(page_c.get_by_text("Upload one or more songs to begin")).to_be_visible(timeout=TIMEOUT_MS)
            assert "alice" not in text_of(page_c) and heading(page_c).count() == 0
            page_c.wait_for_function("(t) => location.search.includes('s=') && !location.search.includes(t)",
                                     arg=url.split("s=")[1][:32], timeout=TIMEOUT_MS)  # a token of its own

            # B is untouched by all of A's actions
            page_b.reload(wait_until="domcontentloaded")
            expect(page_b.get_by_text("Compare · 2 tracks")).to_be_visible(timeout=60_000)
            assert "alice" not in text_of(page_b) and shown_name(BOB) in heatmap_rows(page_b)
            assert page.locator("[data-testid=stException]").count() == 0
            assert page_b.locator("[data-testid=stException]").count() == 0
        finally:
            browser.close()
    (ARTIFACTS / "sessions-dialogs.txt").write_text("\n".join(dialogs))
