"""A warm worker around the original TensorFlow `musicnn` MSD_musicnn, for bench_reference.py.

Runs in the *reference* interpreter (tensorflow-cpu, tf_keras, musicnn==0.1.0; see docs/reference.md),
never in the project's. The original `extractor()` rebuilds its graph and restores the checkpoint on
every call (~1-2 s); timing that would flatter the port, so this worker builds the same graph once and
then does exactly the per-clip work of `extractor()`: `batch_data` (librosa load, float16 log-mel,
patches) and `sess.run` in BATCH_SIZE chunks.

`--threads N` gives TensorFlow N intra-op threads and one inter-op thread (default: its own choice,
every core), so that a side-by-side run can give both sides the same threads.

Protocol: one JSON object per line on stdin, one JSON line back on stdout (everything else goes to
stderr). Requests: {"cmd": "extract", "path", "input_length", "input_overlap", "out"} -> seconds,
patches, the taggram saved to `out` (.npy); {"cmd": "patches", "npy", "out"} -> the taggram of the
given (P, frames, 96) log-mel patches, to feed both networks the same input; {"cmd": "logmel",
"path", "input_length", "input_overlap", "out"} -> the reference's own (float16-derived) patches.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    """Serve requests until stdin closes."""
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else None
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # musicnn and TF print progress; keep the protocol channel clean
    import librosa
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import extractor as ref
    from musicnn import models

    graphs: dict[int, tuple] = {}

    def session(n_frames: int) -> tuple:
        """The MSD_musicnn graph for `n_frames`-frame patches, built and restored once (as extractor does)."""
        if n_frames not in graphs:
            graph = tf.Graph()
            with graph.as_default(), tf.name_scope("model"):
                x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
                is_training = tf.compat.v1.placeholder(tf.bool)
                y, *_ = models.define_model(x, is_training, "MSD_musicnn", len(config.MSD_LABELS))
                normalized_y = tf.nn.sigmoid(y)
                proto = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                                 inter_op_parallelism_threads=1) if threads else None
                sess = tf.compat.v1.Session(graph=graph, config=proto)
                sess.run(tf.compat.v1.global_variables_initializer())
                tf.compat.v1.train.Saver().restore(sess, os.path.dirname(ref.__file__) + "/MSD_musicnn/")
            graphs[n_frames] = (sess, x, is_training, normalized_y)
        return graphs[n_frames]

    def frames(req: dict) -> tuple[int, int]:
        n = int(librosa.time_to_frames(req["input_length"], sr=config.SR, n_fft=config.FFT_SIZE,
                                       hop_length=config.FFT_HOP)) + 1
        hop = n if not req["input_overlap"] else int(librosa.time_to_frames(
            req["input_overlap"], sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP))
        return n, hop

    def run(batch: np.ndarray) -> np.ndarray:
        sess, x, is_training, normalized_y = session(batch.shape[1])
        parts = [sess.run(normalized_y, feed_dict={x: batch[i : i + config.BATCH_SIZE], is_training: False})
                 for i in range(0, batch.shape[0], config.BATCH_SIZE)]
        return np.concatenate(parts)

    print(json.dumps({"ready": True, "tensorflow": tf.__version__}), file=real_stdout, flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "extract":
            n, hop = frames(req)
            session(n)  # warm: the graph is not part of the per-clip time
            t = time.perf_counter()
            batch, _ = ref.batch_data(req["path"], n, hop)
            taggram = run(batch)
            seconds = time.perf_counter() - t
            np.save(req["out"], taggram)
            reply = {"seconds": seconds, "patches": int(taggram.shape[0])}
        elif req["cmd"] == "logmel":
            n, hop = frames(req)
            batch, _ = ref.batch_data(req["path"], n, hop)
            np.save(req["out"], batch.astype(np.float32))
            reply = {"patches": int(batch.shape[0]), "nonfinite": int((~np.isfinite(batch)).sum())}
        elif req["cmd"] == "patches":
            taggram = run(np.load(req["npy"]).astype(np.float32))
            np.save(req["out"], taggram)
            reply = {"patches": int(taggram.shape[0])}
        else:
            reply = {"error": f"unknown cmd {req['cmd']!r}"}
        print(json.dumps(reply), file=real_stdout, flush=True)


if __name__ == "__main__":
    main()
