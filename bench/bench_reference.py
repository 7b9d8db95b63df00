"""The port against the original TensorFlow MSD_musicnn, side by side, on the same clip and patches.

Usage: python bench/bench_reference.py [--reference-python PY] [--rounds 5] [--clip FILE] [--json]

PY is an interpreter with tensorflow-cpu, tf_keras and musicnn==0.1.0 (docs/reference.md). It runs
bench/reference_worker.py, a warm worker (graph built once, clips sent over a pipe), so neither side
pays for model loading. Each round times the reference, the project's drop-in `extractor` in fp32,
then in int8, on the same clip with the same 28 patches (input_length=3, input_overlap=1),
alternating so that load from other jobs on the machine hits all three alike; medians are reported.
Both sides get the same number of threads by default (--threads; TensorFlow: intra-op, one inter-op):
under contention Linux shares the CPU per thread, so a side with more threads would get more of it.

It also feeds both networks the *same* float32 log-mel patches: the taggram gap that remains on the
clip itself then belongs to the reference's float16 log-mel (`10000 * mel` overflows to inf on loud
bins), not to the networks. Without --reference-python only the project is timed, and the output
says plainly that no ratio was measured. The last line is JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.embedders.musicnn.extractor import extractor  # noqa: E402
from models.embedders.musicnn.frontend import SR, logmel  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "gtzan_mini" / "rock" / "rock.00000.flac"
INPUT_LENGTH, INPUT_OVERLAP = 3, 1


class Reference:
    """The reference worker process: one JSON request per line, one reply per line."""

    def __init__(self, python: str, threads: int | None = None) -> None:
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [python, str(ROOT / "bench" / "reference_worker.py")] + (["--threads", str(threads)] if threads else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the reference worker died; check the interpreter (docs/reference.md)")
        return json.loads(line)

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def project_run(clip: Path, precision: str) -> tuple[float, np.ndarray]:
    """(seconds, taggram) of the project's drop-in extractor, same arguments as the reference."""
    t = time.perf_counter()
    taggram, _ = extractor(clip, "MSD_musicnn", INPUT_LENGTH, INPUT_OVERLAP, extract_features=False,
                           precision=precision)
    return time.perf_counter() - t, taggram


def same_input_check(ref: Reference, clip: Path, tmp: Path) -> dict[str, Any]:
    """Feed both networks the same patches: ours (float32 log-mel), then the reference's (float16-derived)."""
    import librosa

    from models.embedders.musicnn.extractor import _shared_model

    audio, _ = librosa.load(clip, sr=SR)
    mel = logmel(audio)
    length, step = 187, 61  # what input_length=3 / input_overlap=1 give (checked against the worker's patches)
    ours = np.stack([mel[k : k + length] for k in range(0, mel.shape[0] - length + 1, step)])
    np.save(tmp / "ours.npy", ours)
    ref.ask(cmd="patches", npy=str(tmp / "ours.npy"), out=str(tmp / "ref_on_ours.npy"))
    info = ref.ask(cmd="logmel", path=str(clip), input_length=INPUT_LENGTH, input_overlap=INPUT_OVERLAP,
                   out=str(tmp / "theirs.npy"))
    theirs = np.load(tmp / "theirs.npy")
    net = _shared_model("cpu")
    with torch.inference_mode():
        ours_on_ours = net(torch.from_numpy(ours)).numpy()
        ours_on_theirs = net(torch.from_numpy(theirs)).numpy()
    ref_on_ours = np.load(tmp / "ref_on_ours.npy")
    finite = np.isfinite(theirs)
    return {
        "same_input_taggram_mae": float(np.abs(ref_on_ours - ours_on_ours).mean()),
        "reference_logmel_nonfinite_values": int(info["nonfinite"]),
        "reference_logmel_patches_with_inf": int((~finite).any(axis=(1, 2)).sum()),
        "logmel_mae_where_finite": float(np.abs(theirs - ours)[finite].mean()) if theirs.shape == ours.shape else None,
        "_ours_on_theirs": ours_on_theirs,
    }


def main(argv: list[str] | None = None) -> int:
    """Time both sides and print the summary (and the JSON line with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-python", default=None, help="interpreter with tensorflow-cpu, tf_keras, musicnn")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (and TensorFlow's, unless told otherwise)")
    ap.add_argument("--reference-threads", type=int, default=None,
                    help="TensorFlow intra-op threads (default: --threads; 0: TensorFlow's own choice, all cores)")
    ap.add_argument("--clip", type=Path, default=None, help="audio file (default: a 30 s GTZAN clip from ../shared)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clip = args.clip or CLIP
    if not clip.exists():
        raise SystemExit(f"{clip} is missing: pass --clip FILE")
    tmp = Path(tempfile.mkdtemp(prefix="bench_reference_"))
    ref_threads = None if args.reference_threads == 0 else (args.reference_threads or args.threads)
    ref = Reference(args.reference_python, ref_threads) if args.reference_python else None
    sides = ["reference"] * bool(ref) + ["fp32", "int8"]
    times: dict[str, list[float]] = {side: [] for side in sides}
    taggrams: dict[str, np.ndarray] = {}
    patches: dict[str, int] = {}
    try:
        for r in range(args.rounds + 1):  # round 0 warms every side (graph, weights, int8 build, allocator)
            for side in sides:
                if side == "reference":
                    assert ref is not None
                    out = tmp / "ref_taggram.npy"
                    reply = ref.ask(cmd="extract", path=str(clip), input_length=INPUT_LENGTH,
                                    input_overlap=INPUT_OVERLAP, out=str(out))
                    seconds, taggram = reply["seconds"], np.load(out)
                else:
                    seconds, taggram = project_run(clip, side)
                if r:
                    times[side].append(seconds)
                taggrams[side], patches[side] = taggram, int(taggram.shape[0])
        check = same_input_check(ref, clip, tmp) if ref else None
    finally:
        if ref:
            ref.close()
    med = {side: statistics.median(v) for side, v in times.items()}
    result: dict[str, Any] = {
        "clip": clip.name, "rounds": args.rounds, "threads": args.threads,
        "input_length": INPUT_LENGTH, "input_overlap": INPUT_OVERLAP,
        "reference_s": round(med["reference"], 4) if ref else None,
        "project_s": round(med["fp32"], 4),
        "project_int8_s": round(med["int8"], 4),
        "reference_patches": patches.get("reference"),
        "project_patches": patches["fp32"],
        "speedup": round(med["reference"] / med["fp32"], 2) if ref else None,
        "speedup_int8": round(med["reference"] / med["int8"], 2) if ref else None,
        "taggram_mae": None, "taggram_mae_int8": None,
        "int8_vs_fp32_taggram_mae": float(np.abs(taggrams["int8"] - taggrams["fp32"]).mean()),
        "reference_python": args.reference_python, "reference_threads": ref_threads,
        "tensorflow": ref.info.get("tensorflow") if ref else None,
        "times_s": {side: [round(t, 4) for t in v] for side, v in times.items()},
    }
    print(f"MSD_musicnn, {clip.name}, {result['project_patches']} patches (input_length=3, input_overlap=1), "
          f"medians of {args.rounds} alternating rounds, {args.threads} torch threads")
    if ref:
        result["taggram_mae"] = float(np.abs(taggrams["reference"] - taggrams["fp32"]).mean())
        result["taggram_mae_int8"] = float(np.abs(taggrams["reference"] - taggrams["int8"]).mean())
        assert check is not None
        ours_on_theirs, theirs = check.pop("_ours_on_theirs"), taggrams["reference"]
        if ours_on_theirs.shape == theirs.shape:  # the port's network on the reference's own inf-laden patches
            ok = np.isfinite(ours_on_theirs)
            check["ours_on_reference_logmel_nonfinite_taggram_values"] = int((~ok).sum())
            check["ours_on_reference_logmel_vs_reference_taggram_mae_where_finite"] = (
                float(np.abs(ours_on_theirs - theirs)[ok].mean()) if ok.any() else None)
        result.update(check)
        print(f"  reference (TensorFlow {result['tensorflow']}, warm)  {med['reference']:.3f} s")
        print(f"  project fp32                      {med['fp32']:.3f} s   {result['speedup']}x")
        print(f"  project int8                      {med['int8']:.3f} s   {result['speedup_int8']}x")
        print(f"  taggram MAE vs reference: fp32 {result['taggram_mae']:.4f}, int8 {result['taggram_mae_int8']:.4f}; "
              f"same float32 input to both networks: {result['same_input_taggram_mae']:.2e}")
        print(f"  the reference's float16 log-mel has {result['reference_logmel_nonfinite_values']} inf values in "
              f"{result['reference_logmel_patches_with_inf']} of its {result['reference_patches']} patches")
    else:
        print(f"  project fp32  {med['fp32']:.3f} s, int8 {med['int8']:.3f} s")
        print("  no ratio measured: the reference was not run (give --reference-python PY, see docs/reference.md)")
    print(f"  int8 vs fp32 taggram MAE {result['int8_vs_fp32_taggram_mae']:.5f}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
