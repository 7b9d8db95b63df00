"""Several people at once: N real browser sessions upload different clips to one app server together.

    .venv/bin/python bench/bench_load.py [--sessions 8] [--single-runs 3] [--json]
    .venv/bin/python bench/bench_load.py --long-files 20 [--long-minutes 10] [--json]

Starts `streamlit run app/main.py` on 127.0.0.1 (feedback data in a temp folder), warms it up with
one analysis (the model load is not a user's wait), times `--single-runs` sessions one after
another (the single-session time), then opens N Playwright contexts in Debian's Chromium, lets
each load the page, and has all of them upload a different real GTZAN clip (../shared) at the same
moment and wait for the verdict. Times run from `set_input_files` to the verdict heading. Errors:
no verdict in time, a verdict under another track's name, an error box or exception on the page,
and every traceback in the server log. Peak memory is the server's process tree RSS, sampled
every 50 ms. `--long-files N` instead uploads N synthetic 10-minute CD-quality WAVs at once (made
in a temp dir; memory under long decodes). The server is always terminated; the last line is
JSON with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, VERDICT, streamlit_server  # noqa: E402

MINI = ROOT.parent / "shared" / "data" / "gtzan_mini"
ANALYSE_TIME = re.compile(r"([\d.]+) s to analyse")
START_TIMEOUT_S = 90
PAGE_TIMEOUT_S = 90


# ------------------------------------------------------------------------------------ server


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (from /proc), 0 once it is gone."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


class RssSampler(threading.Thread):
    """Samples the server tree's RSS every `period_s`; `peak` is the highest since the last `reset()`.

    Over `limit_bytes` it kills the server (a shared machine must not meet the OOM killer because of a
    benchmark) and records that in `limit_hit`; the sessions then fail and count as errors.
    """

    def __init__(self, pid: int, limit_bytes: int, period_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.limit, self.period_s, self.peak, self.peak_all = pid, limit_bytes, period_s, 0, 0
        self.limit_hit = False
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period_s):
            rss = tree_rss_bytes(self.pid)
            self.peak, self.peak_all = max(self.peak, rss), max(self.peak_all, rss)
            if rss > self.limit and not self.limit_hit:
                self.limit_hit = True
                with contextlib.suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)

    def reset(self) -> None:
        self.peak = tree_rss_bytes(self.pid)

    def stop(self) -> None:
        self._halt.set()


@contextlib.contextmanager
def app_server(workdir: Path, env_extra: dict[str, str]):
    """The app (tests/helpers/browser.py's starter) with its own data folder; yields (url, pid, log path)."""
    log_path = workdir / "server.log"
    env = {**os.environ, "GENRE_LENS_DEVICE": "cpu", "PYTHONUNBUFFERED": "1",
           "GENRE_LENS_DATA": str(workdir / "data"), **env_extra}
    env.pop("GENRE_LENS_DB_URL", None)
    with streamlit_server(env, log_path, START_TIMEOUT_S) as (url, proc):
        yield url, proc.pid, log_path


def server_tracebacks(log_path: Path) -> int:
    """Exceptions the server logged (each `log.exception` or uncaught error prints one traceback)."""
    return log_path.read_text(errors="replace").count("Traceback (most recent call last)")


# ------------------------------------------------------------------------------------ audio
def real_clips(n: int, skip: int = 0) -> list[Path]:
    """n distinct real GTZAN clips, spread over the genres, after the first `skip` (each bench phase its own)."""
    by_genre = [sorted(g.glob("*.flac")) for g in sorted(MINI.iterdir()) if g.is_dir()] if MINI.exists() else []
    interleaved = [p for row in zip(*by_genre, strict=False) for p in row]  # round-robin over genres
    if len(interleaved) < skip + n:
        raise SystemExit(f"needs {skip + n} clips under {MINI} (../shared/data/gtzan_mini), found {len(interleaved)}")
    return interleaved[skip : skip + n]


def long_wavs(folder: Path, n: int, minutes: float) -> list[Path]:
    """n different synthetic `minutes`-long 44.1 kHz stereo 16-bit WAVs (the largest common upload), on disk."""
    import soundfile as sf

    sr, block_s = 44100, 10.0
    t = np.arange(int(block_s * sr)) / sr
    base = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate((110.0, 220.0, 330.0, 495.0)))
    out = []
    for i in range(n):
        path = folder / f"long-{i:02d}.wav"
        rng = np.random.default_rng(i)
        with sf.SoundFile(path, "w", sr, 2, "PCM_16") as f:
            for b in range(math.ceil(minutes * 60 / block_s)):
                gain = 0.15 + 0.1 * np.sin(b + i)
                noise = 0.02 * rng.standard_normal((t.size, 2))
                f.write((gain * base[:, None] + noise).astype(np.float32))
        out.append(path)
    return out


# ------------------------------------------------------------------------------------ sessions
async def session(browser, url: str, clip: Path, start: asyncio.Barrier | None, timeout_s: float) -> dict:
    """One user: open the app, (wait for the others,) upload `clip`, wait for its verdict; never raises."""
    result = {"clip": clip.name, "seconds": None, "engine_s": None, "error": None, "saw_queued": False}
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(url, wait_until="domcontentloaded", timeout=PAGE_TIMEOUT_S * 1000)
        uploader = page.locator("[data-testid=stFileUploader] input[type=file]")
        await uploader.wait_for(state="attached", timeout=PAGE_TIMEOUT_S * 1000)
        if start is not None:
            await asyncio.wait_for(start.wait(), PAGE_TIMEOUT_S)
        t0 = time.perf_counter()
        await uploader.set_input_files(str(clip))
        verdict = page.get_by_role("heading", name=VERDICT)
        failure = page.locator("[data-testid=stAlertContentError], [data-testid=stException]")
        done = asyncio.ensure_future(verdict.or_(failure).first.wait_for(timeout=timeout_s * 1000))
        while not done.done():  # meanwhile: did the page ever tell this user it is queued?
            if not result["saw_queued"] and await page.get_by_text("queued", exact=False).count():
                result["saw_queued"] = True
            await asyncio.wait([done], timeout=0.5)
        await done
        seconds = time.perf_counter() - t0
        if await failure.count():
            result["error"] = "error on the page: " + (await failure.first.inner_text())[:200]
        elif not await page.get_by_role("heading", name=clip.name, exact=True).count():
            shown = await page.locator("h3").all_inner_texts()
            result["error"] = f"verdict under another track name: {shown[:3]}"
        else:
            result["seconds"] = seconds
            caption = await page.get_by_text(ANALYSE_TIME).first.inner_text(timeout=10_000)
            result["engine_s"] = float(ANALYSE_TIME.search(caption).group(1))  # the engine's own total
    except Exception as exc:  # a timeout or a dead page: an error of this session, not of the bench
        result["error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        if start is not None and result["seconds"] is None:
            await start.abort()  # the others stop waiting for a session that will never upload
    finally:
        await context.close()
    status = f"{result['seconds']:.2f} s" if result["seconds"] is not None else f"ERROR {result['error']}"
    print(f"  {clip.name}: {status}", file=sys.stderr, flush=True)
    return result


async def run_sessions(url: str, clips: list[Path], together: bool, timeout_s: float) -> list[dict]:
    """All clips at once (one context each, uploads released together) or one after another."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            if together:
                start = asyncio.Barrier(len(clips))
                return list(await asyncio.gather(*(session(browser, url, c, start, timeout_s) for c in clips)))
            return [await session(browser, url, c, None, timeout_s) for c in clips]
        finally:
            await browser.close()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (with 8 samples p95 is the maximum: no interpolation flatters it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarise(results: list[dict]) -> dict:
    """p50/p95/max of the successful sessions and the error count."""
    times = [r["seconds"] for r in results if r["seconds"] is not None]
    engine = [r["engine_s"] for r in results if r["engine_s"] is not None]
    return {"p50_s": percentile(times, 50), "p95_s": percentile(times, 95), "max_s": max(times) if times else None,
            "engine_p50_s": percentile(engine, 50),
            "session_errors": sum(r["error"] is not None for r in results),
            "saw_queued": sum(r["saw_queued"] for r in results)}


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary, and with --json one JSON object as the last line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=8, help="concurrent browser sessions (default 8)")
    p.add_argument("--single-runs", type=int, default=3, help="sequential single sessions for the baseline")
    p.add_argument("--long-files", type=int, default=0, help="upload N synthetic long WAVs at once instead")
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a session may wait for its verdict")
    p.add_argument("--max-analyses", type=int, default=None, help="GENRE_LENS_MAX_ANALYSES for the server")
    p.add_argument("--rss-limit-mb", type=float, default=12000, help="kill the server above this RSS (safety)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not CHROMIUM.exists():
        raise SystemExit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    if not 1 <= args.sessions <= 32 or not 0 <= args.long_files <= 32 or not 0 <= args.single_runs <= 10:
        raise SystemExit("keep --sessions and --long-files within 1-32 and --single-runs within 0-10")
    env = {} if args.max_analyses is None else {"GENRE_LENS_MAX_ANALYSES": str(args.max_analyses)}

    with tempfile.TemporaryDirectory(prefix="genre-lens-load-") as tmp:
        work = Path(tmp)
        long = long_wavs(work, args.long_files, args.long_minutes) if args.long_files else []
        n = args.long_files or args.sessions
        clips = real_clips(1 + args.single_runs + (0 if long else n))
        t_start = time.perf_counter()
        with app_server(work, env) as (url, pid, log_path):
            sampler = RssSampler(pid, int(args.rss_limit_mb * 2**20))
            sampler.start()
            try:
                idle_mb = tree_rss_bytes(pid) / 2**20
                warm = asyncio.run(run_sessions(url, clips[:1], False, args.timeout))  # loads the model
                single = asyncio.run(run_sessions(url, clips[1 : 1 + args.single_runs], False, args.timeout))
                sampler.reset()
                batch = long or clips[1 + args.single_runs :]
                together = asyncio.run(run_sessions(url, batch, True, args.timeout))
                batch_peak_mb = sampler.peak / 2**20
            finally:
                sampler.stop()
                sampler.join()
            tracebacks = server_tracebacks(log_path)
            log_tail = log_path.read_text(errors="replace")[-1500:] if tracebacks else ""
    single_times = [r["seconds"] for r in single if r["seconds"] is not None]
    single_s = statistics.median(single_times) if single_times else None
    single_engine = [r["engine_s"] for r in single if r["engine_s"] is not None]
    stats = summarise(together)
    errors = stats["session_errors"] + sum(r["error"] is not None for r in warm + single) + tracebacks \
        + sampler.limit_hit
    goal_p95 = None if single_s is None or long else n * single_s + 5.0  # long files: memory, not latency
    out = {
        "sessions": n, "errors": errors, "p50_s": stats["p50_s"], "p95_s": stats["p95_s"], "max_s": stats["max_s"],
        "peak_rss_mb": round(sampler.peak_all / 2**20, 1), "batch_peak_rss_mb": round(batch_peak_mb, 1),
        "idle_rss_mb": round(idle_mb, 1), "single_session_s": single_s, "warmup_s": warm[0]["seconds"],
        "single_engine_s": statistics.median(single_engine) if single_engine else None,
        "engine_p50_s": stats["engine_p50_s"],
        "goal_p95_s": goal_p95, "server_tracebacks": tracebacks, "saw_queued": stats["saw_queued"],
        "rss_limit_hit": sampler.limit_hit,
        "clip": f"{args.long_minutes:g} min synthetic WAV 44.1 kHz stereo" if long else "30 s GTZAN FLAC",
        "max_analyses": args.max_analyses, "cpus": os.cpu_count(), "wall_s": round(time.perf_counter() - t_start, 1),
        "meets_goals": bool(errors == 0 and (long or (goal_p95 is not None and stats["p95_s"] is not None
                            and stats["p95_s"] <= goal_p95 and sampler.peak_all < 3 * 2**30))),
    }
    for r in warm + single + together:
        if r["error"]:
            print(f"  error  {r['clip']}: {r['error']}")
    if sampler.limit_hit:
        print(f"  the server passed --rss-limit-mb {args.rss_limit_mb:.0f} and was killed")
    if log_tail:
        print(f"  server log ends:\n{log_tail}")
    print(f"single session (median of {len(single_times)}): {_fmt(single_s)} (engine {_fmt(out['single_engine_s'])})"
          f"   warm-up: {_fmt(warm[0]['seconds'])}")
    print(f"{n} at once: p50 {_fmt(stats['p50_s'])}  p95 {_fmt(stats['p95_s'])}  max {_fmt(stats['max_s'])}  "
          f"(goal p95 <= {_fmt(goal_p95)}); engine p50 {_fmt(stats['engine_p50_s'])}")
    print(f"errors {errors}  peak server RSS {out['peak_rss_mb']:.0f} MB (idle {idle_mb:.0f} MB, during the batch "
          f"{batch_peak_mb:.0f} MB)  sessions told 'queued': {stats['saw_queued']}")
    if args.json:
        print(json.dumps(out))
    return 0 if out["meets_goals"] else 1


def _fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
