"""Destinations the file system cannot use are bad input, said in one line (exit 2) before
anything is written: a link to nothing or a loop of links as the destination or a folder above
it, a path too long to look up, and a network or routes `cosim new` would hand every run broken."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app

pytestmark = pytest.mark.slow  # SUMO loads and scenario checks: outside the unit loop

GRID = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
QUICK = ["--set", "duration_s=20", "--set", "learning=null"]


def _cosim(*args) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def _links(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    return {"dangling": tmp_path / "dangling", "loop": tmp_path / "loop1"}


COMMANDS = {
    "run": lambda d: ["run", GRID, "--out", d, *QUICK],
    "run_below": lambda d: ["run", GRID, "--out", d / "r", *QUICK],
    "compare": lambda d: ["compare", GRID, "--out", d, "--policies", "random", "--seeds", "0",
                          "--set", "learning.enabled=true", "--set", "duration_s=20"],
    "pretrain": lambda d: ["pretrain", "--out", d / "x.pt", "--steps", "1"],
    "synth": lambda d: ["data", "synth", "--out", d / "x", "--segments", "1", "--frames", "1"],
}


@pytest.mark.parametrize("link", ["dangling", "loop"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_broken_link_as_destination_is_refused_before_anything(tmp_path, link, command):
    target = _links(tmp_path)[link]
    before = sorted(os.listdir(tmp_path))
    code, lines = _cosim(*COMMANDS[command](target))
    assert code == 2 and len(lines) == 1, lines
    assert "link to nothing" in lines[0]
    assert sorted(os.listdir(tmp_path)) == before  # no staging folder, nothing written


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_writes_into_a_folder_of_the_cache(tmp_path, monkeypatch, command):
    """A checkpoint written over the cached backbone (``pretrained/KEY/model.pt``) would train
    later runs unsaid: every destination in a cache kind's folder is refused in one line."""
    cache = tmp_path / "cache"
    entry = cache / "pretrained" / "0123abcd"
    entry.mkdir(parents=True)
    monkeypatch.setenv("COSIM_CACHE_DIR", str(cache))
    code, lines = _cosim(*COMMANDS[command](entry / "out"))
    assert code == 2 and len(lines) == 1, lines
    assert "a folder of cosim's cache" in lines[0], lines
    assert list(entry.iterdir()) == []


LONG = "/".join(["d" * 200] * 30)


@pytest.mark.parametrize("args", [["pretrain", "--out", f"{LONG}/x.pt", "--steps", "1"],
                                  ["status", LONG], ["data", "check", LONG]],
                         ids=["pretrain", "status", "data_check"])
def test_a_path_too_long_to_look_up_is_one_line(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    code, lines = _cosim(*args)
    assert code == 2 and len(lines) == 1, lines
    assert "internal" not in lines[0]


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    from cosim.mobility.build import network_file, prepare_inputs
    from cosim.scenario_loader import load_scenario

    sc = load_scenario(GRID)
    return Path(network_file(prepare_inputs(sc.mobility, sc.seed, sc.duration_s)))


def test_new_refuses_a_truncated_network_before_its_folder(tmp_path, network):
    cut = tmp_path / "cut.net.xml"
    cut.write_bytes(network.read_bytes()[:5000])
    code, lines = _cosim("new", "city", "--net", cut, "--dir", tmp_path / "n")
    assert code == 2 and len(lines) == 1 and "--net" in lines[0], lines
    assert not (tmp_path / "n").exists()


def test_new_refuses_routes_over_a_missing_edge_before_its_folder(tmp_path, network):
    routes = tmp_path / "bad.rou.xml"
    routes.write_text('<routes><vehicle id="v" depart="0"><route edges="nosuchedge"/></vehicle>'
                      "</routes>\n")
    code, lines = _cosim("new", "city", "--net", network, "--routes", routes, "--dir", tmp_path / "n")
    assert code == 2 and len(lines) == 1 and "--routes" in lines[0], lines
    assert not (tmp_path / "n").exists()
    code, lines = _cosim("new", "city", "--net", network, "--dir", tmp_path / "n")
    assert code == 0 and (tmp_path / "n" / "city.yaml").is_file(), lines


@pytest.mark.parametrize("name", ["a\nb", "x\x1b]0;title\x07", "~/x", "~"],
                         ids=["line_break", "escape", "literal_home", "tilde"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_destination_named_with_control_characters_or_a_literal_tilde_is_refused(
        tmp_path, monkeypatch, name, command):
    monkeypatch.chdir(tmp_path)
    code, lines = _cosim(*COMMANDS[command](Path(name)))
    assert code == 2 and len(lines) == 1 and "--out" in lines[0], lines
    assert "\x1b" not in lines[0] and os.listdir(tmp_path) == []


def test_a_step_back_out_of_a_folder_that_does_not_exist_is_refused(tmp_path, monkeypatch):
    """``nothing/../r``: the system cannot look it up until ``nothing`` exists, and cosim would
    make it (creating the destination's parents), after which the path names ``r``."""
    from cosim.errors import InputError
    from cosim.run_folder import check_out_name

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="cannot step back"):
        check_out_name(Path("nothing/../r"))
    (tmp_path / "there").mkdir()
    check_out_name(Path("there/../r"))  # an existing folder: the path means r
    check_out_name(Path("../r"))


@pytest.mark.parametrize("cache", ["/proc/self", "run", "file", "link_into_run"])
def test_a_cache_folder_cosim_may_not_fill_is_refused_before_any_command(tmp_path, cache):
    """COSIM_CACHE_DIR in a kernel's virtual file system, inside a run, or a file: exit 2 and
    one line naming it, nothing written there."""
    from typer.testing import CliRunner

    from cosim.cli import app

    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text('{"status": "complete", "seed": 0, "scenario": {"name": "s"}}')
    (tmp_path / "file").write_text("mine")
    target = {"/proc/self": "/proc/self", "run": str(run / "cache"), "file": str(tmp_path / "file"),
              "link_into_run": str(tmp_path / "cache")}[cache]
    if cache == "link_into_run":  # a kind's folder of an outside cache, linked into the run
        (tmp_path / "cache").mkdir()
        (tmp_path / "cache" / "demand").symlink_to(run)
    result = CliRunner().invoke(app, ["validate", str(GRID)], env={"COSIM_CACHE_DIR": target})
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "COSIM_CACHE_DIR" in lines[0], result.output
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("kind", ["lock_link", "lock_hard_link", "lock_fifo", "entry_link"])
def test_a_cache_entry_never_writes_through_what_stands_at_its_names(tmp_path, monkeypatch, kind):
    """An entry's lock file and its folder are cosim's own names in the cache: a link, a FIFO or a
    second name of a run's file standing there is refused or left as it is, never emptied."""
    import os

    from cosim.cache import cached_folder

    monkeypatch.setenv("COSIM_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text('{"status": "complete"}')
    (tmp_path / "cache" / "demand").mkdir(parents=True)
    lock, entry = tmp_path / "cache" / "demand" / "k.lock", tmp_path / "cache" / "demand" / "k"
    if kind == "lock_link":
        lock.symlink_to(run / "run.json")
    elif kind == "lock_hard_link":
        os.link(run / "run.json", lock)
    elif kind == "lock_fifo":
        os.mkfifo(lock)
    else:
        entry.symlink_to(run)
    if kind == "lock_hard_link":  # the same file: locked, never emptied
        assert (cached_folder("demand", "k", lambda t: (t / "x").write_text("built")) / "x").is_file()
    else:
        with pytest.raises(OSError, match="cosim") as caught:
            cached_folder("demand", "k", lambda t: (t / "x").write_text("built"))
        assert caught.value.filename == str(lock if kind != "entry_link" else entry)
    assert (run / "run.json").read_text() == '{"status": "complete"}'
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]


@pytest.mark.parametrize("where", ["kind_folder", "marker"])
def test_a_remembered_check_never_writes_through_or_trusts_a_link(tmp_path, monkeypatch, where):
    """A passed check leaves a marker in the cache's checked/KIND/: a link at the kind's folder
    or at the marker's name is refused, neither written through nor taken as a pass."""
    from cosim.cache import content_key
    from cosim.input_checks import CHECK_VERSION, remembered

    monkeypatch.setenv("COSIM_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text('{"status": "complete"}')
    data = tmp_path / "data.bin"
    data.write_bytes(b"frames")
    (tmp_path / "cache" / "checked").mkdir(parents=True)
    kind = tmp_path / "cache" / "checked" / "waymo-keys"
    if where == "kind_folder":
        kind.symlink_to(run)
    else:
        kind.mkdir()
        st = data.stat()
        key = content_key([CHECK_VERSION, f"{data.resolve()}|{st.st_size}|{st.st_mtime_ns}|"
                                          f"{st.st_ctime_ns}|{st.st_ino}"])
        (kind / key).symlink_to(run / "run.json")
    checked = []
    with pytest.raises(OSError, match="a link"):
        remembered("waymo-keys", [data], lambda: checked.append(1))
    assert checked == [] and sorted(p.name for p in run.iterdir()) == ["run.json"]
    assert (run / "run.json").read_text() == '{"status": "complete"}'


def test_a_remembered_check_runs_once(tmp_path, monkeypatch):
    from cosim.input_checks import remembered

    monkeypatch.setenv("COSIM_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data.bin"
    data.write_bytes(b"frames")
    checked = []
    for _ in range(2):
        remembered("waymo-keys", [data], lambda: checked.append(1))
    assert checked == [1]


@pytest.mark.parametrize("case", ["cache_kind_on_a_run", "cache_kind_in_a_compare",
                                  "partial_staging_folder", "pretrain_file"])
def test_a_bind_mount_where_cosim_writes_is_refused_first(tmp_path, case, private_mounts):
    """A bind mount (root can make one in a private namespace) is no link, yet leads elsewhere:
    a cache kind mounted on a run, a mounted OUT.partial or a mounted --out file is refused in
    one line, exit 2, before any work, and the run it leads to is left as it was."""
    import subprocess
    import sys

    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text('{"status": "complete", "seed": 0, "scenario": {"name": "s"}}')
    cache = tmp_path / "cache"
    (cache / "networks").mkdir(parents=True)
    cosim = f'"{sys.executable}" -m cosim.cli'
    if case == "cache_kind_on_a_run":
        mount, command = (run, cache / "networks"), f'{cosim} validate "{GRID}"'
    elif case == "cache_kind_in_a_compare":  # a folder below a result folder, not one itself
        (tmp_path / "cmp" / "runs").mkdir(parents=True)
        (tmp_path / "cmp" / "compare.json").write_text("{}")
        mount, command = (tmp_path / "cmp" / "runs", cache / "networks"), f'{cosim} validate "{GRID}"'
    elif case == "partial_staging_folder":
        (tmp_path / "m.partial").mkdir()
        mount = (tmp_path / "m.partial", tmp_path / "m.partial")
        command = f'{cosim} run "{GRID}" --set duration_s=10 --set learning=null --out "{tmp_path}/m"'
    else:
        (tmp_path / "p.pt").write_bytes(b"")
        mount = (tmp_path / "p.pt", tmp_path / "p.pt")
        command = f'{cosim} pretrain --out "{tmp_path}/p.pt" --overwrite'
    script = f'mount --bind "{mount[0]}" "{mount[1]}" && {command}'
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "COSIM_CACHE_DIR": str(cache)})
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "mount" in lines[0], done.stderr
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]
    if case == "cache_kind_in_a_compare":
        assert not any((tmp_path / "cmp" / "runs").iterdir())
