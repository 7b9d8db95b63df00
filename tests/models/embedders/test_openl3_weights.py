"""OpenL3 weights: Keras h5 import by layer order, the lookup order, the cache and the download."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from models.embedders.base import EmbedderError
from models.embedders.openl3 import OpenL3Error
from models.embedders.openl3 import weights as ow
from models.embedders.openl3.network import OpenL3Net
from tests.helpers.data import shared_path
from tests.helpers.openl3 import random_layers, write_keras_h5
from utils import settings


def assert_state_matches(state: dict[str, torch.Tensor], layers: list[list[np.ndarray]]) -> None:
    """Layer i of the file must land in the i-th weighted module, kernels as OIHW."""
    bn = [a for a in layers if len(a) == 4]
    conv = [a for a in layers if len(a) == 2]
    np.testing.assert_array_equal(state["bn0.weight"].numpy(), bn[0][0])
    np.testing.assert_array_equal(state["bn0.running_var"].numpy(), bn[0][3])
    np.testing.assert_array_equal(state["bns.6.bias"].numpy(), bn[7][1])
    np.testing.assert_array_equal(state["bns.2.running_mean"].numpy(), bn[3][2])
    np.testing.assert_array_equal(state["convs.3.weight"].numpy(), conv[3][0].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["convs.7.bias"].numpy(), conv[7][1])
    OpenL3Net().load_state_dict(state)  # strict: every key present, every shape right


@pytest.fixture(scope="module")
def layers() -> list[list[np.ndarray]]:
    return random_layers()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty private cache; no explicit weights from the environment."""
    monkeypatch.setenv(settings.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(settings.OPENL3_WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(settings.OPENL3_URL_ENV, raising=False)
    return tmp_path / "cache" / "openl3"


@pytest.mark.shared
def test_golden_h5_imports_in_weight_names_order() -> None:
    path = shared_path("golden", "openl3", "fake_openl3_audio_mel256_music.h5")
    manifest = json.loads(shared_path("golden", "openl3", "manifest.json").read_text())
    loaded = ow.convert_h5(path)
    assert loaded.sha256 == manifest["weights"][path.name]["sha256"]
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(
            loaded.state_dict["bn0.weight"].numpy(), f["batch_normalization/batch_normalization/gamma:0"][()]
        )
        np.testing.assert_array_equal(
            loaded.state_dict["bns.0.running_var"].numpy(),
            f["batch_normalization_1/batch_normalization_1/moving_variance:0"][()],
        )
        kernel = f["audio_embedding_layer/audio_embedding_layer/kernel:0"][()]
        np.testing.assert_array_equal(loaded.state_dict["convs.7.weight"].numpy(), kernel.transpose(3, 2, 0, 1))
    OpenL3Net().load_state_dict(loaded.state_dict)


@pytest.mark.parametrize(
    ("one_based", "as_bytes", "full_model"), [(False, False, False), (True, True, False), (True, False, True)]
)
def test_layers_map_by_order_not_name(
    tmp_path: Path, layers: list[list[np.ndarray]], one_based: bool, as_bytes: bool, full_model: bool
) -> None:
    path = write_keras_h5(tmp_path / "w.h5", layers, one_based=one_based, as_bytes=as_bytes, full_model=full_model)
    assert_state_matches(ow.convert_h5(path).state_dict, layers)


def test_removed_kapre_spectrogram_layer_is_skipped(tmp_path: Path, layers: list[list[np.ndarray]]) -> None:
    extra = ("melspectrogram_1", [np.zeros((2048, 1, 1025), np.float32)])
    path = write_keras_h5(tmp_path / "w.h5", layers, extra=extra)
    assert_state_matches(ow.convert_h5(path).state_dict, layers)


def test_wrong_shapes_fail_with_clear_message(tmp_path: Path, layers: list[list[np.ndarray]]) -> None:
    image_like = [list(a) for a in layers]
    image_like[0] = [np.ones(3, np.float32)] * 4  # the image network starts with BN over 3 channels
    with pytest.raises(ow.OpenL3WeightsError, match=r"weighted layer 1 .* expected \[\(1,\)"):
        ow.convert_h5(write_keras_h5(tmp_path / "img.h5", image_like))
    with pytest.raises(ow.OpenL3WeightsError, match="15 weighted layers, but an OpenL3 audio network has 16"):
        ow.convert_h5(write_keras_h5(tmp_path / "short.h5", layers[:-1]))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"<html>not found</html>")
    with pytest.raises(ow.OpenL3WeightsError, match="not a readable HDF5"):
        ow.convert_h5(junk)
    with pytest.raises(ow.OpenL3WeightsError, match="does not exist"):
        ow.load_weights_file(tmp_path / "missing.h5")


def test_download_url_is_openl3_installers() -> None:
    assert ow.download_url("mel256", "music", None) == (
        "https://github.com/marl/openl3/raw/models/openl3_audio_mel256_music-v0_4_0.h5.gz"
    )


def test_lookup_order_explicit_env_then_cache(
    cache: Path, tmp_path: Path, layers: list[list[np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.mkdir(parents=True)
    in_cache = write_keras_h5(cache / "openl3_audio_mel128_music.h5", layers)
    other = write_keras_h5(tmp_path / "other.h5", random_layers(1))
    env_file = write_keras_h5(tmp_path / "env.h5", random_layers(2))

    got = ow.resolve_weights("mel128", "music", allow_download=False)
    assert got.sha256 == ow.file_sha256(in_cache)
    pt = cache / "openl3_audio_mel128_music.pt"
    assert pt.is_file()  # converted once ...
    in_cache.unlink()
    assert ow.resolve_weights("mel128", "music", allow_download=False).sha256 == got.sha256  # ... reused
    raw = torch.load(pt, weights_only=True)
    assert raw["sha256"] == got.sha256 and set(raw["state_dict"]) == set(got.state_dict)

    monkeypatch.setenv(settings.OPENL3_WEIGHTS_ENV, str(env_file))
    assert ow.resolve_weights("mel128", "music").sha256 == ow.file_sha256(env_file)
    assert ow.resolve_weights("mel128", "music", other).sha256 == ow.file_sha256(other)  # argument first
    assert ow.load_weights_file(pt).sha256 == got.sha256  # an explicit converted .pt works too


def test_corrupt_cached_state_dict_is_rebuilt(cache: Path, layers: list[list[np.ndarray]]) -> None:
    cache.mkdir(parents=True)
    h5 = write_keras_h5(cache / "openl3_audio_mel256_env.h5", layers)
    (cache / "openl3_audio_mel256_env.pt").write_bytes(b"garbage")
    assert ow.resolve_weights("mel256", "env", allow_download=False).sha256 == ow.file_sha256(h5)
    assert ow.load_converted(cache / "openl3_audio_mel256_env.pt").sha256 == ow.file_sha256(h5)


class _Server:
    """http.server on 127.0.0.1 in a thread, counting requests."""

    def __init__(self, root: Path) -> None:
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.requests: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "www"
    (root / "models").mkdir(parents=True)
    srv = _Server(root)
    yield srv
    srv.close()


def test_download_from_local_server(
    cache: Path, server: _Server, tmp_path: Path, layers: list[list[np.ndarray]]
) -> None:
    h5 = write_keras_h5(tmp_path / "src.h5", layers)
    www = tmp_path / "www" / "models"
    (www / "openl3_audio_mel256_music-v0_4_0.h5.gz").write_bytes(gzip.compress(h5.read_bytes(), 1))

    got = ow.resolve_weights("mel256", "music", base_url=server.url, progress=True)
    assert server.requests == ["/models/openl3_audio_mel256_music-v0_4_0.h5.gz"]
    assert got.sha256 == ow.file_sha256(h5)
    assert (cache / "openl3_audio_mel256_music.h5").read_bytes() == h5.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["openl3_audio_mel256_music.h5", "openl3_audio_mel256_music.pt"]
    assert_state_matches(got.state_dict, layers)
    ow.resolve_weights("mel256", "music", base_url=server.url)
    assert len(server.requests) == 1  # served from the cache the second time


def test_download_plain_h5_via_env_url(
    cache: Path, server: _Server, tmp_path: Path, layers: list[list[np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_keras_h5(tmp_path / "www" / "models" / "openl3_audio_mel128_env-v0_4_0.h5.gz", layers)
    monkeypatch.setenv(settings.OPENL3_URL_ENV, server.url)
    assert_state_matches(ow.resolve_weights("mel128", "env", progress=False).state_dict, layers)


def test_bad_download_leaves_no_file(cache: Path, server: _Server, tmp_path: Path) -> None:
    (tmp_path / "www" / "models" / "openl3_audio_mel128_music-v0_4_0.h5.gz").write_text("<html>rate limited</html>")
    with pytest.raises(ow.OpenL3WeightsError, match="did not return a gzip or HDF5 file"):
        ow.resolve_weights("mel128", "music", base_url=server.url, progress=False)
    with pytest.raises(ow.OpenL3WeightsError, match="download failed"):  # 404
        ow.resolve_weights("mel256", "env", base_url=server.url, progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_offline_error_says_what_and_where(cache: Path) -> None:
    with pytest.raises(ow.OpenL3WeightsError) as info:
        ow.resolve_weights("mel256", "music", base_url="http://127.0.0.1:9/", progress=False)
    message = str(info.value)
    assert "openl3_audio_mel256_music.h5" in message and str(cache) in message
    url = "http://127.0.0.1:9/openl3_audio_mel256_music-v0_4_0.h5.gz"
    assert settings.OPENL3_WEIGHTS_ENV in message and url in message
    assert isinstance(info.value, EmbedderError) and isinstance(info.value, OpenL3Error)
    with pytest.raises(ow.OpenL3WeightsError, match="downloads disabled"):
        ow.resolve_weights("mel256", "music", allow_download=False)
