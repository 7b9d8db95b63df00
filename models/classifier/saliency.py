"""Why did the model decide? Gradient × input saliency on the log-mel the network actually sees.

Method: the gradient of one genre's probability with respect to every log-mel bin of every slice,
times the bin's value. The gradient flows through the whole decision: log-mel → MusiCNN patches →
taggram → the slice frames of every 15 s window → the attention classifier → sigmoid → the track
probability (`combine_windows`, reproduced here in torch with its confidence weights). The log-mel
is log10(1 + 10000 · mel), so a zero bin is digital silence: gradient × input is a first-order
estimate of what each bin adds to the probability over silence, and silent bins get exactly zero.
Positive = evidence for the genre, negative = evidence against it.

Why not occlusion: it is model-agnostic but needs one forward per masked patch; a useful 0.5 s ×
12-band grid over a 30 s track is ~720 slice forwards (an estimated ~60 s on 2 cores), against one
forward + one backward here (see bench/bench_saliency.py and docs/explain.md for timings).
Integrated gradients from silence would add completeness (attributions summing to p(x) - p(silence))
at steps × the cost (on a jazz clip, 16 steps summed to within 4 % of it, for 16x the time).

Memory: the backward keeps MusiCNN's activations (~40 MB per 3 s patch on CPU). Tracks whose
patches exceed `max_patches` are done in two passes: the classifier's gradient with respect to the
embeddings first, then chunks of slices back-propagate that vector (a vector-Jacobian product):
same numbers, bounded memory, one extra forward.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from models.classifier.ensemble import Classifier
from models.embedders.musicnn.frontend import HOP, N_MELS, PATCH_FRAMES, PATCH_HOP_FRAMES, SR, n_patches
from models.embedders.musicnn.network import MusiCNN

METHOD = "gradient × input"
MAX_PATCHES_CPU = 32  # ~1.3 GB of activations kept for the backward
MAX_PATCHES_CUDA = 512


class SaliencyError(ValueError):
    """Saliency cannot be computed for this model or input."""


def combine_windows_torch(window_probabilities: torch.Tensor) -> torch.Tensor:
    """Differentiable twin of `models.classifier.predict.combine_windows`: confidence-weighted mean of windows."""
    weights = window_probabilities.amax(dim=1)
    weights = weights / weights.sum().clamp_min(1e-12)
    return (weights[:, None] * window_probabilities).sum(dim=0)


def target_probability(
    classifier: Classifier,
    embeddings: torch.Tensor,
    window_slices: np.ndarray,
    genre: int,
    window: int | None = None,
) -> torch.Tensor:
    """The probability being explained: the track's (or one window's) for `genre`, from (S, F, D) slices."""
    index = torch.as_tensor(window_slices, dtype=torch.long, device=embeddings.device)
    probabilities = torch.sigmoid(classifier(embeddings[index]).logits.float())  # (W, C)
    if window is not None:
        return probabilities[window, genre]
    return combine_windows_torch(probabilities)[genre]


def embed_logmels(net: MusiCNN, mel: torch.Tensor, output: str) -> torch.Tensor:
    """(S, T, 96) log-mels -> (S, P, D) frame embeddings, differentiable, float32."""
    out = net.sliding_features(mel, PATCH_FRAMES, PATCH_HOP_FRAMES)[output]
    return out.float().reshape(mel.shape[0], -1, out.shape[-1])


def _gradient(
    net: MusiCNN,
    classifier: Classifier,
    mel: torch.Tensor,
    window_slices: np.ndarray,
    genre: int,
    window: int | None,
    output: str,
    per_chunk: int,
) -> tuple[torch.Tensor, float]:
    """d p / d mel for (S, T, 96) log-mels, in one pass when they fit, else by chunked VJPs."""
    if mel.shape[0] <= per_chunk:
        x = mel.detach().requires_grad_(True)
        p = target_probability(classifier, embed_logmels(net, x, output), window_slices, genre, window)
        (grad,) = torch.autograd.grad(p, x)
        return grad, float(p.detach())
    with torch.no_grad():
        emb = torch.cat([embed_logmels(net, mel[a : a + per_chunk], output) for a in range(0, len(mel), per_chunk)])
    emb.requires_grad_(True)
    p = target_probability(classifier, emb, window_slices, genre, window)
    (grad_emb,) = torch.autograd.grad(p, emb)
    grads = []
    for a in range(0, len(mel), per_chunk):
        x = mel[a : a + per_chunk].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(embed_logmels(net, x, output), x, grad_outputs=grad_emb[a : a + per_chunk])
        grads.append(g)
    return torch.cat(grads), float(p.detach())


def logmel_saliency(
    net: MusiCNN,
    classifier: Classifier,
    mel: torch.Tensor,
    window_slices: np.ndarray,
    genre: int,
    window: int | None = None,
    output: str = "taggram",
    max_patches: int | None = None,
) -> tuple[np.ndarray, float]:
    """Gradient × input (S, T, 96) on each slice's log-mel for one genre, and the probability explained.

    `window_slices` (W, 3) indexes the slices of every window, as in `utils.windows.WindowPlan`;
    `window` explains one window's probability instead of the whole track's.
    """
    if mel.ndim != 3 or mel.shape[-1] != N_MELS:
        raise SaliencyError(f"expected (slices, frames, {N_MELS}) log-mels, got {tuple(mel.shape)}")
    if n_patches(mel.shape[1]) == 0:
        raise SaliencyError(f"slices of {mel.shape[1]} frames are shorter than one {PATCH_FRAMES}-frame patch")
    if not 0 <= genre < classifier.config.n_classes:
        raise SaliencyError(f"genre index {genre} is out of range")
    if window is not None and not 0 <= window < len(window_slices):
        raise SaliencyError(f"window {window} is out of range (0..{len(window_slices) - 1})")
    if max_patches is None:
        max_patches = MAX_PATCHES_CUDA if mel.device.type == "cuda" else MAX_PATCHES_CPU
    per_chunk = max(1, max_patches // n_patches(mel.shape[1]))
    mel = mel.detach().float()
    grad, probability = _gradient(net, classifier, mel, window_slices, genre, window, output,
                                  per_chunk)
    return (grad * mel).cpu().numpy(), probability


def _column_edges(times_s: np.ndarray) -> np.ndarray:
    """Edges of display columns given their centre times (midpoints; the ends extrapolated)."""
    t = np.asarray(times_s, dtype=np.float64)
    if len(t) == 1:
        return np.array([t[0] - 0.5, t[0] + 0.5])
    mid = (t[1:] + t[:-1]) / 2
    return np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])


def _mel_rows_matrix(freqs_hz: np.ndarray, fmax: float = SR / 2) -> np.ndarray:
    """(rows, 96) linear interpolation, on the mel scale, from the network's mel rows to display rows."""
    src = librosa.hz_to_mel(librosa.mel_frequencies(n_mels=N_MELS, fmin=0.0, fmax=fmax))
    dst = librosa.hz_to_mel(np.asarray(freqs_hz, dtype=np.float64))
    matrix = np.zeros((len(dst), N_MELS))
    for r, m in enumerate(dst):
        if m > src[-1] + 1e-6:  # above what the network hears: no attribution
            continue
        j = int(np.clip(np.searchsorted(src, m) - 1, 0, N_MELS - 2))
        w = float(np.clip((m - src[j]) / (src[j + 1] - src[j]), 0.0, 1.0))
        matrix[r, j], matrix[r, j + 1] = 1.0 - w, w
    return matrix


def to_display_grid(
    attribution: np.ndarray,
    slice_starts_s: np.ndarray,
    times_s: np.ndarray,
    freqs_hz: np.ndarray,
    sample_rate: int = SR,
    hop: int = HOP,
) -> np.ndarray:
    """Resample slice attributions (S, T, 96) onto a display spectrogram's (rows, columns) grid.

    Each log-mel frame is placed at its track time (slice start + frame × hop), summed into the
    display column it falls in (overlapping slices add up: the same audio, attributed twice), and
    divided by the frames per column, so the unit stays "attribution per network frame".
    Frequencies are interpolated on the mel scale; rows above the network's band get zero.
    """
    s, t, _ = attribution.shape
    edges = _column_edges(times_s)
    frame_times = np.asarray(slice_starts_s, dtype=np.float64)[:, None] + np.arange(t)[None, :] * hop / sample_rate
    column = np.searchsorted(edges, frame_times.ravel(), side="right") - 1
    inside = (column >= 0) & (column < len(times_s))
    by_time = np.zeros((len(times_s), N_MELS))
    np.add.at(by_time, column[inside], attribution.reshape(s * t, N_MELS)[inside])
    by_time /= np.maximum(np.diff(edges) * sample_rate / hop, 1.0)[:, None]
    return (_mel_rows_matrix(freqs_hz, sample_rate / 2) @ by_time.T).astype(np.float32)
