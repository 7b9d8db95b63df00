"""`--engine ray`: local and Ray outputs are identical, runs resume, bad files are recorded.

Ray runs in local mode on this machine (`ray.init(num_cpus=2)`, one cluster for the module) over
six generated 16 s files plus one broken file. The cluster also declares one (logical) GPU, so
the GPU pipeline shape (decode tasks -> GPU actor) is exercised with the actor on the CPU.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.cli.main import main
from app.jobs.ray_cluster import ActorPlan, plan_actors
from models.classifier.bundle import ModelCard, save_bundle
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from tests.helpers.data import ROOT, synth_music, synthetic_table
from utils.constants import GENRES
from utils.tables import EmbeddingTable, load_table

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is an optional extra: pip install -r requirements-ray.txt")


# --- without Ray ----------------------------------------------------------------------------------

def test_plan_actors():
    assert plan_actors({"CPU": 8}) == ActorPlan(8, 1.0, 0.0, "cpu")
    assert plan_actors({"CPU": 16, "GPU": 2}) == ActorPlan(2, 1.0, 1.0, "cuda")
    assert plan_actors({"CPU": 16, "GPU": 2}, "cpu").device == "cpu"
    with pytest.raises(ValueError, match="no GPUs"):
        plan_actors({"CPU": 4}, "cuda")


def test_plan_actors_env_overrides(monkeypatch):
    monkeypatch.setenv("GENRE_LENS_RAY_GPUS_PER_ACTOR", "0.5")
    assert plan_actors({"CPU": 16, "GPU": 2}) == ActorPlan(4, 1.0, 0.5, "cuda")
    monkeypatch.setenv("GENRE_LENS_RAY_ACTORS", "3")
    assert plan_actors({"CPU": 16}).actors == 3


def test_missing_ray_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if not installed
    (tmp_path / "rock").mkdir()
    sf.write(tmp_path / "rock" / "a.wav", synth_music(2.0), 22050)
    assert main(["embed", str(tmp_path), "--out", str(tmp_path / "out"), "--engine", "ray"]) == 2
    assert "pip install -r requirements-ray.txt" in capsys.readouterr().err


def test_a_namesake_of_another_genre_is_reported_and_runs_take_turns(tmp_path):
    """Decided on the driver, before Ray starts: nothing here needs a cluster."""
    import threading

    from app.jobs.embed import table_meta
    from app.jobs.ray_embed import embed_with_ray
    from app.jobs.table_files import table_lock
    from models.embedders.base import build_embedder
    from utils.tables.parquet import write_shard

    folder = tmp_path / "shards"
    folder.mkdir()
    meta = table_meta(build_embedder("musicnn-msd", device="cpu"))
    held = EmbeddingTable(np.zeros((2, meta["dim"]), np.float32), np.array(["song", "song"]),
                          np.array(["jazz", "jazz"]), np.array([0.0, 3.0], np.float32), meta)
    write_shard(folder / "part-0.parquet", held)
    for genre in ("rock", "jazz"):  # one source each: a source's own namesakes are renamed (song~1) first
        (tmp_path / genre / genre).mkdir(parents=True)
        sf.write(tmp_path / genre / genre / "song.wav", synth_music(2.0, seed=1), 22050)
    messages: list[str] = []
    gate = threading.Event()

    def hold() -> None:
        with table_lock(folder):
            gate.set()
            threading.Event().wait(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    gate.wait()
    clash = embed_with_ray(tmp_path / "rock", folder, embedder="musicnn-msd", options={}, log=messages.append)
    holder.join()
    assert any("waiting for another embed run" in m for m in messages), messages
    (path, why), = clash.failed
    assert path.endswith("rock/song.wav") and "another track named 'song' (genre jazz, not rock)" in why
    assert not clash.skipped and not clash.embedded
    same = embed_with_ray(tmp_path / "jazz", folder, embedder="musicnn-msd", options={})
    assert same.skipped == ["song"] and not same.embedded and not same.failed


def test_ray_engine_wants_a_folder(tmp_path, capsys):
    assert main(["embed", str(tmp_path), "--out", str(tmp_path / "t.npz"), "--engine", "ray"]) == 2
    assert "folder of Parquet shards" in capsys.readouterr().err


# --- with Ray -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the module (starting Ray is the slow part)."""
    if not HAS_RAY:
        pytest.skip("Ray is an optional extra: pip install -r requirements-ray.txt")
    import ray

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Six 16 s WAVs in four genre folders, one broken file, and an empty embedding cache."""
    root = tmp_path_factory.mktemp("ray")
    src = root / "src"
    for i, genre in enumerate(["blues", "jazz", "pop", "rock", "blues", "rock"]):
        (src / genre).mkdir(parents=True, exist_ok=True)
        sf.write(src / genre / f"{genre}.{i:05d}.wav", synth_music(16.0, seed=i), 22050)
    (src / "rock" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENRE_LENS_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def local_table(work) -> EmbeddingTable:
    """The table `--engine local` writes for the collection."""
    assert main(["embed", str(work / "src"), "--out", str(work / "local.npz"), "--device", "cpu"]) == 0
    return load_table(work / "local.npz")


@pytest.fixture(scope="module")
def bundle(work) -> Path:
    """A musicnn-msd bundle with random (seeded) classifier weights: identity needs no training."""
    import torch

    torch.manual_seed(0)
    card = ModelCard("ray-test", list(GENRES), {"name": "musicnn-msd", "id": "musicnn-msd/taggram/v1",
                                                "options": {}}, {})
    return save_bundle(ParallelCNN(ClassifierConfig(input_dim=50, channels=8, hidden=16)), card, work / "ckpt")


@pytest.fixture
def one_thread():
    """Torch on one thread, like a 1-CPU Ray actor.

    The classifier's float32 output changes in the last bits with torch's thread count (~3e-8 here,
    the same as between two machines with different core counts), which ECE shows; with equal
    thread counts local and Ray reports are identical. MusiCNN embeddings do not depend on it.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same_tracks(a: EmbeddingTable, b: EmbeddingTable) -> None:
    """The same tracks with the same frames (to float32 rounding), whatever their order in the table.

    Ray's actors may run torch with another thread count than the test process, and a different
    reduction order moves the last bit (1e-7 differences were seen on a loaded 2-core machine)."""
    assert sorted(a.track_ids()) == sorted(b.track_ids()) and a.meta == b.meta
    for t in a.tracks():
        u = b.subset({t.track_id})
        np.testing.assert_allclose(t.vectors, u.vectors, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(t.frame_start_s, u.frame_start_s)
        assert {t.genre} == set(u.genre.tolist())


@needs_ray
def test_embed_matches_local_and_resumes(ray_cluster, work, local_table, capsys, monkeypatch):
    from utils.tables.parquet import read_parquet_table, shard_paths, shard_track_ids

    out = work / "shards"
    monkeypatch.setenv("GENRE_LENS_RAY_TRACKS_PER_SHARD", "3")
    assert main(["embed", str(work / "src"), "--out", str(out), "--engine", "ray", "--device", "cpu"]) == 0
    assert "6 embedded, 0 already in" in capsys.readouterr().out
    table = read_parquet_table(out)
    assert table.track_ids() == local_table.track_ids() and table.meta == local_table.meta  # same order too
    assert_same_tracks(table, local_table)
    failures = json.loads((out / "_failures.json").read_text())
    assert [Path(f["path"]).name for f in failures] == ["broken.wav"] and "damaged" in failures[0]["error"]

    shards = shard_paths(out)  # batches of at most 3 tracks
    assert len(shards) >= 2
    lost = len(shard_track_ids(shards[1]))
    shards[1].unlink()  # as if the job had died before writing it
    assert main(["embed", str(work / "src"), "--out", str(out), "--engine", "ray", "--device", "cpu"]) == 0
    assert f"{lost} embedded, {6 - lost} already in" in capsys.readouterr().out
    assert_same_tracks(read_parquet_table(out), local_table)


@needs_ray
def test_gpu_shaped_pipeline(ray_cluster, work, local_table):
    """Decode in CPU tasks, embed in an actor holding the (logical) GPU, write shards."""
    from app.jobs.embed import list_source, table_meta
    from app.jobs.ray_embed import run_pipeline
    from models.embedders.base import build_embedder
    from utils.tables.parquet import read_parquet_table

    assert plan_actors(ray_cluster.cluster_resources()).num_gpus == 1
    probe = build_embedder("musicnn-msd", device="cpu")
    rows = [{"order": i, "track_id": t, "path": str(p), "genre": g}
            for i, (t, p, g) in enumerate(list_source(work / "src")) if t != "broken"][:4]
    manifest = run_pipeline(ray_cluster, rows, "musicnn-msd", {}, probe.sample_rate, table_meta(probe),
                            work / "gpu", ActorPlan(1, 1.0, 1.0, "cpu"))
    assert [m["error"] for m in manifest] == [""] * 4
    assert_same_tracks(read_parquet_table(work / "gpu"), local_table.subset({r["track_id"] for r in rows}))


@needs_ray
def test_evaluate_tables_match_local(ray_cluster, work, bundle, tmp_path, one_thread):
    from app.jobs.ray_evaluate import evaluate_with_ray
    from utils.tables import load_table
    from utils.tables.parquet import write_parquet_table

    table = synthetic_table(n_per_genre=6, dim=50, seed=1)  # 60 tracks: more than max_slice_frames looks at
    train = synthetic_table(n_per_genre=3, dim=50, seed=2)
    table.save(tmp_path / "test.npz")
    train.save(tmp_path / "train.npz")
    write_parquet_table(table, tmp_path / "shards", tracks_per_shard=16)
    (tmp_path / "list.txt").write_text("\n".join(t + ".wav" for t in table.track_ids()[3:58]))
    common = ["--checkpoint", str(bundle), "--train-table", str(tmp_path / "train.npz")]

    def run(source: str, name: str, *extra: str) -> dict:
        assert main(["evaluate", source, "--out", str(tmp_path / name), *common, *extra]) == 0
        return json.loads((tmp_path / name).read_text())

    local = run(str(tmp_path / "test.npz"), "local.json")
    local_list = run(str(tmp_path / "test.npz"), "local-list.json", "--list", str(tmp_path / "list.txt"))
    assert local_list["n_tracks"] == 55 and "baseline" in local
    # a shard folder goes to Ray through the CLI
    assert run(str(tmp_path / "shards"), "ray-list.json", "--engine", "ray", "--list", str(tmp_path / "list.txt")) \
        == local_list
    # an .npz table: the CLI keeps it local, the job itself handles it too (typed arguments, no namespace)
    report = evaluate_with_ray(tmp_path / "test.npz", bundle, train_table=load_table(tmp_path / "train.npz"))
    assert json.loads(json.dumps(report)) == local


@needs_ray
def test_evaluate_audio_matches_local(ray_cluster, work, bundle, one_thread):
    def run(*extra: str) -> dict:
        out = work / f"audio{len(extra)}.json"
        assert main(["evaluate", str(work / "src"), "--checkpoint", str(bundle), "--device", "cpu", "--out",
                     str(out), *extra]) == 0
        report = json.loads(out.read_text())
        report.pop("evaluated_at")
        return report

    local, on_ray = run(), run("--engine", "ray")
    assert on_ray == local and local["n_tracks"] == 6
    assert [Path(p).name for p, _ in local["failed"]] == ["broken.wav"]


def test_requirements_pin_the_installed_ray():
    pins = dict(line.split("==") for line in (ROOT / "requirements-ray.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert "ray[data]" in pins
    if HAS_RAY:
        import ray

        assert pins["ray[data]"] == ray.__version__


def test_actors_leave_no_bundle_copy_behind(tmp_path, monkeypatch):
    """Each actor wrote the bundle to a temp folder and never removed it: one per actor per run."""
    import tempfile

    from app.jobs.ray_evaluate import ScoreActor, bundle_files
    from tests.helpers.bundles import make_test_bundle

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    folder = make_test_bundle(tmp_path / "ckpt")
    actor = ScoreActor(bundle_files(folder), "cpu", 2.992, 3)
    assert actor.model is not None and list((tmp_path / "tmp").iterdir()) == []
