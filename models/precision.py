"""The one mixed-precision policy of every network here (embedders and classifier heads).

On CUDA, matrix work runs under float16 autocast: float16 rather than bfloat16 because its 3 more
mantissa bits keep the embedders' taggrams within 1e-3 of float32, and these networks' activations
(log-mel inputs, batch-normalised features) stay far inside float16's range. On the CPU autocast
would only add casts, so inference stays exact float32 there.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

GPU_DTYPE = torch.float16


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision on CUDA, nothing elsewhere."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=GPU_DTYPE)
    return contextlib.nullcontext()
