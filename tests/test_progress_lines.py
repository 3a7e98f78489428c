"""Progress off a terminal: warm-up steps are reported, and the log is never silent for longer
than its period, even while one long step runs."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from cosim.progress import RunProgress, format_speedup, warmup_step


def _plain() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, width=200), buf


def test_warmup_steps_show_at_most_once_a_period():
    console, buf = _plain()
    warmup_step("ignored: no run is open")
    with RunProgress(60.0, dict, quiet=False, console=console, every_s=3600) as progress:
        progress.phase("warm-up: learning")
        for i in range(5):
            warmup_step(f"synthetic data: {i + 1} of 5 segments")
    lines = buf.getvalue().splitlines()
    assert lines == ["progress: warm-up: learning"]  # the period had not passed for a step
    console, buf = _plain()
    with RunProgress(60.0, dict, quiet=False, console=console, every_s=1e-9) as progress:
        progress.phase("warm-up: learning")
        warmup_step("synthetic data: 1 of 5 segments")
    assert "progress: warm-up: learning: synthetic data: 1 of 5 segments  elapsed 0:00:00" in buf.getvalue()
    warmup_step("ignored again: the run is closed")
    assert "ignored" not in buf.getvalue()


def test_a_long_step_still_gives_a_line_each_period():
    console, buf = _plain()
    with RunProgress(60.0, dict, quiet=False, console=console, every_s=0.5) as progress:
        progress.phase("warm-up: learning")
        warmup_step("pre-training: step 1 of 900, loss 4.100")
        time.sleep(2.6)  # one long step: nothing else reports
    lines = buf.getvalue().splitlines()
    repeats = [x for x in lines if x.startswith("progress: warm-up: learning: pre-training: step 1")]
    assert len(repeats) >= 2, lines
    assert all("elapsed 0:00:0" in x for x in repeats)


def test_a_quiet_run_prints_nothing():
    console, buf = _plain()
    with RunProgress(60.0, dict, quiet=True, console=console, every_s=0.1) as progress:
        progress.phase("warm-up: learning")
        time.sleep(1.2)
    assert buf.getvalue() == ""


def test_speedup_below_real_time_keeps_a_decimal():
    assert format_speedup(0.7) == "speed-up x0.7"
    assert format_speedup(9.94) == "speed-up x9.9"
    assert format_speedup(12.4) == "speed-up x12"
    assert format_speedup(1234.0) == "speed-up x1,234"


def test_empty_fields_are_left_out_of_the_line():
    console, buf = _plain()
    fields = {"round": "2", "eval": ""}  # nothing scored yet
    with RunProgress(60.0, lambda: fields, quiet=False, console=console, every_s=0) as progress:
        progress.phase(None)
        progress.tick(30.0)
    line = buf.getvalue().splitlines()[-1]
    assert line.endswith("round 2"), line


def test_pretraining_in_a_run_reports_its_steps(tmp_path, monkeypatch):
    from cosim.learning.pretrain import PretrainConfig, ensure_pretrained

    monkeypatch.setenv("COSIM_CACHE_DIR", str(tmp_path))
    console, buf = _plain()
    with RunProgress(60.0, dict, quiet=False, console=console, every_s=1e-9) as progress:
        progress.phase("warm-up: learning")
        ensure_pretrained(PretrainConfig(segments=5, frames_per_segment=2, steps=2, batch_size=4))
    text = buf.getvalue()
    assert "warm-up: learning: pre-training: rendering scene 5 of 5" in text
    assert "warm-up: learning: pre-training: step 2 of 2, loss " in text


def test_a_narrow_terminal_drops_whole_fields_and_keeps_the_eta():
    import re

    fields = {"vehicles": "295 (107 parked)", "connected": "292", "handoffs": "17353",
              "round": "26", "eval": "seg3d 0.407 det3d 0.245 pan2d 0.122 det2d 0.025"}
    for width in (80, 120):
        buf = io.StringIO()
        console = Console(file=buf, force_terminal=True, width=width)
        with RunProgress(3600.0, lambda: fields, quiet=False, console=console) as progress:
            progress.phase(None)
            time.sleep(0.05)
            progress.tick(1800.0)
        lines = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", x) for x in buf.getvalue().splitlines()]
        last = [x for x in lines if "sim 00:30:00" in x][-1].rstrip()
        assert len(last) <= width and "…" not in last, last  # nothing cut, the ETA whole
        assert re.search(r"eta (\d+:\d\d:\d\d|-:--:--)", last), last
        assert "det2d" not in last  # the long eval field is dropped whole
        assert ("vehicles 295 (107 parked)" in last) == (width == 120), last


def test_fit_fields_keeps_order_and_drops_the_rest():
    from cosim.progress import fit_fields

    fields = {"a": "1", "b": "", "c": "333", "d": "4"}
    assert fit_fields(fields, 100) == "a 1  c 333  d 4"
    assert fit_fields(fields, 8) == "a 1"


def test_watch_is_silent_when_quick_and_repeats_when_slow():
    from cosim.progress import watch

    console, buf = _plain()
    with watch("preparing the inputs", quiet=False, console=console, every_s=0.4):
        pass
    assert buf.getvalue() == ""  # a fast refusal of bad input stays one line
    with watch("preparing the inputs", quiet=False, console=console, every_s=0.4):
        time.sleep(1.0)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 2 and all(x.startswith("progress: preparing the inputs  elapsed ") for x in lines)


def test_a_running_clock_prints_fresh_lines_not_the_watchers_repeats():
    console, buf = _plain()
    with RunProgress(100.0, lambda: {"round": "1"}, quiet=False, console=console,
                     every_s=0.3) as progress:
        progress.phase(None)
        for now in range(1, 11):
            time.sleep(0.1)  # ticks come often, as while the clock runs
            progress.tick(float(now))
    lines = [x for x in buf.getvalue().splitlines() if x.startswith("progress: sim ")]
    assert lines and all("round 1" in x and "sim 00:00:00 " not in x for x in lines), lines


def test_validate_says_it_is_still_checking_while_inputs_are_built(tmp_path, monkeypatch):
    """Building the network, demand and synthetic data the first time takes minutes: validate
    speaks each period meanwhile, as a run does."""
    from pathlib import Path

    from typer.testing import CliRunner

    import cosim.runner
    from cosim.cli import app

    slow_check = cosim.runner.check_run_inputs

    def building(*args, **kwargs):
        time.sleep(0.5)
        return slow_check(*args, **kwargs)

    monkeypatch.setattr(cosim.runner, "check_run_inputs", building)
    monkeypatch.setenv("COSIM_PROGRESS_EVERY_S", "0.1")
    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    result = CliRunner().invoke(app, ["validate", str(grid), "--set", "learning=null"])
    assert result.exit_code == 0, result.output
    assert "progress: checking the inputs (network, demand, data)  elapsed" in result.output


@pytest.mark.parametrize(("value", "every"), [("inf", 30.0), ("1e300", 30.0), ("nan", 30.0),
                                              ("-5", 30.0), ("abc", 30.0), ("0", 0.0),
                                              ("0.1", 0.1), ("86400", 86400.0)])
def test_the_log_period_no_timer_takes_keeps_the_default(monkeypatch, value, every):
    """``inf`` or ``1e300`` overflowed the progress thread's timer (a traceback on stderr)."""
    from cosim.progress import plain_every_s

    monkeypatch.setenv("COSIM_PROGRESS_EVERY_S", value)
    assert plain_every_s() == every


def test_validate_with_an_infinite_log_period_says_only_its_result():
    import os
    import subprocess
    import sys
    from pathlib import Path

    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    done = subprocess.run([sys.executable, "-m", "cosim.cli", "validate", str(grid), "--set",
                           "learning=null"], capture_output=True, text=True,
                          env={**os.environ, "COSIM_PROGRESS_EVERY_S": "inf"})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
