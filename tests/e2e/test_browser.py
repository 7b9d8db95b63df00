"""End to end in a real browser: `streamlit run`, upload through the page, visit every page.

Needs Debian's Chromium at /usr/bin/chromium (Playwright cannot download browsers here). Uses the
installed model when models/checkpoints has one, else a random-weights test bundle (plumbing only).
Screenshots and the server log go to test-artifacts/ for a human to look at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.apptest import CLIP
from tests.helpers.browser import ANALYSIS_TIMEOUT_MS, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, VERDICT, shoot
from tests.helpers.data import synth_music, wav_bytes

pytestmark = pytest.mark.browser


def test_upload_and_visit_every_page(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    clips = [CLIP, CLIP.parent.parent / "metal" / "metal.00000.flac"]
    if not all(c.exists() for c in clips):
        clips = [tmp_path / "synth-1.wav", tmp_path / "synth-2.wav"]
        for seed, c in enumerate(clips):
            c.write_bytes(wav_bytes(synth_music(seed=seed), 22050))
    bad = tmp_path / "broken.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.goto(server, wait_until="domcontentloaded")
            expect(page.get_by_role("heading", name="Analyze")).to_be_visible(timeout=30_000)
            uploader = page.locator("[data-testid=stFileUploader] input[type=file]")
            expect(uploader).to_have_count(1, timeout=30_000)  # shown once the model has loaded
            shoot(page, "01-analyze-empty")

            uploader.set_input_files([*map(str, clips), str(bad)])
            expect(page.get_by_role("heading", name=VERDICT)).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
            # bars, attention, slice heatmap + the comparison; the linked player draws the rest (#17)
            expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
            expect(page.locator("iframe[data-testid=stCustomComponentV1]")).to_have_count(1)
            expect(page.get_by_text("broken.wav", exact=False).first).to_be_visible()
            assert page.locator("[data-testid=stException]").count() == 0
            shoot(page, "02-analyze-results")

            links = page.locator("[data-testid=stSidebarNavLink]")
            titles = [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts()]  # drop the icon ligature
            assert "Metrics" in titles, titles
            for i, title in enumerate(titles):
                if title == "Analyze":
                    continue
                page.set_viewport_size({"width": 1440, "height": 900})
                links.nth(i).click()
                expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=30_000)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(1500)
                assert page.locator("[data-testid=stException]").count() == 0, title
                shoot(page, f"03-{title.lower()}")

            page.set_viewport_size({"width": 1440, "height": 900})
            links.nth(titles.index("Analyze")).click()
            expect(page.get_by_role("heading", name=VERDICT)).to_be_visible(timeout=30_000)
            expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
            shoot(page, "04-analyze-after-switch")
        finally:
            browser.close()
    (ARTIFACTS / "console-errors.txt").write_text("\n".join(console_errors))
