"""--out never replaces what the command reads: its input table or list, nor any file of a model bundle."""

from __future__ import annotations

import pytest

from app.cli.main import main
from models.classifier.bundle import CARD_FILE, METRICS_FILE, WEIGHTS_FILE
from tests.helpers.bundles import make_test_bundle
from tests.helpers.cli import one_error_line
from tests.helpers.data import synthetic_table
from utils.feedback import FeedbackStore


@pytest.fixture
def bundle_and_test(tmp_path):
    """A random-weights 50-d bundle and a 50-d test table."""
    synthetic_table(n_per_genre=2, dim=50, seed=1).save(tmp_path / "test.npz")
    return make_test_bundle(tmp_path / "ckpt"), tmp_path / "test.npz"


@pytest.mark.parametrize("which", ["source", "train_table", "list"])
def test_evaluate_refuses_an_out_that_is_one_of_its_inputs(tmp_path, capsys, bundle_and_test, which):
    """`evaluate T.npz --out T.npz` replaced the table with the JSON report."""
    bundle, test = bundle_and_test
    (tmp_path / "ids.txt").write_text("blues.00000\n")
    target = {"source": test, "train_table": test, "list": tmp_path / "ids.txt"}[which]
    before = target.read_bytes()
    argv = ["evaluate", str(test), "--checkpoint", str(bundle), "--out", str(target)]
    argv += {"source": [], "train_table": ["--train-table", str(test)], "list": ["--list", str(target)]}[which]
    assert main(argv) == 2
    assert "is one of this command's inputs" in one_error_line(capsys)
    assert target.read_bytes() == before


@pytest.mark.parametrize("name", [WEIGHTS_FILE, CARD_FILE, METRICS_FILE])
def test_evaluate_refuses_an_out_that_is_a_bundle_file(tmp_path, capsys, bundle_and_test, name):
    bundle, test = bundle_and_test
    before = (bundle / name).read_bytes()
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--out", str(bundle / name)]) == 2
    assert f"is the {name} of the model bundle" in one_error_line(capsys)
    assert (bundle / name).read_bytes() == before


def test_evaluate_may_write_a_report_beside_a_bundle(tmp_path, capsys, bundle_and_test):
    """The recipes keep reports in the bundle they measure (metrics_realworld_dev.json): still allowed."""
    bundle, test = bundle_and_test
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--out", str(bundle / "metrics_x.json")]) == 0
    assert (bundle / "metrics_x.json").is_file()


def test_feedback_export_refuses_a_bundle_file_and_its_own_database(tmp_path, capsys, bundle_and_test):
    """`feedback export --out <bundle>/model.pt` overwrote the bundle's weights with a CSV."""
    bundle, _ = bundle_and_test
    before = (bundle / WEIGHTS_FILE).read_bytes()
    db_file = tmp_path / "fb.sqlite3"
    db = f"sqlite:///{db_file}"
    FeedbackStore(db).close()  # export reads an existing database
    assert main(["feedback", "export", "--out", str(bundle / WEIGHTS_FILE), "--db", db]) == 2
    assert f"is the {WEIGHTS_FILE} of the model bundle" in one_error_line(capsys)
    assert (bundle / WEIGHTS_FILE).read_bytes() == before
    db_before = db_file.read_bytes()
    assert main(["feedback", "export", "--out", str(db_file), "--db", db]) == 2
    assert "is one of this command's inputs" in one_error_line(capsys)
    assert db_file.read_bytes() == db_before
    assert main(["feedback", "export", "--out", str(tmp_path / "fb.csv"), "--db", db]) == 0


@pytest.mark.parametrize("extra, said", [
    (["--record-as", "k", "--record-in", "nosuch"], "nosuch"),  # failed after the evaluation and its --out
    (["--record-in", "nosuch"], "add --record-as KEY"),  # was ignored without a word
    (["--members", "3"], "--members sets the ensemble size for --cv K"),  # so was this
])
def test_evaluate_checks_its_flags_before_the_work(tmp_path, capsys, bundle_and_test, extra, said):
    bundle, test = bundle_and_test
    out = tmp_path / "report.json"
    assert main(["evaluate", str(test), "--checkpoint", str(bundle), "--out", str(out), *extra]) == 2
    assert said in one_error_line(capsys)
    assert not out.exists()
