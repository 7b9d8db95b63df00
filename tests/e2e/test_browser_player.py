"""The linked player in a real browser (#17): playhead, click-to-seek, slice strip, phone layout, fallback.

A first-time visitor presses "Analyse an example" (the synthesised 30 s loop, no GTZAN audio), then
the test plays two seconds and checks the playhead moved, clicks 20 s on the spectrogram and checks
the audio is there and the page selected the window holding 20 s, checks the slice strip against the
track, presses Space, reloads at 400 px and checks the sidebar, the chart toolbars and the Compare
table, and finally shows the static charts when the player's frame cannot load. Screenshots go to
test-artifacts/. Uses the `server` fixture of tests/helpers/browser.py (its own server for this module).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from tests.helpers.browser import ANALYSIS_TIMEOUT_MS, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, VERDICT, shoot
from tests.helpers.data import synth_music, wav_bytes
from utils.constants import SLICE_S
from utils.windows import plan_windows

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000
PLAYER = "iframe[data-testid=stCustomComponentV1]"
WINDOW_HEADING = re.compile(r"^Window (\d+) · (\d+)–(\d+) s$")


def player_frame(page):
    """The linked player's frame, once its script has drawn a render."""
    handle = page.locator(PLAYER).first.element_handle(timeout=TIMEOUT_MS)
    frame = handle.content_frame()
    frame.wait_for_selector("#root[data-ready=true]", timeout=TIMEOUT_MS)
    return frame


def data(frame, name: str) -> str:
    return frame.eval_on_selector("#root", f"r => r.dataset.{name}")


def selected_heading(page) -> tuple[int, float, float]:
    """(window number, start s, end s) of the window details heading, from the page."""
    text = page.locator("[data-testid=stMain] h4").filter(has_text=WINDOW_HEADING).first.inner_text(timeout=TIMEOUT_MS)
    m = WINDOW_HEADING.match(text.strip())
    assert m, text
    return int(m.group(1)), float(m.group(2)), float(m.group(3))


def wait_selected(page, frame, index: int) -> None:
    """Wait until the page's rerun drew window `index` (0-based) in the details and in the player."""
    page.locator("[data-testid=stMain] h4").filter(has_text=re.compile(rf"^Window {index + 1} · ")).first.wait_for(
        timeout=TIMEOUT_MS)
    frame.wait_for_function(f"document.getElementById('root').dataset.selected === '{index}'", timeout=TIMEOUT_MS)


def boxes_overlap(a: dict | None, b: dict | None) -> bool:
    if not a or not b or not a["width"] or not b["width"]:
        return False
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_linked_player_phone_layout_and_fallback(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(server, wait_until="domcontentloaded")
            # first run: two lines and an example made by code
            expect(page.get_by_text("New here?")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Analyse an example").click()
            expect(page.get_by_role("heading", name=VERDICT)).to_be_visible(
                timeout=ANALYSIS_TIMEOUT_MS)
            frame = player_frame(page)
            meta = frame.evaluate("window.glPlayer.meta()")
            duration = float(meta["duration"])
            assert duration == pytest.approx(30.0, abs=0.1)

            # the slice strip spans the track: one bar per planned slice, no gaps, 0 to the end
            plan = plan_windows(duration)
            starts = [s["start"] for s in meta["slices"]]
            assert len(starts) == len(plan.slice_starts) == int(data(frame, "slices"))
            assert starts == pytest.approx(list(plan.slice_starts), abs=1e-3)
            assert all(s["end"] - s["start"] == pytest.approx(SLICE_S) for s in meta["slices"])
            assert float(data(frame, "stripStart")) == 0.0
            assert float(data(frame, "stripEnd")) == pytest.approx(duration, abs=1e-3)
            assert data(frame, "forced") == "0", "music: genre colours and percentages, not the not-music grey"
            assert all(b["start"] <= a["end"] + 1e-6 for a, b in itertools.pairwise(meta["slices"]))

            # play two seconds: the audio advances and the playhead moves right
            x0 = float(data(frame, "playheadX"))
            frame.locator("#play").click()
            frame.wait_for_function("document.getElementById('root').dataset.playing === 'true'", timeout=10_000)
            page.wait_for_timeout(2000)
            t_played = float(data(frame, "currentTime"))
            x1 = float(data(frame, "playheadX"))
            assert t_played >= 1.0, t_played
            assert x1 > x0 + 5, (x0, x1)
            frame.locator("#play").click()  # pause
            frame.wait_for_function("document.getElementById('root').dataset.playing === 'false'", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "player-01-playing.png"))

            # click 20 s on the spectrogram: the audio jumps there and the page selects the window holding 20 s
            layout = frame.evaluate("window.glPlayer.layout()")
            x20 = frame.evaluate("window.glPlayer.xOf(20)")
            y_spec = layout["top"]["spec"] + layout["rows"]["spec"] / 2
            frame.locator("#overlay").click(position={"x": x20, "y": y_spec})
            t_click = float(data(frame, "currentTime"))
            assert t_click == pytest.approx(20.0, abs=0.25), t_click
            expected = frame.evaluate(f"window.glPlayer.windowAt({t_click})")
            w = meta["windows"][expected]
            assert w["start"] <= 20.0 <= w["end"]
            wait_selected(page, frame, expected)
            number, start, end = selected_heading(page)
            assert number == expected + 1 and start <= 20.0 <= end
            assert float(data(frame, "currentTime")) == pytest.approx(t_click, abs=0.05), "a rerun kept the position"

            # Space plays and pauses (the player has focus after the click)
            page.keyboard.press("Space")
            frame.wait_for_function("document.getElementById('root').dataset.playing === 'true'", timeout=10_000)
            page.keyboard.press("Space")
            frame.wait_for_function("document.getElementById('root').dataset.playing === 'false'", timeout=10_000)

            # a click on the slice strip selects that slice's window (slice 0-5 s: window 1)
            y_strip = layout["top"]["slices"] + layout["rows"]["slices"] / 2
            frame.locator("#overlay").click(position={"x": frame.evaluate("window.glPlayer.xOf(2.5)"), "y": y_strip})
            wait_selected(page, frame, meta["slices"][0]["window"])

            # "Play this window" plays the selected window from its start
            page.get_by_role("button", name="Play this window").click()
            frame.wait_for_function("document.getElementById('root').dataset.playing === 'true'", timeout=10_000)
            assert float(data(frame, "currentTime")) < 5.0
            frame.locator("#play").click()
            shoot(page, "player-02-desktop")
            page.set_viewport_size({"width": 1280, "height": 900})

            assert data(frame, "paddedFrom") == "none"  # 30 s of audio: nothing repeated

            # a second track, for the Compare table: 4 s, repeated to fill one 15 s window
            uploader = page.locator("[data-testid=stFileUploader] input[type=file]").first
            song = wav_bytes(synth_music(4.0, seed=5), 22050)
            uploader.set_input_files([{"name": "a rather long file name for a phone screen.wav",
                                       "mimeType": "audio/wav", "buffer": song}])
            expect(page.get_by_text("Compare · 2 tracks")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
            short = None
            for _ in range(60):  # the page reruns and remounts the player's frame with the new track
                try:
                    frame_now = page.locator(PLAYER).first.element_handle(timeout=TIMEOUT_MS).content_frame()
                    if frame_now is not None and data(frame_now, "paddedFrom") not in (None, "none"):
                        short = frame_now
                        break
                except Exception:  # a frame detached mid-rerun: look again
                    pass
                page.wait_for_timeout(500)
            assert short is not None, "the short clip's player never showed its repeat"
            assert float(data(short, "paddedFrom")) == pytest.approx(4.0, abs=0.05)  # the repeat is shaded from 4 s
            assert float(data(short, "duration")) == pytest.approx(15.0, abs=0.05)
            shoot(page, "player-02b-padded")

            # 400 px, fresh load of the same session: sidebar closed, toolbars off the titles, table fits
            phone = context.new_page()
            phone.set_viewport_size({"width": 400, "height": 860})
            phone.goto(page.url, wait_until="domcontentloaded")
            expect(phone.get_by_text("Compare · 2 tracks")).to_be_visible(timeout=TIMEOUT_MS)
            player_frame(phone)
            main = phone.locator("[data-testid=stMain]").bounding_box()
            sidebar = phone.locator("[data-testid=stSidebar]")
            side = sidebar.bounding_box() if sidebar.count() else None
            assert not side or side["x"] + side["width"] <= 1 or not sidebar.is_visible() \
                or not boxes_overlap(side, main), f"the sidebar covers the page: {side}"
            wrap = phone.locator(".st-key-gl-compare-wrap table")
            expect(wrap).to_be_visible()
            assert not phone.locator(".st-key-gl-compare-grid").is_visible()
            fits = wrap.evaluate("t => [t.scrollWidth, t.parentElement.clientWidth, window.innerWidth]")
            assert fits[0] <= fits[1] + 1 and fits[0] <= 400, fits
            verdict = wrap.evaluate("t => t.querySelector('tbody td:nth-child(2)').getBoundingClientRect().width")
            assert verdict >= 120, f"the verdict column is {verdict} px wide: one word per line"
            for plot in phone.locator(".js-plotly-plot").all():
                plot.hover()
                title = plot.locator(".gtitle")
                bar = plot.locator(".modebar")
                if title.count() and bar.count() and bar.first.is_visible():
                    assert not boxes_overlap(bar.first.bounding_box(), title.first.bounding_box())
            iframe_box = phone.locator(PLAYER).first.bounding_box()
            assert iframe_box["width"] <= 400
            height = phone.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
            phone.set_viewport_size({"width": 400, "height": max(860, min(int(height) + 40, 9000))})
            phone.wait_for_timeout(800)
            phone.screenshot(path=str(ARTIFACTS / "player-03-phone-400px.png"), full_page=True)
            phone.close()

            # the fallback: the player's frame cannot load -> the user switches to the static charts
            broken = context.new_page()
            broken.route(re.compile(r".*/component/.*"), lambda route: route.abort())
            broken.goto(page.url, wait_until="domcontentloaded")
            expect(broken.get_by_role("heading", name=VERDICT)).to_be_visible(timeout=TIMEOUT_MS)
            broken.get_by_text("Static charts").click()
            expect(broken.locator(PLAYER)).to_have_count(0, timeout=TIMEOUT_MS)
            strip = broken.locator(".js-plotly-plot").filter(has_text="Every 5 s slice")
            expect(strip).to_have_count(1, timeout=TIMEOUT_MS)
            expect(broken.locator("[data-testid=stAudio]").first).to_be_attached()
            assert broken.locator("[data-testid=stException]").count() == 0
            shoot(broken, "player-04-static-fallback")
        finally:
            browser.close()
    assert np.isfinite(t_played)
