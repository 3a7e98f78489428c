"""Every `cosim` command the README and the docs show runs as written, from a checkout's root or
from another folder, with its relative paths resolved where a user expects them.

The commands are read from the documents, not copied here, so a new or changed example is tested
as soon as it is written. Each runs with its own arguments and relative paths; only its cost is
cut: the embedded scenarios it names are swapped for a short grid_small with learning on, seed
lists for their first seed, automatic seeding for at most three. A command this module cannot make
affordable fails the test, naming it, so whoever documents it adds a rule here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tiny_inputs import tiny_osm

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$|=[A-Z][A-Z_]*$|\||\[|\.\.\.")
FENCE = re.compile(r"^\s*```(\w*)\s*$")  # also indented in a list item
INLINE = re.compile(r"`(cosim [^`]+)`")

SHORT_LEARNING = ["learning.enabled=true", "learning.data.frame_stride=4", "duration_s=40"]
ONBOARDING = ["duration_s=60", "learning.enabled=true", "clients.count=3", "scheduling.per_round=2",
              "aggregation.round_deadline_s=10", "learning.data.synthetic.segments=5",
              "learning.data.synthetic.frames=2", "learning.data.clients=3",
              "learning.data.heldout_segments=2", "learning.local.batch_size=2",
              "onboarding.arriving_tasks=[det2d]", "onboarding.methods=[FedAdapt]",
              "onboarding.rounds=2", "onboarding.pretrain_rounds=2"]
# An embedded scenario named by a document -> the affordable stand-in and its settings.
STAND_INS = {
    "scenarios/sf_downtown.yaml": SHORT_LEARNING,
    "scenarios/sf_downtown_drift.yaml": SHORT_LEARNING,
    "scenarios/sf_downtown_sparse.yaml": SHORT_LEARNING,
    "scenarios/grid_small.yaml": SHORT_LEARNING,
    "scenarios/task_onboarding.yaml": ONBOARDING,
}
# A scenario a `cosim new` earlier in the same block wrote: keep it, run it briefly.
NEW_SCENARIO_SETTINGS = ["duration_s=20", "mobility.warmup_s=60"]
CAPPED_LISTS = ("--seeds", "--data-seeds", "--training-seeds")
RUNNING = {"run", "compare", "onboarding"}


@dataclass(frozen=True)
class DocCommand:
    where: str  # document:line
    argv: tuple[str, ...]  # after "cosim"

    def __str__(self) -> str:
        return f"{self.where}: cosim {shlex.join(self.argv)}"


def _name(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _complete(argv: list[str]) -> bool:
    """A command with a placeholder (SCENARIO, DIR, a|b, [--opt]) is a synopsis, not an example."""
    return bool(argv) and not any(PLACEHOLDER.search(arg) for arg in argv)


def _fenced_blocks(path: Path) -> list[list[DocCommand]]:
    blocks: list[list[DocCommand]] = []
    lines = path.read_text().splitlines()
    language, current, pending, start = None, [], "", 0
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if fence:
            if language is None:
                language, current = fence.group(1), []
            else:
                if current:
                    blocks.append(current)
                language = None
            continue
        if language not in ("bash", "sh", "console"):
            continue
        text = line.split(" #")[0].rstrip() if not line.lstrip().startswith("#") else ""
        text = text.strip().removeprefix("$ ")
        if not pending:
            start = number
        pending += " " + text.rstrip("\\").strip()
        if text.endswith("\\"):
            continue
        words, pending = shlex.split(pending), ""
        if words[:1] == ["cosim"] and _complete(words[1:]):
            current.append(DocCommand(f"{_name(path)}:{start}", tuple(words[1:])))
    return blocks


def _inline_commands(path: Path) -> list[list[DocCommand]]:
    """Commands in `code spans` of the prose, also where a span wraps over two lines."""
    found, text = [], path.read_text()
    prose = "\n".join("" if FENCE.match(line) else line for line in text.splitlines())
    for match in INLINE.finditer(prose.replace("\n", " ")):
        words = shlex.split(match.group(1))
        # an example names its input; `cosim run --out` in prose names an option
        if any("/" in w or w.endswith(".yaml") for w in words[1:]) and _complete(words[1:]):
            line = prose.count("\n", 0, match.start()) + 1
            found.append([DocCommand(f"{_name(path)}:{line}", tuple(words[1:]))])
    return found


def documented_blocks() -> list[list[DocCommand]]:
    """Each fenced block's commands (run in order, in one folder) and each inline command alone."""
    blocks = []
    for document in DOCUMENTS:
        blocks += _fenced_blocks(document) + _inline_commands(document)
    # Each distinct command runs once: a block whose every command (seed lists cut as they are
    # run) an earlier block already runs is left out, wherever the documents repeat it.
    kept, seen = [], set()
    for block in blocks:
        keys = {_key(c.argv) for c in block}
        if keys - seen:
            kept.append(block)
            seen |= keys
    return kept


def _key(argv: tuple[str, ...]) -> tuple[str, ...]:
    """A command as it is run: its seed lists cut to their first seed."""
    return tuple(_cap_list(a) if i and argv[i - 1] in CAPPED_LISTS and a != "auto" else a
                 for i, a in enumerate(argv))


def _cap_list(value: str) -> str:
    return value.split(",")[0]


def affordable(command: DocCommand, written: set[str], repo_prefix: str) -> list[str]:
    """The command with its cost cut and the checkout's paths seen from the working folder."""
    argv, settings = list(command.argv), []
    verb = argv[0]
    for i, arg in enumerate(argv):
        if arg in STAND_INS:
            argv[i], settings = "scenarios/grid_small.yaml", STAND_INS[arg]
        elif arg in written:
            settings = NEW_SCENARIO_SETTINGS
        elif i and argv[i - 1] in CAPPED_LISTS and arg != "auto":
            argv[i] = _cap_list(arg)
        elif i and argv[i - 1] == "--max-seeds":
            argv[i] = "3"
    # the command's own settings win where they replace a whole section (`--set learning=null`)
    own = [argv[i + 1].split("=")[0] for i, a in enumerate(argv[:-1]) if a == "--set"]
    settings = [s for s in settings if not any(s.startswith(key + ".") for key in own)]
    if verb in RUNNING and not settings:
        raise AssertionError(f"{command}: no rule makes this affordable; add one to {__file__}")
    argv = [repo_prefix + a if a.startswith("scenarios/") else a for a in argv]
    return [*argv, *(x for s in settings for x in ("--set", s)), *(["--quiet"] if verb == "run" else [])]


def _prepare(command: DocCommand, cwd: Path) -> None:
    """Inputs a command expects the user to have: an OSM extract for `cosim new --osm`."""
    argv = command.argv
    if "--osm" in argv:
        tiny_osm(cwd / argv[argv.index("--osm") + 1])


def _outputs(command: DocCommand) -> list[str]:
    argv = command.argv
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--out", "--dir", ">")]


def _redirected(argv: list[str]) -> tuple[list[str], str | None]:
    """`cosim schema > FILE`: the command, and the file its standard output goes to."""
    if ">" not in argv:
        return argv, None
    at = argv.index(">")
    assert at == len(argv) - 2, f"one `> FILE` at the end only: {argv}"
    return argv[:at], argv[at + 1]


def _run_block(block: list[DocCommand], cwd: Path, repo_prefix: str) -> None:
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    written: set[str] = set()
    for command in block:
        _prepare(command, cwd)
        argv, stdout_file = _redirected(affordable(command, written, repo_prefix))
        done = subprocess.run([sys.executable, "-m", "cosim.cli", *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n(ran: cosim {shlex.join(argv)} in {cwd})\n" \
                                     f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        if stdout_file is not None:
            assert done.stdout.strip(), f"{command}: printed nothing for {stdout_file}"
            (cwd / stdout_file).write_text(done.stdout)
        outputs = _outputs(command) or (["runs"] if command.argv[0] == "run" else [])
        for out in outputs:
            assert (cwd / out).exists(), f"{command}: {out} not made in the working folder {cwd}"
        if command.argv[0] == "new":
            folder = Path(command.argv[command.argv.index("--dir") + 1]) if "--dir" in command.argv \
                else Path(".")
            written.add(str(folder / f"{command.argv[1]}.yaml"))


BLOCKS = documented_blocks()


def test_the_documents_show_commands_this_module_reads():
    """The reader finds the README's examples, and none is a synopsis with placeholders."""
    verbs = {c.argv[0] for block in BLOCKS for c in block}
    assert {"run", "compare", "new", "validate", "onboarding"} <= verbs, verbs
    assert not any("SCENARIO" in c.argv for block in BLOCKS for c in block)


def _folders(blocks: list[list[DocCommand]]) -> list[str]:
    """One working folder per block, alternating per verb: each block runs once, and a verb the
    documents show in two blocks or more runs from a checkout's root and from another folder."""
    seen: dict[str, int] = {}
    folders = []
    for block in blocks:
        verb = next((c.argv[0] for c in block if c.argv[0] in RUNNING), block[0].argv[0])
        folders.append(("root", "elsewhere")[seen.get(verb, 0) % 2])
        seen[verb] = seen.get(verb, 0) + 1
    return folders


FOLDERS = _folders(BLOCKS)


def test_running_verbs_are_shown_from_both_folders():
    """`run` and `compare` appear in several blocks, so each is run from both folders."""
    for verb in ("run", "compare"):
        used = {f for b, f in zip(BLOCKS, FOLDERS, strict=True) if b[0].argv[0] == verb}
        assert used == {"root", "elsewhere"}, (verb, used)


@pytest.mark.parametrize(("block", "folder"), list(zip(BLOCKS, FOLDERS, strict=True)),
                         ids=[f"{b[0].where.replace(':', '_L')}-{f}"
                              for b, f in zip(BLOCKS, FOLDERS, strict=True)])
def test_documented_command_runs(block, folder, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "scenarios", checkout / "scenarios",
                    ignore=shutil.ignore_patterns("*.pyc", "__pycache__"))
    if folder == "root":
        cwd, prefix = checkout, ""
    else:
        cwd = tmp_path / "home" / "work"
        cwd.mkdir(parents=True)
        prefix = os.path.relpath(checkout, cwd) + "/"
    _run_block(block, cwd, prefix)
    assert not list((checkout / "scenarios").rglob("runs")), "outputs landed beside the scenarios"
