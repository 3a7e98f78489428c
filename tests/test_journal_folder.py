"""A complete run's training journal goes, file by file: only the entries it wrote; a file anyone
else put in its folder stays, and the folder with it."""

from __future__ import annotations

from cosim.learning.federated.journal import TrainingJournal


def _journal(run_dir):
    folder = run_dir / "checkpoint"
    folder.mkdir(parents=True)
    for name in ("train-000000.pt", "train-000001.pt", "train-000002.tmp"):
        (folder / name).write_bytes(b"entry")
    return folder


def test_a_complete_runs_journal_takes_only_its_own_entries(tmp_path):
    folder = _journal(tmp_path / "run")
    mine = tmp_path / "thesis.tex"
    mine.write_text("mine")
    (folder / "notes.txt").write_text("notes")
    (folder / "sub").mkdir()
    (folder / "sub" / "keep.txt").write_text("keep")
    (folder / "train-000002.pt").symlink_to(mine)  # an entry's name, but no file cosim wrote
    TrainingJournal(tmp_path / "run", "scenario").remove()
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == [
        "notes.txt", "sub", "sub/keep.txt", "train-000002.pt"]
    assert mine.read_text() == "mine"


def test_a_journal_of_its_own_entries_only_goes_whole(tmp_path):
    folder = _journal(tmp_path / "run")
    TrainingJournal(tmp_path / "run", "scenario").remove()
    assert not folder.exists()
