"""The inference engine: bytes or a path in, an `Analysis` out. No Streamlit here.

Loads a checkpoint bundle and its embedder once, on CUDA when available, and caches model outputs by
(audio sha256, model id), so a re-run or a page switch costs nothing. Safe to share between the
threads of a Streamlit server: inference is serialised by a lock, the cache by another.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, replace
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from app.analysis import Analysis, WindowResult
from models.classifier.bundle import CheckpointError, load_bundle, resolve_bundle, sha256_file
from models.classifier.predict import combine_windows, predict_windows
from models.embedders.base import Embedder, base_id, build_embedder
from models.embedders.slices import embed_slices
from models.novelty import track_mean
from models.trust import TrustSettings, load_trust
from utils.analysis_gate import analysis_slot
from utils.audio import DecodedAudio, load_audio
from utils.constants import SLICE_S, WINDOW_S
from utils.spectrogram import display_spectrogram
from utils.text import safe_display_name
from utils.windows import plan_windows

Progress = Callable[[float, str], None]


def _content_sha256(source: bytes | str | PathLike) -> str:
    """sha256 of the input bytes (the same value `load_audio` reports), computed without decoding."""
    if isinstance(source, bytes | bytearray | memoryview):
        return hashlib.sha256(source).hexdigest()
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO or /dev/zero would block or never end
            return ""  # load_audio refuses it with one sentence
        return sha256_file(Path(source))
    except OSError:
        return ""  # unreadable: let load_audio raise its AudioError


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device asked for, or a `ValueError` that says why it cannot be used (never torch's traceback)."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"Unknown device {str(device)!r}: use cpu, cuda or cuda:N.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {str(device)!r} was asked for, but this machine has no usable CUDA GPU; "
                         "leave --device out to use the CPU.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"Device {str(device)!r} does not exist: this machine has "
                         f"{torch.cuda.device_count()} CUDA GPU(s).")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Device {str(device)!r} was asked for, but this machine has no Apple GPU.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Device {str(device)!r} is not supported: use cpu, cuda or cuda:N.")
    return dev


class Engine:
    """A loaded model bundle + embedder, ready to analyse audio."""

    def __init__(
        self,
        checkpoint: str | PathLike | None = None,
        device: str | torch.device | None = None,
        root: Path | None = None,
        embedder: Embedder | None = None,
        cache_size: int = 64,
        max_duration_s: float = 600.0,
        slice_batch: int = 32,
        normalise_loudness: bool = True,
        precision: str | None = None,
        trust: TrustSettings | None = None,
    ) -> None:
        """`trust` replaces the bundle's trust files: `app trust` measures its new settings before writing them."""
        self.device = resolve_device(device)
        self.bundle_dir = resolve_bundle(checkpoint, root)
        self.model, self.card = load_bundle(self.bundle_dir, self.device)
        name, options = self.card.embedder["name"], dict(self.card.embedder.get("options", {}))
        if precision and name == "musicnn-msd":  # explicit: overrides GENRE_LENS_PRECISION (issue #18)
            options["precision"] = precision
        elif precision not in (None, "fp32"):
            raise ValueError(f"precision {precision} exists for musicnn-msd only, not {name}.")
        self.embedder = embedder or build_embedder(name, device=self.device, **options)
        if base_id(self.embedder.id) != base_id(self.card.embedder.get("id") or ""):  # int8 serves fp32 bundles
            raise ValueError(
                f"The model was trained on {self.card.embedder.get('id')} embeddings, "
                f"but the embedder is {self.embedder.id}."
            )
        head_dim = getattr(getattr(self.model, "config", None), "input_dim", None)
        if head_dim is not None and int(head_dim) != self.embedder.dim:  # else every file fails with a traceback
            raise CheckpointError(f"The model card of {self.bundle_dir} names the {self.embedder.id} embedder "
                                  f"({self.embedder.dim}-d), but its classifier takes {head_dim}-d embeddings; "
                                  "the card does not describe these weights.")
        self.trust = trust or load_trust(self.bundle_dir)  # decision threshold and not-music detector, chosen on valid
        detector = self.trust.detector
        if detector is not None and detector.dim != self.embedder.dim:
            raise ValueError(f"The not-music detector of {self.bundle_dir.name} expects {detector.dim}-d "
                             f"embeddings, but the embedder gives {self.embedder.dim}-d.")
        self.max_duration_s = max_duration_s
        self.normalise_loudness = normalise_loudness  # off only to measure what it does (bench)
        self.slice_batch = slice_batch
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str, str], Analysis] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size
        display_spectrogram(np.zeros(self.embedder.sample_rate, np.float32), self.embedder.sample_rate)  # warm-up

    @property
    def inference_lock(self) -> threading.Lock:
        """Held while the embedder and classifier run; other model users (saliency) take it too."""
        return self._lock

    @property
    def model_id(self) -> str:
        """Version plus weights hash: changes whenever the predictions could."""
        return f"{self.card.version}@{self.card.weights_sha256[:12]}"

    def analyze(
        self,
        source: bytes | str | PathLike,
        filename: str | None = None,
        progress: Progress | None = None,
    ) -> Analysis:
        """Analyse one file (path or uploaded bytes); raises `AudioError` for unusable audio."""
        report = progress or (lambda fraction, message: None)
        # The display name belongs to the caller (one user's upload name must never reach another
        # user who sends the same bytes), so it is applied to every result, cached or not.
        in_memory = isinstance(source, bytes | bytearray | memoryview)
        name = safe_display_name(filename or (None if in_memory else Path(source).name))
        key = (_content_sha256(source), self.model_id, self.embedder.id)
        with self._cache_lock:
            cached = self._cache.get(key) if key[0] else None
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is not None:  # a re-run or page switch: no decoding at all (reported outside the shared lock)
            report(1.0, "Done (cached)")
            return replace(cached, name=name)
        with analysis_slot(lambda message: report(0.0, message)):  # bursts queue, first come first served
            t0 = time.perf_counter()
            report(0.0, "Decoding audio")
            decoded = load_audio(
                source,
                self.embedder.sample_rate,
                filename=filename,
                max_duration_s=self.max_duration_s,
                pad_to_s=WINDOW_S,
            )
            t_decode = time.perf_counter() - t0
            analysis = self.analyze_decoded(decoded, name, report, t_decode)
        key = (decoded.sha256, *key[1:])  # the bytes actually decoded, even if the pre-hash could not read them
        with self._cache_lock:
            self._cache[key] = replace(analysis, name="")  # model outputs only: no session's name
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return analysis

    def analyze_decoded(
        self, decoded: DecodedAudio, name: str, report: Progress, t_decode: float = 0.0
    ) -> Analysis:
        """Run windows -> embedder -> classifier on already-decoded audio."""
        timings = {"decode_resample": t_decode}
        samples = decoded.samples
        duration = len(samples) / decoded.sample_rate
        plan = plan_windows(duration)
        t = time.perf_counter()
        with self._lock:
            embeddings, gain_db = embed_slices(self.embedder, samples, decoded.sample_rate, plan,
                                               normalise_loudness=self.normalise_loudness, batch=self.slice_batch,
                                               report=lambda done, msg: report(0.05 + 0.8 * done, msg))  # (S, F, D)
            timings["embed"] = time.perf_counter() - t

            t = time.perf_counter()
            report(0.86, "Classifying windows")
            windows = embeddings[plan.window_slices]  # (W, 3, F, D)
            preds = predict_windows(self.model, windows)
            timings["classify"] = time.perf_counter() - t

        t = time.perf_counter()
        report(0.93, "Drawing the spectrogram")
        spec = display_spectrogram(samples, decoded.sample_rate)
        timings["spectrogram"] = time.perf_counter() - t

        window_results = [
            WindowResult(
                index=i,
                start_s=float(start),
                end_s=float(start + WINDOW_S),
                probabilities=preds.probabilities[i],
                attention=preds.attention[i],
                slice_starts_s=plan.slice_starts[plan.window_slices[i]],
                slice_probabilities=preds.slice_probabilities[i],
            )
            for i, start in enumerate(plan.window_starts)
        ]
        detector = self.trust.detector
        novelty = detector.score(track_mean(embeddings)) if detector is not None else None
        timings["total"] = sum(timings.values())
        report(1.0, "Done")
        return Analysis(
            name=name,
            sha256=decoded.sha256,
            labels=list(self.card.labels),
            probabilities=combine_windows(preds.probabilities),
            threshold=self.trust.threshold,
            windows=window_results,
            slice_starts_s=plan.slice_starts,
            spectrogram=spec,
            duration_s=duration,
            source={
                "format": decoded.source_format,
                "sample_rate": decoded.source_sample_rate,
                "channels": decoded.source_channels,
                "duration_s": round(decoded.source_duration_s, 3),
                "analysed_s": round(decoded.duration_s, 3),
                "truncated": decoded.truncated,
                "padded": decoded.padded,
                "slice_s": SLICE_S,
                "loudness_gain_db": round(gain_db, 2),
            },
            quality={k: float(v) for k, v in asdict(decoded.quality).items()},
            warnings=list(decoded.warnings),
            timings_s=timings,
            model={
                "id": self.model_id,
                "version": self.card.version,
                "embedder": self.embedder.id,
                "device": str(self.device),
            },
            slice_embeddings=embeddings,
            novelty=novelty,
            novelty_threshold=detector.threshold if detector is not None else None,
        )
