"""An opt-in int8 CPU path for MusiCNN: static quantisation (torch.ao, x86/fbgemm) of the front-end.

Why: most of the network's time goes to the timbral and temporal convolutions, and in float32 they
already run near this CPU's throughput; int8 convolutions (VNNI) do the same work several times
faster. Only those five convolutions are quantised (per-channel int8 weights, uint8 activations);
the max over frequency runs on the uint8 output, and everything after it (BN affine, mid-end,
pooling, dense layers) stays float32.

The activation scales come from a committed calibration artefact (`int8_qparams.json`, made by
`python -m models.embedders.musicnn.int8_calibrate` from the gtzan_mini train-list clips), so
building the int8 model is deterministic, needs no audio, and takes milliseconds; weights are
quantised from the wheel's float weights on load. The qparams' hash is part of the embedder id, so
a recalibration can never be served from caches made by another.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import DeQuantStub, QConfig, QuantStub, convert, fuse_modules, prepare
from torch.ao.quantization.observer import FixedQParamsObserver, default_per_channel_weight_observer

from models.embedders.base import EmbedderError
from models.embedders.musicnn.network import MusiCNN, _bn_affine

QPARAMS_FILE = Path(__file__).with_name("int8_qparams.json")
BACKEND = "x86"  # fbgemm kernels (VNNI where the CPU has it) with oneDNN for some shapes
BLOCKS = ("timbral.0", "timbral.1", "temporal.0", "temporal.1", "temporal.2")  # the quantised convolutions
PRECISIONS = ("fp32", "int8")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torch 2.13 marks the eager quantised-tensor API (pytorch#184982) and observers' reduce_range deprecated;
    they still are torch.ao's x86 static-int8 path, so those warnings are silenced here, not process-wide."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        warnings.filterwarnings("ignore", message=r".*reduce_range will be deprecated.*")
        yield


class FreqMaxInt8(nn.Module):
    """quant -> int8 convs -> max over frequency (uint8) -> dequant -> BN affine, per channel.

    BN(relu(y)) maxed over frequency is scale * relu(max y) + shift where scale >= 0 and
    scale * relu(min y) + shift where scale < 0 (most channels here: dead ones with negative
    gammas). Quantised tensors have a max pool but no min, so the channels are split in two convs:
    `pos` with its ReLU fused (the output scale only covers [0, max]) and `neg` with flipped
    weights, min y = -max(-y). The input is quantised once and feeds both.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm1d) -> None:
        super().__init__()
        scale, shift = _bn_affine(bn)
        neg = scale < 0
        self.kernel_size = conv.kernel_size  # read by MusiCNN._features for the temporal padding
        self.quant = QuantStub()
        self.pos = self._part(conv, ~neg, 1.0)
        self.relu = nn.ReLU()
        self.neg = self._part(conv, neg, -1.0)
        self.dequant_pos, self.dequant_neg = DeQuantStub(), DeQuantStub()
        order = torch.cat([torch.nonzero(~neg)[:, 0], torch.nonzero(neg)[:, 0]])
        self.register_buffer("order", torch.argsort(order))  # [pos..., neg...] -> original channel order
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    @staticmethod
    def _part(conv: nn.Conv2d, keep: torch.Tensor, sign: float) -> nn.Conv2d:
        """A float conv of the channels in `keep`, weights times `sign`."""
        part = nn.Conv2d(conv.in_channels, int(keep.sum()), conv.kernel_size)
        assert conv.bias is not None
        with torch.no_grad():
            part.weight.copy_(conv.weight[keep] * sign)
            part.bias.copy_(conv.bias[keep] * sign)
        return part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, T', 96) float -> (N, C, T) float, like `MusiCNN._conv_bn_freqmax`."""
        q = self.quant(x)
        pos = self.relu(self.pos(q))
        pos = self.dequant_pos(F.max_pool2d(pos, (1, pos.shape[-1])))[..., 0]  # relu(max y); amax has no int8 kernel
        neg = self.neg(q)  # -y
        neg = torch.relu(-self.dequant_neg(F.max_pool2d(neg, (1, neg.shape[-1])))[..., 0])  # relu(min y)
        extreme = torch.cat([pos, neg], dim=1).index_select(1, self.order)
        return extreme * self.scale[:, None] + self.shift[:, None]


class MusiCNNInt8(MusiCNN):
    """MusiCNN whose five front-end convolutions are `FreqMaxInt8` blocks (same forward, same outputs)."""

    def __init__(self, model: MusiCNN) -> None:
        super().__init__()
        self.load_state_dict(model.state_dict())
        self.timbral = nn.ModuleList([FreqMaxInt8(c, b) for c, b in zip(model.timbral, model.bn_timbral, strict=True)])
        self.temporal = nn.ModuleList(
            [FreqMaxInt8(c, b) for c, b in zip(model.temporal, model.bn_temporal, strict=True)]
        )
        self.eval()

    def _conv_bn_freqmax(self, x: torch.Tensor, conv: nn.Module, bn: nn.Module) -> torch.Tensor:  # type: ignore[override]
        """The block holds its BN affine already; `bn` is kept only for the parent's call signature."""
        return conv(x)

    def blocks(self) -> dict[str, FreqMaxInt8]:
        """The quantised blocks by name ('timbral.0', ...)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, FreqMaxInt8)}


def set_backend() -> None:
    """Select the x86 quantised engine; int8 needs it (ARM builds only have qnnpack)."""
    if BACKEND not in torch.backends.quantized.supported_engines:
        raise EmbedderError(f"The int8 path needs torch's {BACKEND!r} quantised engine, which this build lacks "
                            f"({', '.join(torch.backends.quantized.supported_engines)}); use fp32.")
    torch.backends.quantized.engine = BACKEND


def prepared(model: MusiCNN, qconfigs: dict[str, dict[str, QConfig]]) -> MusiCNNInt8:
    """A float MusiCNNInt8 with observers: qconfigs[block]['quant' / 'pos' / 'neg'] for its activations."""
    set_backend()
    net = MusiCNNInt8(copy.deepcopy(model).cpu())
    for name, block in net.blocks().items():
        fuse_modules(block, [["pos", "relu"]], inplace=True)
        for part in ("quant", "pos", "neg", "dequant_pos", "dequant_neg"):  # dequant: any qconfig swaps it in
            getattr(block, part).qconfig = qconfigs[name][part if part in ("quant", "pos", "neg") else "quant"]
    return prepare(net, inplace=True)


def _fixed(q: dict[str, Any]) -> QConfig:
    """A qconfig whose activation observer returns the stored scale and zero point, untouched by data."""
    activation = FixedQParamsObserver.with_args(
        scale=float(q["scale"]), zero_point=int(q["zero_point"]), dtype=torch.quint8,
        quant_min=int(q["quant_min"]), quant_max=int(q["quant_max"]),
    )
    return QConfig(activation=activation, weight=default_per_channel_weight_observer)


def load_qparams(path: Path = QPARAMS_FILE) -> dict[str, Any]:
    """The calibration artefact; a clear error when it is missing or does not name every block."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"Cannot read the int8 calibration {path}: {exc}. Rebuild it with "
                            "python -m models.embedders.musicnn.int8_calibrate") from exc
    missing = [b for b in BLOCKS if b not in data.get("blocks", {})]
    if missing:
        raise EmbedderError(f"{path} lacks int8 qparams for {', '.join(missing)}.")
    return data


def qparams_tag(qparams: dict[str, Any]) -> str:
    """8 hex digits of the qparams: part of the embedder id, so caches never mix calibrations."""
    blob = json.dumps(qparams["blocks"], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def quantize(model: MusiCNN, qparams: dict[str, Any]) -> MusiCNNInt8:
    """The int8 model from float weights and stored activation qparams (no calibration run)."""
    blocks = qparams["blocks"]
    configs = {name: {part: _fixed(blocks[name][part]) for part in ("quant", "pos", "neg")} for name in BLOCKS}
    with quiet():
        net = prepared(model, configs)
        return convert(net, inplace=True).eval()


@functools.lru_cache(maxsize=1)
def _cached_int8() -> tuple[MusiCNNInt8, str]:
    from models.embedders.musicnn.weights import load_msd_musicnn

    qparams = load_qparams()
    return quantize(load_msd_musicnn("cpu"), qparams), qparams_tag(qparams)


def load_msd_musicnn_int8() -> tuple[MusiCNNInt8, str]:
    """(int8 MSD MusiCNN on CPU, calibration tag); built once per process, shared read-only."""
    set_backend()
    return _cached_int8()


def check_precision(precision: str, device: torch.device) -> str:
    """Validate a precision choice; int8 exists for CPU only."""
    if precision not in PRECISIONS:
        raise EmbedderError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "int8" and device.type != "cpu":
        raise EmbedderError(f"int8 runs on CPU only, not on {device}; use --precision fp32 there.")
    return precision
