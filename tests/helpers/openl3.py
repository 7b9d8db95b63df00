"""Random OpenL3 weights written as a Keras .h5 file, as the official ones are."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from models.embedders.openl3 import weights as ow

_FILLER = ["input_1", "activation", "max_pooling2d"]  # layers without weights the .h5 lists too


def random_layers(seed: int = 0) -> list[list[np.ndarray]]:
    """Arrays for every weighted layer in Keras shapes; coarse values so gzip stays fast."""
    rng = np.random.default_rng(seed)
    layers = []
    for kind, shapes in ow.expected_layers():
        arrays = [(rng.integers(-8, 9, size=s) / 16).astype(np.float32) for s in shapes]
        if kind == "bn":
            arrays[3] = np.abs(arrays[3]) + 0.5  # moving variance > 0
        layers.append(arrays)
    return layers

def write_keras_h5(
    path: Path,
    layers: list[list[np.ndarray]],
    *,
    one_based: bool = False,
    as_bytes: bool = False,
    full_model: bool = False,
    extra: tuple[str, list[np.ndarray]] | None = None,
) -> Path:
    """Write the Keras-2 legacy weights layout (what `model.save_weights` / old Keras produce)."""
    names: list[str] = []
    counters = {"batch_normalization": 0, "conv2d": 0}
    entries: list[tuple[str, list[str], list[np.ndarray]]] = [(_FILLER[0], [], [])]
    if extra is not None:
        entries.append((extra[0], [f"{extra[0]}/w{i}:0" for i in range(len(extra[1]))], extra[1]))
    for i, arrays in enumerate(layers):
        base = "batch_normalization" if len(arrays) == 4 else "conv2d"
        k = counters[base] + (1 if one_based else 0)
        counters[base] += 1
        name = base if (k == 0 and not one_based) else f"{base}_{k}"
        if i == len(layers) - 1:
            name = "audio_embedding_layer"
        keys = ["gamma", "beta", "moving_mean", "moving_variance"] if base != "conv2d" else ["kernel", "bias"]
        entries.append((name, [f"{name}/{key}:0" for key in keys], arrays))
        if base == "conv2d":
            entries.append((f"activation_{i}", [], []))
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        for name, weight_names, arrays in entries:
            group = root.create_group(name)
            group.attrs["weight_names"] = [w.encode() if as_bytes else w for w in weight_names]
            for w, a in zip(weight_names, arrays, strict=True):
                group.create_dataset(w, data=a)
            names.append(name)
        root.attrs["layer_names"] = [n.encode() if as_bytes else n for n in names]
        root.attrs["backend"] = "tensorflow"
    return path
