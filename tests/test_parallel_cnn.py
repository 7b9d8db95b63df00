"""The multi-branch attention classifier: shapes, masking, branch separation."""

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
    model = ParallelCNN(ClassifierConfig(input_dim=8)).train()
    out = model(torch.randn(4, 3, 3, 8))
    (out.logits.sum() + out.slice_logits.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
