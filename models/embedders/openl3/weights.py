"""OpenL3 weights: import openl3's Keras `.h5` files, and find, download and cache them.

The official files come from openl3's `models` branch (what `pip install openl3` fetches at install
time). We read them with h5py by layer *order* and check every shape, so files written by another
Keras version (other layer names) still load and a wrong file fails with a message saying why.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from models.classifier.bundle import sha256_file as file_sha256
from models.embedders.base import EmbedderError, cache_root
from models.embedders.openl3.frontend import OpenL3Error
from utils import settings
from utils.atomic import atomic_path

# openl3 0.4.x setup.py: base_url + 'openl3_audio_<repr>_<content>-v0_4_0.h5.gz', gunzipped on install.
DEFAULT_BASE_URL = "https://github.com/marl/openl3/raw/models/"
MODEL_VERSION = "v0_4_0"
FORMAT = "genre-lens-openl3/1"  # tag inside converted state-dict files
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_GZIP_MAGIC = b"\x1f\x8b"

# The audio network's weighted layers in Keras order: BN on the input, then (Conv, BN) x 7, then the
# last conv `audio_embedding_layer`. Same shapes for mel128, mel256 and linear (only the input differs).
CONV_CHANNELS = [(1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]


class OpenL3WeightsError(OpenL3Error, EmbedderError):
    """Weights missing, unreadable or of the wrong layout; also an `EmbedderError` for the engine."""


@dataclass(frozen=True)
class LoadedWeights:
    """A converted state dict plus where it came from (the sha256 keys embedder ids and caches)."""

    state_dict: dict[str, torch.Tensor]
    sha256: str  # of the source .h5 file
    source: str  # path or URL the weights came from


def expected_layers() -> list[tuple[str, list[tuple[int, ...]]]]:
    """(kind, Keras shapes) of each weighted layer, in file order."""
    layers: list[tuple[str, list[tuple[int, ...]]]] = [("bn", [(1,)] * 4)]
    for i, (cin, cout) in enumerate(CONV_CHANNELS):
        layers.append(("conv", [(3, 3, cin, cout), (cout,)]))
        if i < len(CONV_CHANNELS) - 1:
            layers.append(("bn", [(cout,)] * 4))
    return layers


def weights_filename(input_repr: str, content_type: str) -> str:
    """openl3's name for a weights file, e.g. `openl3_audio_mel256_music.h5`."""
    return f"openl3_audio_{input_repr}_{content_type}.h5"


def download_url(input_repr: str, content_type: str, base_url: str | None = None) -> str:
    """Where openl3's installer downloads the gzipped file from (overridable for mirrors and tests)."""
    base = base_url or settings.load().openl3_url or DEFAULT_BASE_URL
    stem = weights_filename(input_repr, content_type)[: -len(".h5")]
    return f"{base.rstrip('/')}/{stem}-{MODEL_VERSION}.h5.gz"


def cache_dir() -> Path:
    """`$GENRE_LENS_CACHE/openl3`, else `~/.cache/genre-lens/openl3`."""
    return cache_root() / "openl3"


def _text(value: object) -> str:
    """h5 attributes are `str` from recent Keras and `bytes` from older ones."""
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_keras_h5(path: str | Path) -> list[tuple[str, list[np.ndarray]]]:
    """Weighted layers of a Keras-2 weights (or full-model) h5 file, in `layer_names` order.

    Arrays come in each layer's `weight_names` order (gamma, beta, mean, var / kernel, bias), which is
    not h5's alphabetical order. Layers named like openl3's removed kapre `spectrogram` are skipped.
    """
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise OpenL3WeightsError(f"{path}: not a readable HDF5 weights file ({exc}).") from exc
    with handle as f:
        root: h5py.Group = f
        if "layer_names" not in root.attrs and "model_weights" in root:
            root = root["model_weights"]  # a full-model save, as Keras does
        if "layer_names" not in root.attrs:
            raise OpenL3WeightsError(f"{path}: no 'layer_names' attribute; not a Keras h5 weights file.")
        layers = []
        for raw_name in root.attrs["layer_names"]:
            name = _text(raw_name)
            group = root[name]
            weight_names = [_text(w) for w in group.attrs.get("weight_names", [])]
            if not weight_names or "spectrogram" in name:
                continue
            layers.append((name, [np.asarray(group[w], dtype=np.float32) for w in weight_names]))
    return layers


def keras_to_state_dict(
    layers: list[tuple[str, list[np.ndarray]]], source: str = "weights file"
) -> dict[str, torch.Tensor]:
    """Map weighted layers onto `OpenL3Net` by order, checking every shape on the way."""
    expected = expected_layers()
    if len(layers) != len(expected):
        raise OpenL3WeightsError(
            f"{source}: {len(layers)} weighted layers, but an OpenL3 audio network has {len(expected)} "
            "(BN + 8 conv + 7 BN). Use an openl3 audio weights file such as openl3_audio_mel256_music.h5."
        )
    state: dict[str, torch.Tensor] = {}
    n_conv = n_bn = 0
    for i, ((name, arrays), (kind, shapes)) in enumerate(zip(layers, expected, strict=True)):
        got = [tuple(a.shape) for a in arrays]
        if got != shapes:
            raise OpenL3WeightsError(
                f"{source}: weighted layer {i + 1} ({name!r}) has shapes {got}, expected {shapes} "
                f"({'BatchNormalization' if kind == 'bn' else 'Conv2D'}). This is not an OpenL3 audio "
                "weights file (an image-network or other model file?)."
            )
        t = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        if kind == "conv":
            state[f"convs.{n_conv}.weight"] = t[0].permute(3, 2, 0, 1).contiguous()  # HWIO → OIHW
            state[f"convs.{n_conv}.bias"] = t[1]
            n_conv += 1
        else:
            prefix = "bn0" if n_bn == 0 else f"bns.{n_bn - 1}"
            for key, value in zip(("weight", "bias", "running_mean", "running_var"), t, strict=True):
                state[f"{prefix}.{key}"] = value
            state[f"{prefix}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
            n_bn += 1
    return state


def convert_h5(path: str | Path) -> LoadedWeights:
    """Read and check an openl3 `.h5` file into a PyTorch state dict."""
    state = keras_to_state_dict(read_keras_h5(path), source=str(path))
    return LoadedWeights(state, file_sha256(path), str(path))


def save_converted(weights: LoadedWeights, dest: Path) -> None:
    """Write a converted state dict that `torch.load(weights_only=True)` can read back."""
    payload = {"format": FORMAT, "sha256": weights.sha256, "source": weights.source, "state_dict": weights.state_dict}
    with atomic_path(dest) as tmp:
        torch.save(payload, tmp)


def load_converted(path: str | Path) -> LoadedWeights:
    """Load a state dict written by `save_converted` (or a bare state dict, hashed by its file)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign pickles
        raise OpenL3WeightsError(f"{path}: not a readable converted OpenL3 state dict ({exc}).") from exc
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return LoadedWeights(payload["state_dict"], payload["sha256"], str(path))
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return LoadedWeights(payload, file_sha256(path), str(path))
    raise OpenL3WeightsError(f"{path}: not an OpenL3 state dict.")


def load_weights_file(path: str | Path) -> LoadedWeights:
    """An explicit weights file: openl3's `.h5`, or a converted `.pt`/`.pth`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise OpenL3WeightsError(f"OpenL3 weights file {path} does not exist.")
    if path.suffix in (".pt", ".pth"):
        return load_converted(path)
    return convert_h5(path)


def missing_message(input_repr: str, content_type: str, url: str, reason: str = "") -> str:
    """Tell the user which file is needed and where to put it."""
    name = weights_filename(input_repr, content_type)
    return (
        f"OpenL3 weights {name} not found{' (' + reason + ')' if reason else ''}. "
        f"Download {url}, gunzip it to {name} and put it in {cache_dir()}/, "
        f"or point {settings.OPENL3_WEIGHTS_ENV} or --openl3-weights at the file (see docs/openl3.md)."
    )


def download(url: str, dest: Path, progress: bool = True, timeout: float = 60.0) -> None:
    """Fetch `url` (gzipped or plain .h5) into `dest` atomically, with a tqdm bar."""
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
        with open(tmp, "rb") as f:
            magic = f.read(8)
        if magic.startswith(_GZIP_MAGIC):
            with atomic_path(tmp) as plain, gzip.open(tmp, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        elif not magic.startswith(_HDF5_MAGIC):
            raise OpenL3WeightsError(f"{url} did not return a gzip or HDF5 file (got {magic!r}...).")
        convert_h5(tmp)  # check the layout before the file lands in the cache


def resolve_weights(
    input_repr: str,
    content_type: str,
    weights: str | Path | None = None,
    *,
    base_url: str | None = None,
    allow_download: bool = True,
    progress: bool = True,
) -> LoadedWeights:
    """Find weights: explicit path / env var, then the cache (.pt, then .h5), then download.

    Downloads and user-placed `.h5` files are converted once into `<name>.pt` beside them.
    """
    explicit = weights or settings.load().openl3_weights
    if explicit:
        return load_weights_file(explicit)
    folder = cache_dir()
    h5_path = folder / weights_filename(input_repr, content_type)
    pt_path = h5_path.with_suffix(".pt")
    if pt_path.is_file():
        with contextlib.suppress(OpenL3WeightsError):  # a corrupt cache entry is rebuilt below
            return load_converted(pt_path)
    url = download_url(input_repr, content_type, base_url)
    if not h5_path.is_file():
        if not allow_download:
            raise OpenL3WeightsError(missing_message(input_repr, content_type, url, "downloads disabled"))
        try:
            download(url, h5_path, progress=progress)
        except (urllib.error.URLError, TimeoutError, OSError, OpenL3WeightsError) as exc:
            reason = f"download failed: {getattr(exc, 'reason', exc)}"
            raise OpenL3WeightsError(missing_message(input_repr, content_type, url, reason)) from exc
    converted = convert_h5(h5_path)
    with contextlib.suppress(OSError):  # a read-only cache still works, just converts every time
        save_converted(converted, pt_path)
    return converted
