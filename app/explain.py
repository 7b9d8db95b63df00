"""Engine glue for saliency: an analysed (or decoded) track in, a map over its display spectrogram out.

No Streamlit here. The maths lives in `models.classifier.saliency`; this module re-creates exactly what the
engine fed the network (same decoding, windows and slices), runs the saliency under the engine's
inference lock, and resamples the result onto the display spectrogram the Analyze page draws.
An `Analysis` does not keep its samples, so explaining one needs the upload's bytes (the session
keeps them: `app.ui.state.track_audio`); they are re-decoded and checked against the analysis' sha256.
"""

from __future__ import annotations

import itertools
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.analysis import Analysis
from app.engine import Engine
from models.classifier.bundle import METRICS_FILE, ModelCard, read_json
from models.classifier.predict import combine_windows, predict_windows
from models.classifier.saliency import METHOD, SaliencyError, embed_logmels, logmel_saliency, to_display_grid
from models.embedders.musicnn.embedder import MusiCNNEmbedder
from models.training.retrain import test_table_of
from utils import settings
from utils.analysis_gate import analysis_slot
from utils.audio import DecodedAudio, load_audio
from utils.constants import WINDOW_S
from utils.loudness import model_input
from utils.spectrogram import DisplaySpectrogram, display_spectrogram
from utils.windows import cut_slices, plan_windows

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Saliency:
    """A saliency map aligned to a display spectrogram: `map[r, c]` explains `spectrogram.db[r, c]`."""

    map: np.ndarray  # float32 (mels, frames), signed: > 0 pushed the genre's probability up
    spectrogram: DisplaySpectrogram
    genre: str
    probability: float  # the probability explained, recomputed (equals the engine's to float precision)
    window: int | None  # None: the whole track; else the explained window's index
    method: str
    seconds: float  # wall time of the computation

    @property
    def label(self) -> str:
        """One line for captions: what was explained, how, and how long it took."""
        scope = "the track" if self.window is None else f"window {self.window + 1}"
        return f"{self.method} for {self.genre} ({self.probability:.0%}) over {scope} · {self.seconds:.1f} s"


def _decoded(engine: Engine, source: Analysis | DecodedAudio, audio: bytes | None) -> DecodedAudio:
    """The samples the engine analysed: the DecodedAudio itself, or the analysis' upload re-decoded."""
    if isinstance(source, DecodedAudio):
        return source
    if audio is None:
        raise SaliencyError("This track's audio was not kept (it was too large), so it cannot be explained.")
    decoded = load_audio(audio, engine.embedder.sample_rate, filename=source.name,
                         max_duration_s=engine.max_duration_s, pad_to_s=WINDOW_S)
    if decoded.sha256 != source.sha256:
        raise SaliencyError("The audio given is not the audio that was analysed.")
    return decoded


def explain(
    engine: Engine,
    source: Analysis | DecodedAudio,
    genre: str | None = None,
    audio: bytes | None = None,
    window: int | None = None,
) -> Saliency:
    """Saliency of `genre` (default: the top genre) for an analysed or decoded track.

    `source`: an `Analysis` (then `audio` must be its upload's bytes) or `DecodedAudio` from
    `load_audio(..., engine.embedder.sample_rate, pad_to_s=15)`. `window` explains one 15 s window
    instead of the track. Raises `SaliencyError` (a user-facing sentence) when it cannot be done.
    """
    if not isinstance(engine.embedder, MusiCNNEmbedder):
        raise SaliencyError(f"Saliency maps are available for the MusiCNN embedder only (this model uses "
                            f"{engine.embedder.id}).")
    with analysis_slot():  # a re-decode plus gradients costs what an analysis does: same queue, same memory cap
        return _explain(engine, engine.embedder, source, genre, audio, window)


def _explain(engine: Engine, embedder: MusiCNNEmbedder, source: Analysis | DecodedAudio, genre: str | None,
             audio: bytes | None, window: int | None) -> Saliency:
    """`explain` inside an analysis slot."""
    t0 = time.perf_counter()
    decoded = _decoded(engine, source, audio)
    labels = list(engine.card.labels)
    if genre is None:
        genre = source.top_genre if isinstance(source, Analysis) else None
    try:
        plan = plan_windows(len(decoded.samples) / decoded.sample_rate)
    except ValueError as exc:  # DecodedAudio not padded to one window
        raise SaliencyError(f"Cannot explain this audio: {exc}.") from exc
    heard, _ = model_input(decoded.samples, decoded.sample_rate, engine.normalise_loudness)  # as the engine did
    slices = cut_slices(heard, decoded.sample_rate, plan.slice_starts)
    with engine.inference_lock:
        with torch.no_grad():
            mel = embedder.frontend(torch.from_numpy(slices).to(engine.device))
        if genre is None:  # decoded audio and no genre: explain what the model predicts
            genre = _top_genre(engine, embedder, mel, plan.window_slices, labels)
        if genre not in labels:
            raise SaliencyError(f"Unknown genre {genre!r}; the model knows {', '.join(labels)}.")
        attribution, probability = logmel_saliency(
            embedder.model, engine.model, mel, plan.window_slices, labels.index(genre), window,
            embedder.output)
    spec = source.spectrogram if isinstance(source, Analysis) else display_spectrogram(
        decoded.samples, decoded.sample_rate)
    grid = to_display_grid(attribution, plan.slice_starts, spec.times_s, spec.freqs_hz, embedder.sample_rate)
    return Saliency(grid, spec, genre, probability, window, METHOD, time.perf_counter() - t0)


def _top_genre(engine: Engine, embedder: MusiCNNEmbedder, mel: torch.Tensor, window_slices: np.ndarray,
               labels: list[str]) -> str:
    """The track's top genre, computed the engine's way (used only when a caller passes raw audio)."""
    with torch.no_grad():
        emb = embed_logmels(embedder.model, mel, embedder.output).cpu().numpy()
    probs = combine_windows(predict_windows(engine.model, emb[window_slices]).probabilities)
    return labels[int(np.argmax(probs))]


# ------------------------------------------------------------------------------- reference tracks


FEATURE_NAMES = {  # the middle part of a MusiCNN embedder id -> what its vectors are, for a page to say
    "taggram": "MusiCNN taggrams (50 tag activations)",
    "penultimate": "MusiCNN penultimate-layer features (200 values)",
    "pool": "pooled MusiCNN features (753 values: mean and max of the mid-end layer)",
}


def feature_name(embedder_id: str) -> str:
    """What a table's vectors are, in words, from its embedder id (`musicnn-msd/pool/v1`, `openl3-...`)."""
    if embedder_id.startswith("openl3"):
        return "OpenL3 embeddings"
    parts = embedder_id.split("/")
    if parts[0].startswith("musicnn") and len(parts) > 1 and parts[1] in FEATURE_NAMES:
        return FEATURE_NAMES[parts[1]]
    return f"{embedder_id} embeddings" if embedder_id else "embeddings"


def reference_table_path(card: ModelCard) -> Path:
    """The test table of a model: $GENRE_LENS_REFERENCE_TABLE, else the `--test` table of the card's
    training command (relative to the project root), else the test table beside the card's training
    tables (`models.training.retrain.test_table_of`). The file may not exist: callers say so."""
    override = settings.load().reference_table
    if override:
        return override
    recorded = str(card.training.get("command", ""))
    try:
        command = shlex.split(recorded)
    except ValueError:  # cards before commands were shell-quoted: free text (--notes "v3's ...") may not parse
        command = recorded.split()
    for flag, value in itertools.pairwise([*command, ""]):
        if flag == "--test" or flag.startswith("--test="):
            path = Path(value if flag == "--test" else flag.split("=", 1)[1])
            return path if path.is_absolute() else ROOT / path
    return test_table_of(card)


def reference_predictions(bundle: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """{track id: metrics row (true, predicted, probabilities, ...)} from a bundle's metrics.json,
    and the fingerprint of the table they were computed on (None when unknown); empty without metrics."""
    metrics = read_json(bundle, METRICS_FILE)
    if metrics is None:
        return {}, None
    rows = {str(r["track_id"]): r for r in metrics.get("tracks", []) if "track_id" in r}
    source = metrics.get("source") or {}
    return rows, source.get("fingerprint") or metrics.get("test_data")
