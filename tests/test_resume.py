"""cosim run --resume: an interrupted or killed run finishes with traces byte-identical to an
uninterrupted one, training no journaled update again."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from layers import ctrl_c_at
from typer.testing import CliRunner

from cosim.cli import app
from cosim.errors import InputError
from cosim.learning.federated.journal_checks import seal
from cosim.runner import run_scenario
from cosim.scenario_loader import load_scenario

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
GRID = REPO / "scenarios" / "grid_small.yaml"
SETTINGS = ["duration_s=60", "aggregation.max_rounds=4", "learning.enabled=true",
            "clients.count=3", "scheduling.per_round=2", "aggregation.round_deadline_s=10",
            "aggregation.eval_every_rounds=1", "learning.data.synthetic.segments=5",
            "learning.data.synthetic.frames=2", "learning.data.clients=3",
            "learning.data.heldout_segments=2", "learning.local.batch_size=2",
            "learning.balancing.method=gradnorm", "output.checkpoint=true",
            # the same torch threads in this process and in the killed one: equal float rounding
            "learning.local.threads=1"]


def _traces(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def _sets() -> list[str]:
    return [a for s in SETTINGS for a in ("--set", s)]


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("whole") / "run"
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(out), "-q", *_sets()])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    journal = info["summary"]["learning"]["journal"]
    assert journal["calls"] >= 3 and journal["replayed"] == 0
    assert not (out / "checkpoint").exists()  # a complete run keeps no journal
    return out, info


_StopAt = ctrl_c_at(35.0)


def test_resume_after_an_interrupt_is_byte_identical(whole, tmp_path):
    out, info = whole
    sc = load_scenario(GRID, SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(sc, source=GRID, out=tmp_path / "r", quiet=True, extra_layers=[_StopAt])
    journaled = len(list((tmp_path / "r.partial" / "checkpoint").glob("train-*.pt")))
    assert 0 < journaled < info["summary"]["learning"]["journal"]["calls"]

    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 0, result.output
    # the last entry is trained again: nothing after it vouches for what it holds
    assert f"{journaled - 1} training calls from the journal" in result.output
    assert _traces(tmp_path / "r") == _traces(out)
    resumed = json.loads((tmp_path / "r" / "run.json").read_text())
    assert resumed["summary"]["learning"]["journal"] == {
        "calls": info["summary"]["learning"]["journal"]["calls"], "replayed": journaled - 1}
    assert not (tmp_path / "r.partial").exists()


def test_resume_after_sigkill_is_byte_identical(whole, tmp_path):
    out, _ = whole
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "run", str(GRID), "--out",
                             str(tmp_path / "k"), "-q", *_sets()], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "k.partial" / "checkpoint"
    deadline = time.monotonic() + 300
    while not list(journal.glob("train-*.pt")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(random.Random(7).uniform(0.0, 1.0))  # a seeded random instant after the first entry
    assert proc.poll() is None, "the run ended before the kill: lengthen it"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    listed = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert "crashed" in listed.output

    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "k.partial"), "-q"])
    assert result.exit_code == 0, result.output
    assert _traces(tmp_path / "k") == _traces(out)


def test_resume_refuses_what_it_cannot_resume(whole, tmp_path):
    out, _ = whole
    runner = CliRunner()
    complete = runner.invoke(app, ["run", "--resume", str(out)])
    assert complete.exit_code == 2 and "nothing to resume" in complete.output
    nothing = runner.invoke(app, ["run", "--resume", str(tmp_path / "none")])
    assert nothing.exit_code == 2 and "no interrupted run" in nothing.output
    both = runner.invoke(app, ["run", str(GRID), "--resume", str(out)])
    assert both.exit_code == 2 and "drop SCENARIO" in both.output


def test_a_journal_of_another_run_is_refused(whole, tmp_path):
    sc = load_scenario(GRID, SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(sc, source=GRID, out=tmp_path / "r", quiet=True, extra_layers=[_StopAt])
    info_path = tmp_path / "r.partial" / "run.json"
    info = json.loads(info_path.read_text())
    info["scenario"]["seed"] = info["scenario"]["seed"] + 1  # another run's scenario
    info_path.write_text(json.dumps(info))
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 2, result.output
    assert "the journal is not this scenario's run" in result.output.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """An interrupted run with a journal of several entries (copied by each test that edits it)."""
    out = tmp_path_factory.mktemp("interrupted") / "r"
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(GRID, SETTINGS), source=GRID, out=out, quiet=True,
                     extra_layers=[_StopAt])
    partial = Path(str(out) + ".partial")
    assert len(list((partial / "checkpoint").glob("train-*.pt"))) >= 2
    return partial


def _nan_filled(path: Path) -> None:
    entry = torch.load(path, weights_only=True)
    for update in entry["updates"]:
        for tensor in update["modules"].values():
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))
    torch.save(entry, path)


def _other_client(path: Path) -> None:
    entry = torch.load(path, weights_only=True)
    entry["updates"][0]["client"] += 100
    torch.save(entry, path)


def _changed(change):
    """An entry whose first update (or balancer) ``change`` edited in place and saved."""
    def tamper(path: Path) -> None:
        entry = torch.load(path, weights_only=True)
        change(entry, entry["updates"][0], next(iter(entry["updates"][0]["modules"])))
        torch.save(entry, path)
    return tamper


TAMPERING = {
    "wrong_shape": _changed(lambda e, u, k: u["modules"].update({k: torch.zeros(3, 3)})),
    "unknown_module": _changed(lambda e, u, k: u["modules"].update({"peft.none.w": torch.zeros(3)})),
    "wrong_dtype": _changed(lambda e, u, k: u["modules"].update({k: u["modules"][k].double()})),
    "absurd_values": _changed(lambda e, u, k: u["modules"][k].fill_(1e30)),
    "plausible_values": _changed(lambda e, u, k: u["modules"][k].mul_(1.001)),
    "balancer_values": _changed(
        lambda e, u, k: next(iter(e["balancers"].values()))["weights"].mul_(2.0)),
    "stats_changed": _changed(lambda e, u, k: u["stats"].update(steps=u["stats"]["steps"] + 1)),
    "seal_removed": _changed(lambda e, u, k: e.pop("seal")),
    "earlier_layout": _changed(lambda e, u, k: (e.pop("scenario"), e.pop("start_balancers"))),
    "absurd_weight": _changed(lambda e, u, k: u.update(weight=1e300)),
    "zero_weight": _changed(lambda e, u, k: u.update(weight=0.0)),
    "unknown_stat": _changed(lambda e, u, k: u["stats"].update(other=1)),
    "balancer_shape": _changed(
        lambda e, u, k: next(iter(e["balancers"].values())).update(weights=torch.zeros(3, 3))),
    "balancer_length": _changed(
        lambda e, u, k: next(iter(e["balancers"].values())).update(
            {n: torch.zeros(9, dtype=torch.float64) for n in ("weights", "initial_losses", "_m", "_v",
                                                               "_steps")})),
    "nan_filled": _nan_filled,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "garbage": lambda p: p.write_bytes(bytes(range(256)) * 64),
    "empty": lambda p: p.write_bytes(b""),
    "not_an_entry": lambda p: torch.save({"weights": torch.ones(3)}, p),
    "other_client": _other_client,
    "removed": lambda p: p.unlink(),  # a gap: later entries would answer the wrong calls
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_a_damaged_journal_entry_is_refused_before_the_run_resumes(interrupted, tmp_path, how):
    partial = tmp_path / "r.partial"
    subprocess.run(["cp", "-r", str(interrupted), str(partial)], check=True)
    entries = sorted((partial / "checkpoint").glob("train-*.pt"))
    TAMPERING[how](entries[0] if how == "removed" else entries[-1])
    before = {p.name: p.stat().st_mtime_ns for p in partial.rglob("*")}
    result = CliRunner().invoke(app, ["run", "--resume", str(partial), "-q"])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "journal entry damaged" in lines[0], result.output
    if how != "removed":  # the entry that is wrong, so that the advice removes it
        assert entries[-1].name in lines[0], lines[0]
    assert {p.name: p.stat().st_mtime_ns for p in partial.rglob("*")} == before


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _other_keys(partial: Path) -> None:
    entry_path = sorted((partial / "checkpoint").glob("train-*.pt"))[1]
    entry = torch.load(entry_path, weights_only=True)
    entry["keys"][0][2] = "0" * 32  # well-formed: only replaying the call shows it differs
    torch.save(entry, entry_path)


def _other_seed(partial: Path) -> None:
    info = json.loads((partial / "run.json").read_text())
    seed = info["seed"] + 1  # consistently edited: the entries' scenario digest shows it
    info = {**info, "seed": seed, "scenario": {**info["scenario"], "seed": seed}}
    info.pop("seeds")
    (partial / "run.json").write_text(json.dumps(info))


@pytest.mark.parametrize("edit", [_other_keys, _other_seed])
def test_a_resume_refused_while_replaying_leaves_the_attempt_as_it_was(interrupted, tmp_path, edit):
    """A journal that differs from what training now asks for is found mid-run: the attempt
    is put back untouched (run.json still interrupted, its incomplete traces kept)."""
    partial = tmp_path / "r.partial"
    subprocess.run(["cp", "-r", str(interrupted), str(partial)], check=True)
    edit(partial)
    before = _digest(partial)
    result = CliRunner().invoke(app, ["run", "--resume", str(partial), "-q"])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "not this scenario's run" in lines[0], result.output
    assert ("train-000001.pt" if edit is _other_keys else "train-000000.pt") in lines[0]
    assert _digest(partial) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.partial"]


def test_an_edited_seed_is_refused_before_the_run_resumes(interrupted, tmp_path):
    partial = tmp_path / "r.partial"
    subprocess.run(["cp", "-r", str(interrupted), str(partial)], check=True)
    info = json.loads((partial / "run.json").read_text())
    info["scenario"]["seed"] += 1
    (partial / "run.json").write_text(json.dumps(info))
    before = {p.name: p.stat().st_mtime_ns for p in partial.rglob("*")}
    result = CliRunner().invoke(app, ["run", "--resume", str(partial), "-q"])
    assert result.exit_code == 2 and "scenario.seed" in result.output, result.output
    assert {p.name: p.stat().st_mtime_ns for p in partial.rglob("*")} == before


def test_resume_keeps_the_torch_threads_of_the_interrupted_run(tmp_path):
    from cosim.runner import resume_target

    sc = load_scenario(GRID, [*[s for s in SETTINGS if not s.startswith("learning.local.threads")],
                              "learning.local.threads=null"])  # the machine's: recorded, kept
    partial = tmp_path / "r.partial"
    partial.mkdir()
    (partial / "run.json").write_text(json.dumps({
        "status": "interrupted", "scenario": sc.model_dump(mode="json"), "scenario_file": str(GRID),
        "torch_threads": 3}))
    resumed, out, source = resume_target(tmp_path / "r")
    assert resumed.learning.local.threads == 3 and out == tmp_path / "r" and source == GRID


def test_resume_keeps_the_precision_the_run_started_in(tmp_path, monkeypatch):
    from cosim.runner import resume_target

    sc = load_scenario(GRID, [*SETTINGS, "learning.precision=auto"])
    partial = tmp_path / "r.partial"
    partial.mkdir()
    (partial / "run.json").write_text(json.dumps({
        "status": "interrupted", "scenario": sc.model_dump(mode="json"), "scenario_file": str(GRID),
        "learning_precision": "fp32"}))
    resumed, _, _ = resume_target(tmp_path / "r")  # auto that resolved to fp32 there: fp32 here too
    assert resumed.learning.precision == "fp32"
    info = json.loads((partial / "run.json").read_text())
    (partial / "run.json").write_text(json.dumps({**info, "learning_precision": "bf16"}))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="computed in bf16"):  # never a silent switch to fp32
        resume_target(tmp_path / "r")


def test_a_journal_of_the_default_balancing_resumes(tmp_path):
    """Balancers that never saw a loss keep NaN initial losses ("not seen yet"): a journal
    holding them is whole, and resumes."""
    settings = [s for s in SETTINGS if not s.startswith("learning.balancing")]
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(GRID, settings), source=GRID, out=tmp_path / "r", quiet=True,
                     extra_layers=[_StopAt])
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "r.partial"), "-q"])
    assert result.exit_code == 0, result.output


def _resealed(entry: dict, path: Path) -> None:
    """Saved with a seal recomputed, as by an editor who knows the journal's layout."""
    entry["seal"] = seal(entry["updates"], entry["balancers"])
    torch.save(entry, path)


def test_a_genuine_journal_of_extreme_training_resumes(tmp_path):
    """A learning rate far beyond any sensible one trains finite values far beyond any sensible
    scale; the journal holding them is genuine and resumes to the uninterrupted run's traces."""
    settings = [*SETTINGS, "learning.local.lr=1000", "learning.balancing.gradnorm_lr=1000"]
    whole = tmp_path / "whole"
    result = CliRunner().invoke(app, ["run", str(GRID), "--out", str(whole), "-q",
                                      *[a for s in settings for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(GRID, settings), source=GRID, out=tmp_path / "r", quiet=True,
                     extra_layers=[_StopAt])
    largest = max(float(t.abs().max()) for p in (tmp_path / "r.partial" / "checkpoint").glob("*.pt")
                  for u in torch.load(p, weights_only=True)["updates"]
                  for t in u["modules"].values() if t.is_floating_point())
    assert largest > 1e6  # what a magnitude cap on entries would refuse
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "r.partial"), "-q"])
    assert result.exit_code == 0, result.output
    assert _traces(tmp_path / "r") == _traces(whole)


def _doubled_weight(partial: Path) -> str:
    path = sorted((partial / "checkpoint").glob("train-*.pt"))[1]
    entry = torch.load(path, weights_only=True)
    entry["updates"][0]["weight"] *= 2  # still a whole number of samples: not this client's
    _resealed(entry, path)
    return "train-000001.pt: --resume: journal entry damaged: client"


def _shifted_update(partial: Path) -> str:
    path = sorted((partial / "checkpoint").glob("train-*.pt"))[0]
    entry = torch.load(path, weights_only=True)
    for tensor in entry["updates"][0]["modules"].values():
        if tensor.is_floating_point():
            tensor.add_(0.5)  # well-formed: the next call starts from another model
    _resealed(entry, path)
    return "from train-000000.pt on"


def _scaled_balancer(partial: Path) -> str:
    path = sorted((partial / "checkpoint").glob("train-*.pt"))[0]
    entry = torch.load(path, weights_only=True)
    for state in entry["balancers"].values():
        state["weights"].mul_(3.0)  # well-formed: the next call finds other balancers
    _resealed(entry, path)
    return "from train-000000.pt on"


@pytest.mark.parametrize("edit", [_doubled_weight, _shifted_update, _scaled_balancer])
def test_a_changed_entry_is_named_and_its_advice_removes_it(interrupted, tmp_path, edit):
    """Edits that recompute the seal: an update whose weight is not its client's samples is
    refused at that entry; a changed update or balancer is found when the next call starts
    elsewhere (its key covers the start state and every client's balancer), and the refusal
    names the changed entry as the first suspect (removing from there trains it again)."""
    partial = tmp_path / "r.partial"
    subprocess.run(["cp", "-r", str(interrupted), str(partial)], check=True)
    says = edit(partial)
    before = _digest(partial)
    result = CliRunner().invoke(app, ["run", "--resume", str(partial), "-q"])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and says in lines[0], lines
    assert _digest(partial) == before


def _first_update(change):
    """An edit of the first update of an entry, resealed with cosim's own ``seal``."""
    def edit(path: Path) -> None:
        entry = torch.load(path, weights_only=True)
        change(entry["updates"][0])
        _resealed(entry, path)
    return edit


def _stat(name, value):
    return _first_update(lambda u: u["stats"].update({name: value}))


def _per_task(name, value):
    return _first_update(lambda u: u["stats"][name].update({next(iter(u["stats"][name])): value}))


RESEALED = {  # what training never writes, sealed as if it had
    "loss_not_a_mapping": _stat("last_epoch_loss", "boom"),
    "loss_nan": _per_task("last_epoch_loss", float("nan")),
    "loss_text": _per_task("first_epoch_loss", "1.0"),
    "samples_fractional": _per_task("samples_per_task", 2.5),
    "negative_steps": _stat("steps", -5),
    "huge_steps": _stat("steps", 10**400),
    "bool_steps": _stat("steps", True),
    "flops_nan": _stat("flops_per_sample", float("nan")),
    "modules_not_names": _stat("modules", 12),
    "modules_unknown": _stat("modules", ["peft.none"]),
    "negative_task_weight": _per_task("task_weights", -1e9),
    "dropped_module": _first_update(lambda u: u["modules"].pop(next(iter(u["modules"])))),
    "dropped_from_both": _first_update(lambda u: (
        [u["modules"].pop(k) for k in list(u["modules"]) if k.startswith(u["stats"]["modules"][0] + ".")],
        u["stats"]["modules"].pop(0))),
}


@pytest.mark.parametrize("how", sorted(RESEALED))
@pytest.mark.parametrize("which", [0, -1])
def test_a_resealed_entry_training_cannot_write_is_refused(interrupted, tmp_path, how, which):
    """Statistics of another type or range than training writes, or an update lacking a module
    its client trains, are refused in one line naming the entry (never an internal error
    mid-run), and the attempt is left as it was."""
    partial = tmp_path / "r.partial"
    subprocess.run(["cp", "-r", str(interrupted), str(partial)], check=True)
    entry = sorted((partial / "checkpoint").glob("train-*.pt"))[which]
    RESEALED[how](entry)
    before = _digest(partial)
    result = CliRunner().invoke(app, ["run", "--resume", str(partial), "-q"])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "journal entry damaged" in lines[0], result.output
    assert entry.name in lines[0], lines[0]
    assert _digest(partial) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.partial"]


def _scaled_last(partial: Path) -> None:
    path = sorted((partial / "checkpoint").glob("train-*.pt"))[-1]
    entry = torch.load(path, weights_only=True)
    for update in entry["updates"]:
        for tensor in update["modules"].values():
            if tensor.is_floating_point():
                tensor.mul_(1.001)  # plausible values, sealed with cosim's own seal
    for state in entry["balancers"].values():
        state["weights"].mul_(3.0)
    _resealed(entry, path)


def test_an_edited_last_entry_changes_nothing(whole, tmp_path):
    """The last entry is trained again, not replayed: an edit to it, resealed, leaves the
    resumed run's traces those of the uninterrupted run."""
    out, _ = whole
    sc = load_scenario(GRID, SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(sc, source=GRID, out=tmp_path / "r", quiet=True, extra_layers=[_StopAt])
    _scaled_last(tmp_path / "r.partial")
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 0, result.output
    assert _traces(tmp_path / "r") == _traces(out)


def _lr(partial: Path, lr: float) -> None:
    info = json.loads((partial / "run.json").read_text())
    info["scenario"]["learning"]["local"]["lr"] = lr
    (partial / "run.json").write_text(json.dumps(info))


def test_a_journal_of_other_settings_is_refused_before_the_run_resumes(interrupted, tmp_path):
    """Entries record the scenario they were trained for: a run.json whose training settings
    were edited since, or entries copied from a run of other settings (whose keys would all
    match: every call starts from the same initial model), are refused before the folder is
    touched."""
    edited = tmp_path / "edited" / "r.partial"
    edited.parent.mkdir()
    subprocess.run(["cp", "-r", str(interrupted), str(edited)], check=True)
    _lr(edited, 0.5)
    other = tmp_path / "other" / "r"
    other.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):  # the same scenario at another learning rate
        run_scenario(load_scenario(GRID, [*SETTINGS, "learning.local.lr=0.5"]), source=GRID,
                     out=other, quiet=True, extra_layers=[_StopAt])
    mixed = tmp_path / "mixed" / "r.partial"
    mixed.parent.mkdir()
    subprocess.run(["cp", "-r", str(interrupted), str(mixed)], check=True)
    subprocess.run(["rm", "-r", str(mixed / "checkpoint")], check=True)
    subprocess.run(["cp", "-r", str(other) + ".partial/checkpoint", str(mixed)], check=True)
    for partial in (edited, mixed):
        before = _digest(partial)
        result = CliRunner().invoke(app, ["run", "--resume", str(partial), "-q"])
        assert result.exit_code == 2, result.output
        lines = [x for x in result.output.splitlines() if x.strip()]
        assert len(lines) == 1 and "train-000000.pt" in lines[0], result.output
        assert "another scenario or other training settings" in lines[0], lines[0]
        assert _digest(partial) == before
        assert sorted(p.name for p in partial.parent.iterdir()) == ["r.partial"]


@pytest.mark.parametrize("edit", ["threads", "model_name"])
def test_a_run_json_edited_since_is_refused_before_the_run_resumes(interrupted, tmp_path, edit):
    """The torch threads change what training computes (its float rounding): an edited count is
    another run's; an edited model name is one line naming it, not an internal error."""
    partial = tmp_path / "r.partial"
    subprocess.run(["cp", "-r", str(interrupted), str(partial)], check=True)
    info = json.loads((partial / "run.json").read_text())
    if edit == "threads":
        info["scenario"]["learning"]["local"]["threads"] = 2
    else:
        info["scenario"]["learning"]["model"]["name"] = "foo"
    (partial / "run.json").write_text(json.dumps(info))
    before = _digest(partial)
    result = CliRunner().invoke(app, ["run", "--resume", str(partial), "-q"])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    says = ("another scenario or other training settings" if edit == "threads"
            else "scenario.learning.model.name")
    assert len(lines) == 1 and says in lines[0], result.output
    assert _digest(partial) == before


@pytest.mark.parametrize("how", ["copied", "linked"])
def test_data_swapped_under_the_run_s_data_folder_is_refused_on_resume(tmp_path, how):
    """Entries record the files the run trains from, not only their folder's name: also files
    reached through links, whose targets change."""
    for name, seed in (("a", "0"), ("b", "7")):
        made = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / name), "--segments",
                                        "5", "--frames", "2", "--seed", seed])
        assert made.exit_code == 0, made.output
    data = tmp_path / "data"
    if how == "copied":
        shutil.copytree(tmp_path / "a", data)
    else:  # every file a link into "current", itself a link to one of the two sets
        (tmp_path / "current").symlink_to(tmp_path / "a")
        for file in (p for p in (tmp_path / "a").rglob("*") if p.is_file()):
            (data / file.relative_to(tmp_path / "a")).parent.mkdir(parents=True, exist_ok=True)
            (data / file.relative_to(tmp_path / "a")).symlink_to(
                tmp_path / "current" / file.relative_to(tmp_path / "a"))
    settings = [s for s in SETTINGS if not s.startswith("learning.data.synthetic")]
    settings.append(f"learning.data.root={data}")
    with pytest.raises(KeyboardInterrupt):
        run_scenario(load_scenario(GRID, settings), source=GRID, out=tmp_path / "r", quiet=True,
                     extra_layers=[_StopAt])
    if how == "copied":
        shutil.rmtree(data)
        shutil.copytree(tmp_path / "b", data)
    else:
        (tmp_path / "current").unlink()
        (tmp_path / "current").symlink_to(tmp_path / "b")
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "r.partial"), "-q"])
    assert result.exit_code == 2, result.output
    assert "another scenario or other training settings" in result.output, result.output
