"""Window geometry and building windows from frame rows."""

import numpy as np
import pytest

from utils.windows import cut_slices, frames_in_slice, plan_windows, window_starts, windows_from_frames

HOP, FRAME = 61 * 256 / 16000, 187 * 256 / 16000


def test_30s_track_has_four_windows_sharing_six_slices():
    plan = plan_windows(30.0)
    assert plan.window_starts.tolist() == [0, 5, 10, 15]
    assert plan.slice_starts.tolist() == [0, 5, 10, 15, 20, 25]
    assert plan.window_slices.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]


def test_long_tail_gets_an_end_aligned_window_and_short_tail_does_not():
    assert window_starts(33.0).tolist() == [0, 5, 10, 15, 18]
    assert window_starts(31.0).tolist() == [0, 5, 10, 15]
    plan = plan_windows(33.0)
    assert np.allclose(plan.slice_starts[plan.window_slices[-1]], [18, 23, 28])


def test_too_short_for_a_window_raises():
    with pytest.raises(ValueError):
        window_starts(14.0)


def test_cut_slices_takes_the_right_samples():
    sr = 100
    y = np.arange(30 * sr, dtype=np.float32)
    s = cut_slices(y, sr, np.array([0.0, 5.0, 27.0]))
    assert s.shape == (3, 500)
    assert s[1, 0] == 500 and s[1, -1] == 999
    assert s[2, 299] == 2999 and s[2, 300] == 0  # padded past the end


def test_frames_in_slice_keeps_only_whole_patches():
    starts = np.arange(28) * HOP
    assert frames_in_slice(starts, FRAME, 0.0).tolist() == [0, 1, 2]
    idx = frames_in_slice(starts, FRAME, 5.0)
    assert all(starts[i] >= 5.0 - 1e-3 and starts[i] + FRAME <= 10.0 + 1e-3 for i in idx)
    assert idx.tolist() == [6, 7]


def test_windows_from_frames_puts_the_right_frames_in_each_slice():
    starts = np.arange(28) * HOP
    frames = np.arange(28, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    x, m = windows_from_frames(frames, starts, FRAME, np.array([0.0, 5.0]))
    assert x.shape == (2, 3, 3, 4) and m.shape == (2, 3, 3)
    assert x[0, 0, :, 0].tolist() == [0, 1, 2] and m[0, 0].all()
    assert x[0, 1, :2, 0].tolist() == [6, 7] and m[0, 1].tolist() == [True, True, False]
    assert x[0, 1, 2].sum() == 0  # padding is zeros
    assert np.array_equal(x[1, 0], x[0, 1])  # windows share slices
