"""Calibrate the int8 MusiCNN front-end on real clips and write `int8_qparams.json`.

Usage: python -m models.embedders.musicnn.int8_calibrate [--out PATH]

Why a committed artefact rather than calibrating at run time: calibration needs audio that users
do not have (GTZAN train-list clips), takes minutes on 2 cores (histogram observers over
~10^9 activations), and must give the same model everywhere. The
clips are the 40 gtzan_mini clips in the fault-filtered *train* list (never valid or test), sorted,
each loudness-normalised exactly as the engine does, and fed through the engine's sliding patches;
the observers are torch.ao's x86 defaults (histogram, reduce_range), so the result is deterministic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.ao.quantization import get_default_qconfig

from models.embedders.musicnn.frontend import SR, logmel
from models.embedders.musicnn.int8 import BACKEND, BLOCKS, QPARAMS_FILE, prepared, quiet
from models.embedders.musicnn.weights import load_msd_musicnn
from utils.audio import load_audio
from utils.constants import SHARED_DATA
from utils.loudness import model_input
from utils.tables import read_id_list

MINI = SHARED_DATA / "gtzan_mini"
TRAIN_LIST = SHARED_DATA / "gtzan_ff_msd_musicnn" / "train_filtered.txt"


def train_clips(mini: Path = MINI, train_list: Path = TRAIN_LIST) -> list[Path]:
    """gtzan_mini clips whose track is in the fault-filtered train list, sorted by name."""
    wanted = set(read_id_list(train_list))
    return sorted((p for p in mini.glob("*/*.flac") if p.stem in wanted), key=lambda p: p.name)


def clip_logmel(path: Path) -> np.ndarray:
    """The log-mel the engine's embedder sees for this clip (decoded, 16 kHz, loudness-normalised)."""
    decoded = load_audio(path, SR, pad_to_s=None)
    level_input, _ = model_input(decoded.samples, SR, True)
    return logmel(level_input)


def calibrate(clips: list[Path]) -> dict[str, Any]:
    """Observe the five front-end blocks' input and output ranges on `clips`; return the qparams."""
    if not clips:
        raise FileNotFoundError("No calibration clips: ../shared/data/gtzan_mini and its train list are needed.")
    with quiet():
        qconfig = get_default_qconfig(BACKEND)
        configs = {name: dict.fromkeys(("quant", "pos", "neg"), qconfig) for name in BLOCKS}
        net = prepared(load_msd_musicnn("cpu"), configs)
    with torch.inference_mode():
        for path in clips:
            net.sliding_features(torch.from_numpy(clip_logmel(path))[None])
    blocks = {}
    for name, block in net.blocks().items():
        blocks[name] = {}
        for point in ("quant", "pos", "neg"):
            observer = getattr(block, point).activation_post_process
            scale, zero_point = observer.calculate_qparams()
            blocks[name][point] = {"scale": float(scale), "zero_point": int(zero_point),
                                   "quant_min": int(observer.quant_min), "quant_max": int(observer.quant_max)}
    return {
        "backend": BACKEND,
        "observer": "torch.ao x86 default: HistogramObserver(reduce_range=True), per-channel int8 weights",
        "clips": [p.name for p in clips],
        "torch": torch.__version__,
        "blocks": blocks,
    }


def main(argv: list[str] | None = None) -> int:
    """Calibrate and write the artefact."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=QPARAMS_FILE)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    qparams = calibrate(train_clips())
    args.out.write_text(json.dumps(qparams, indent=1) + "\n")
    print(f"wrote {args.out} from {len(qparams['clips'])} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
