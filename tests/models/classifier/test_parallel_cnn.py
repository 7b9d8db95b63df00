"""The multi-branch attention classifier: shapes, masking, branch separation."""

import numpy as np
import pytest
import torch

from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN


@pytest.mark.parametrize("dim,frames", [(50, 3), (200, 3), (512, 50)])
@pytest.mark.parametrize("share", [False, True])
def test_shapes_for_any_dim_and_frame_count(dim, frames, share):
    model = ParallelCNN(ClassifierConfig(input_dim=dim, share_branches=share)).eval()
    out = model(torch.randn(5, 3, frames, dim))
    assert out.logits.shape == (5, 10)
    assert out.attention.shape == (5, 3)
    assert out.slice_logits.shape == (5, 3, 10)
    assert torch.allclose(out.attention.sum(1), torch.ones(5))


def test_masked_frames_do_not_change_the_output():
    model = ParallelCNN(ClassifierConfig(input_dim=8)).eval()
    x = torch.randn(2, 3, 4, 8)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[:, 1, 3] = False
    a = model(x, mask).logits
    x[:, 1, 3] = 1e3
    assert torch.allclose(a, model(x, mask).logits)


def test_branches_are_separate_and_run_in_one_grouped_call():
    model = ParallelCNN(ClassifierConfig(input_dim=8, share_branches=False)).eval()
    assert model.stem.groups == 3
    x = torch.randn(2, 3, 3, 8)
    v = model.slice_vectors(x)
    x2 = x.clone()
    x2[:, 0] += 5.0
    v2 = model.slice_vectors(x2)
    assert torch.allclose(v[:, 1:], v2[:, 1:]) and not torch.allclose(v[:, 0], v2[:, 0])


def test_temperature_scales_logits():
    model = ParallelCNN(ClassifierConfig(input_dim=8)).eval()
    x = torch.randn(2, 3, 3, 8)
    a = model(x).logits
    model.temperature.fill_(2.0)
    assert torch.allclose(model(x).logits, a / 2)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = ParallelCNN(ClassifierConfig(input_dim=8)).train()
    out = model(torch.randn(4, 3, 3, 8))
    (out.logits.sum() + out.slice_logits.sum()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    # the attention score's bias shifts every slice's score alike, and softmax ignores a shift: no gradient
    assert grads.pop("attn_score.bias").abs().max() < 1e-5
    dead = [n for n, g in grads.items() if g.abs().max() < 1e-6]
    assert not dead, f"no gradient reaches {dead}"


def test_one_precision_policy_exact_on_cpu() -> None:
    """models/precision.py: float16 autocast only on CUDA; on the CPU the classifier stays exact float32."""
    from models.classifier.predict import predict_windows
    from models.precision import GPU_DTYPE, autocast

    assert torch.float16 == GPU_DTYPE
    with autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")
    torch.manual_seed(0)
    model = ParallelCNN(ClassifierConfig(input_dim=8)).eval()
    x = torch.randn(2, 3, 3, 8)
    out = predict_windows(model, x.numpy())
    with torch.inference_mode():
        expected = torch.sigmoid(model(x).logits).numpy()
    assert out.probabilities.dtype == np.float32 and np.array_equal(out.probabilities, expected)
