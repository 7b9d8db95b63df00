"""MusiCNN weights: find the musicnn wheel's MSD checkpoint and map its TensorFlow variables onto the port.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch

from models.embedders.base import EmbedderError
from models.embedders.musicnn.network import MusiCNN
from models.embedders.musicnn.tf_checkpoint import read_checkpoint

_CONVS = {  # torch prefix -> (checkpoint conv, checkpoint batch norm); see golden weight_mapping.txt
    "timbral.0": ("conv2d", "batch_normalization_1"),
    "timbral.1": ("conv2d_1", "batch_normalization_2"),
    "temporal.0": ("conv2d_2", "batch_normalization_3"),
    "temporal.1": ("conv2d_3", "batch_normalization_4"),
    "temporal.2": ("conv2d_4", "batch_normalization_5"),
    "midend.0": ("conv2d_5", "batch_normalization_6"),
    "midend.1": ("conv2d_6", "batch_normalization_7"),
    "midend.2": ("conv2d_7", "batch_normalization_8"),
}


_BNS = {
    "bn_input": "batch_normalization",
    "bn_pool": "batch_normalization_9",
    "bn_dense": "batch_normalization_10",
    **{f"bn_{prefix}": bn for prefix, (_, bn) in _CONVS.items()},
}


_DENSES = {"dense": "dense", "out": "dense_1"}


def convert_checkpoint(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map the wheel's TF variables onto `MusiCNN`'s state_dict (layouts transposed, copies made)."""
    state: dict[str, torch.Tensor] = {}

    def get(name: str) -> torch.Tensor:
        if name not in tensors:
            raise EmbedderError(f"MusiCNN checkpoint lacks variable {name!r}; is it the MSD_musicnn one?")
        return torch.from_numpy(np.array(tensors[name], dtype=np.float32))

    for prefix, (conv, _) in _CONVS.items():
        kernel = get(f"{conv}/kernel")  # (kh, kw, in, out)
        if prefix.startswith("midend"):  # (7, C, 1, 64): the 'width' spans all channels -> conv1d
            state[f"{prefix}.weight"] = kernel[:, :, 0, :].permute(2, 1, 0).contiguous()
        else:
            state[f"{prefix}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
        state[f"{prefix}.bias"] = get(f"{conv}/bias")
    for prefix, bn in _BNS.items():
        state[f"{prefix}.weight"] = get(f"{bn}/gamma")
        state[f"{prefix}.bias"] = get(f"{bn}/beta")
        state[f"{prefix}.running_mean"] = get(f"{bn}/moving_mean")
        state[f"{prefix}.running_var"] = get(f"{bn}/moving_variance")
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    for prefix, dense in _DENSES.items():
        state[f"{prefix}.weight"] = get(f"{dense}/kernel").T.contiguous()  # (in, out) -> (out, in)
        state[f"{prefix}.bias"] = get(f"{dense}/bias")
    return state


def checkpoint_prefix() -> Path:
    """Path prefix of the MSD_musicnn checkpoint inside the installed `musicnn` wheel (never imported)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            "The MSD-MusiCNN weights come from the musicnn wheel, which is not installed. "
            "Run: pip install --no-deps musicnn==0.1.0 (its TensorFlow is not needed)."
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "MSD_musicnn"
    if not (directory / ".index").is_file() or not (directory / ".data-00000-of-00001").is_file():
        raise EmbedderError(
            f"{directory} lacks the checkpoint files .index/.data-00000-of-00001; reinstall with "
            "pip install --force-reinstall --no-deps musicnn==0.1.0"
        )
    return directory


@functools.lru_cache(maxsize=1)
def _msd_state_dict() -> dict[str, torch.Tensor]:
    """Converted weights, read once per process.

    No disk cache on purpose: reading + converting the wheel's checkpoint takes ~3 ms, less than
    hashing it (~6 ms) and `torch.load`-ing a cached copy (~4 ms) would.
    """
    try:
        tensors = read_checkpoint(str(checkpoint_prefix()) + "/")
    except ValueError as exc:
        raise EmbedderError(f"Cannot read the MSD-MusiCNN checkpoint: {exc}") from exc
    return convert_checkpoint(tensors)


def load_msd_musicnn(device: str | torch.device = "cpu") -> MusiCNN:
    """The MSD-trained MusiCNN with the wheel's weights, in eval mode, on `device`."""
    model = MusiCNN()
    model.load_state_dict(_msd_state_dict())
    return model.eval().to(device)
