"""The window classifier for pooled features: one vector per 5 s slice, attention over the three slices.

Pooled MusiCNN features already summarise a few seconds each (mean and max over a 3 s patch), so the
classifier needs no convolution over time: a slice is the mean of its frame vectors (the engine's
three patches, or a table's one 6 s block), standardised with the training statistics, optionally
through one hidden layer, and weighed by attention into the window vector. One linear head gives the
window logits and, applied to each slice vector, the per-slice logits. It has `ParallelCNN`'s inputs,
outputs and buffers, so training, ensembles, bundles, the engine and saliency treat both alike.

With `hidden=0` it is a linear model on the attention-weighted slice mean, which for uniform
attention is logistic regression on the window's mean vector: the simplest head that generalises.
"""

from __future__ import annotations

import torch
from torch import nn

from models.classifier.parallel_cnn import ClassifierConfig, ClassifierOutput, attend
from utils.constants import DEAD_SCALE, DEAD_STD, SLICES_PER_WINDOW


class PooledHead(nn.Module):
    """(B, 3, F, D) windows of pooled frame vectors -> window logits, attention, slice logits."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        d = config.input_dim
        self.register_buffer("input_mean", torch.zeros(d))
        self.register_buffer("input_std", torch.ones(d))
        self.register_buffer("temperature", torch.ones(()))
        self.input_dropout = nn.Dropout(config.dropout)
        self.hidden = nn.Linear(d, config.hidden) if config.hidden > 0 else None
        width = config.hidden if config.hidden > 0 else d
        self.attn_hidden = nn.Linear(width, 16)
        self.attn_score = nn.Linear(16, 1)
        nn.init.zeros_(self.attn_score.weight)  # attention starts uniform: the slice mean
        nn.init.zeros_(self.attn_score.bias)
        self.dropout = nn.Dropout(config.dropout if config.hidden > 0 else 0.0)
        self.head = nn.Linear(width, config.n_classes)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Fixed input transform before standardisation ("sqrt": the features are non-negative)."""
        if self.config.input_transform == "sqrt":
            return torch.sqrt(x.clamp_min(0.0))
        return x

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training set's per-dimension statistics; inputs are standardised with them.

        Columns that never vary in training (470 of MusiCNN's 753 pooled values are constant on GTZAN:
        front-end channels that never fire) carry no information, and dividing their float noise by a
        near-zero spread would blow up on any other audio; they are standardised to zero instead.
        """
        self.input_mean.copy_(mean)
        self.input_std.copy_(torch.where(std < DEAD_STD, torch.full_like(std, DEAD_SCALE), std))

    def slice_vectors(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, F, D) windows -> (B, 3, width) slice vectors: masked frame mean, standardised, encoded."""
        if x.dim() != 4 or x.shape[1] != SLICES_PER_WINDOW or x.shape[-1] != self.config.input_dim:
            raise ValueError(f"expected (batch, {SLICES_PER_WINDOW}, frames, {self.config.input_dim}) windows, "
                             f"got {tuple(x.shape)}")
        if mask is None:
            mean = self.transform(x).mean(2)
        else:
            m = mask.to(x.dtype).unsqueeze(-1)
            mean = (self.transform(x) * m).sum(2) / m.sum(2).clamp_min(1.0)
        v = self.input_dropout((mean - self.input_mean) / self.input_std)
        if self.hidden is not None:
            v = torch.relu(self.hidden(v))
        return v

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> ClassifierOutput:
        """Classify windows; logits are divided by the calibration temperature."""
        return attend(self, self.slice_vectors(x, mask))
