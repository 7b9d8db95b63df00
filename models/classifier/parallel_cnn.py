"""The genre classifier: parallel slice branches (1-D conv + SE + residual), attention over slices.

Input is a batch of 15 s windows, each three 5 s slices of frame embeddings (B, 3, F, D). Every
slice goes through its own branch; the three branches run as one grouped convolution, so they cost
one batched call. Attention pooling weighs the slice vectors into a window vector; one linear head
gives genre logits for the window and, applied to each slice vector, per-slice logits, which is
what lets the UI show which 5 s drove a decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from utils.constants import N_GENRES, SLICES_PER_WINDOW


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters that define the architecture; stored in every model card."""

    input_dim: int
    channels: int = 32  # 32/64/0.5: chosen by grouped CV on the training tracks (README, "The bundled model")
    n_blocks: int = 2
    kernel_size: int = 3
    se_reduction: int = 4
    hidden: int = 64
    dropout: float = 0.5
    share_branches: bool = False
    input_transform: str = "none"  # "logit" turns sigmoid taggram probabilities into log-odds
    n_classes: int = N_GENRES
    arch: str = "parallel_cnn"  # or "pooled" (models.classifier.pooled_head): one vector per slice, no convolution

    def to_dict(self) -> dict:
        """JSON-friendly form for the model card."""
        return asdict(self)


class ClassifierOutput(NamedTuple):
    """Window logits (B, C), attention over slices (B, 3), per-slice logits (B, 3, C)."""

    logits: torch.Tensor
    attention: torch.Tensor
    slice_logits: torch.Tensor


def _masked_mean_max(x: torch.Tensor, mask: torch.Tensor, groups: int) -> torch.Tensor:
    """Mean and max over time of (N, G*C, F) under a channel mask, laid out group by group."""
    m = mask.to(x.dtype)
    mean = (x * m).sum(-1) / m.sum(-1).clamp_min(1.0)
    mx = x.masked_fill(~mask, torch.finfo(x.dtype).min).amax(-1)
    mx = torch.where(mask.any(-1), mx, torch.zeros_like(mx))
    n = x.shape[0]
    both = torch.cat([mean.reshape(n, groups, -1), mx.reshape(n, groups, -1)], dim=2)
    return both.reshape(n, -1)


class SEResBlock(nn.Module):
    """Conv-BN-ReLU-Conv-BN with squeeze-and-excitation and a residual connection, per group."""

    def __init__(self, channels: int, groups: int, kernel_size: int, reduction: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        squeeze = max(groups, (channels // reduction) // groups * groups)
        self.se_down = nn.Conv1d(channels, squeeze, 1, groups=groups)
        self.se_up = nn.Conv1d(squeeze, channels, 1, groups=groups)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (N, C, F); mask: (N, C, F) with True on real frames."""
        m = mask.to(x.dtype)
        h = F.relu(self.bn1(self.conv1(x))) * m
        h = self.bn2(self.conv2(h)) * m
        pooled = (h.sum(-1, keepdim=True)) / m.sum(-1, keepdim=True).clamp_min(1.0)
        gate = torch.sigmoid(self.se_up(F.relu(self.se_down(pooled))))
        return F.relu(x + h * gate) * m


class ParallelCNN(nn.Module):
    """Multi-branch attention classifier over the three slices of a window."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        g = 1 if config.share_branches else SLICES_PER_WINDOW
        self.groups = g
        c = config.channels * g
        self.register_buffer("input_mean", torch.zeros(config.input_dim))
        self.register_buffer("input_std", torch.ones(config.input_dim))
        self.register_buffer("temperature", torch.ones(()))
        self.stem = nn.Conv1d(config.input_dim * g, c, config.kernel_size, padding=config.kernel_size // 2,
                              groups=g, bias=False)
        self.stem_bn = nn.BatchNorm1d(c)
        self.blocks = nn.ModuleList(
            SEResBlock(c, g, config.kernel_size, config.se_reduction) for _ in range(config.n_blocks)
        )
        self.project = nn.Conv1d(2 * c, config.hidden * g, 1, groups=g)
        self.attn_hidden = nn.Linear(config.hidden, config.hidden // 2)
        self.attn_score = nn.Linear(config.hidden // 2, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.n_classes)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Optional fixed input transform, applied before standardisation."""
        if self.config.input_transform == "logit":
            return torch.logit(x.clamp(1e-4, 1 - 1e-4))
        return x

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training set's per-dimension statistics; inputs are standardised with them."""
        self.input_mean.copy_(mean)
        self.input_std.copy_(std.clamp_min(1e-6))

    def slice_vectors(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode every slice of (B, 3, F, D) windows into (B, 3, hidden) vectors."""
        b, s, f, d = x.shape
        g = self.groups
        n = b * s // g
        if mask is None:
            mask = torch.ones(b, s, f, dtype=torch.bool, device=x.device)
        x = (self.transform(x) - self.input_mean) / self.input_std
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        x = x.transpose(2, 3).reshape(n, g * d, f)  # slices side by side as conv groups
        c = self.config.channels
        m = mask.reshape(n, g, 1, f).expand(n, g, c, f).reshape(n, g * c, f)
        h = F.relu(self.stem_bn(self.stem(x))) * m.to(x.dtype)
        for block in self.blocks:
            h = block(h, m)
        pooled = _masked_mean_max(h, m, g)
        v = F.relu(self.project(pooled.unsqueeze(-1)).squeeze(-1))  # (N, g * hidden)
        return v.reshape(b, s, self.config.hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> ClassifierOutput:
        """Classify (B, 3, F, D) windows; logits are divided by the calibration temperature."""
        return attend(self, self.slice_vectors(x, mask))


def attend(model: nn.Module, v: torch.Tensor) -> ClassifierOutput:
    """Attention over (B, 3, H) slice vectors, then the shared head on the window and on each slice.

    Shared by every classifier with `attn_hidden`, `attn_score`, `dropout`, `head` and a
    `temperature` buffer, so they all pool and calibrate alike.
    """
    scores = model.attn_score(torch.tanh(model.attn_hidden(v))).squeeze(-1)  # (B, 3)
    attention = torch.softmax(scores, dim=1)
    pooled = (attention.unsqueeze(-1) * v).sum(1)
    t = model.temperature
    logits = model.head(model.dropout(pooled)) / t
    slice_logits = model.head(model.dropout(v)) / t
    return ClassifierOutput(logits, attention, slice_logits)
