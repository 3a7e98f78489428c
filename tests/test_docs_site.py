"""The documentation as a product: generated references that match the code, a JSON Schema that
checks the embedded scenarios, a short README, a home page that leads to what newcomers look for,
and a site that builds with `mkdocs build --strict` and renders in a headless browser."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cosim.cli import app
from cosim.scenario.descriptions import DESCRIPTIONS
from cosim.scenario.experiment import Scenario
from cosim.scenario.schema import _models, describe
from cosim.trace_schemas import COLUMNS, SCHEMAS

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SCHEMA_FILE = DOCS / "reference" / "scenario.schema.json"
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_match_the_code():
    """`python docs/gen_reference.py` changes nothing: the committed pages are current."""
    stale = [str(path.relative_to(REPO)) for path, text in _generator().generate().items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated docs {stale}: run `python docs/gen_reference.py`"


def test_cosim_schema_prints_the_committed_schema():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(SCHEMA_FILE.read_text())


class _Yaml12Loader(yaml.SafeLoader):
    """YAML as an editor's language server reads it (YAML 1.2 floats: `42.5e12` is a number)."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$"
               r"|^\.(nan|NaN|NAN)$"),
    list("-+0123456789."))


def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_schema_accepts_every_embedded_scenario(scenario):
    data = yaml.load(scenario.read_text(), Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader)
    errors = [f"{list(e.path)}: {e.message}" for e in _validator().iter_errors(data)]
    assert not errors, errors


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_embedded_scenarios_name_the_schema_on_their_first_line(scenario):
    first = scenario.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../docs/reference/scenario.schema.json"
    assert (scenario.parent / first.split("=", 1)[1]).resolve() == SCHEMA_FILE


@pytest.mark.parametrize(("path", "value"), [
    (("duraton_s",), 60),  # a mistyped top-level key
    (("radio", "step_ms"), 0.1),  # a mistyped nested key
    (("radio", "step_s"), "fast"),  # a value of the wrong type
    (("seed",), -1),  # out of bounds
])
def test_the_schema_rejects_a_mistyped_key_or_value(path, value):
    data = yaml.load((REPO / "scenarios" / "grid_small.yaml").read_text(), Loader=_Yaml12Loader)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(_validator().iter_errors(data)), path


def test_every_scenario_field_is_described_and_no_description_is_stale():
    models = _models(Scenario)
    missing = [f"{name}.{field}" for name, model in models.items()
               for field in model.model_fields if not describe(model, field)]
    assert not missing, f"describe these fields (a comment in the model, or descriptions.py): {missing}"
    defined = {f"{cls.__name__}.{field}" for model in models.values() for cls in model.__mro__
               if hasattr(cls, "model_fields") for field in getattr(cls, "__annotations__", {})}
    assert not set(DESCRIPTIONS) - defined, set(DESCRIPTIONS) - defined


def test_every_trace_column_has_a_unit_and_a_meaning():
    for table, schema in SCHEMAS.items():
        assert list(COLUMNS[table]) == schema.names, table
        assert all(meaning for _, meaning in COLUMNS[table].values()), table


def test_the_readme_is_short_and_starts_with_the_set_up_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, len(lines)
    start = lines.index("```bash")
    assert lines[start + 1].startswith("python3 -m venv .venv && . .venv/bin/activate && pip install")
    assert lines[start + 1].endswith("&& cosim run scenarios/sf_downtown.yaml")
    assert lines[start + 2] == ". .venv/bin/activate && python -m pytest -q"
    assert lines[start + 3] == "```"
    assert start < 5, "the set-up commands come first"


def test_the_home_page_links_what_newcomers_look_for():
    """Scenario keys, trace columns, adding a policy and the latest default-hour results are one
    click from the home page (and the nav gives every page in two)."""
    home = (DOCS / "index.md").read_text()
    for target in ("reference/scenario.md", "reference/traces.md", "how-to/add-policy.md",
                   "results/default-hour.md"):
        assert f"]({target})" in home, target
        assert (DOCS / target).is_file(), target


def _chromium() -> str | None:
    names = [os.environ.get("COSIM_CHROMIUM", ""), "chromium-headless-shell", "chromium",
             "chromium-browser", "google-chrome", "headless_shell"]
    return next((shutil.which(n) for n in names if n and shutil.which(n)), None)


@pytest.mark.slow
def test_the_site_builds_strictly_and_renders(tmp_path):
    """`mkdocs build --strict` (broken links and references fail) and a headless-browser
    screenshot of the home page. COSIM_SITE_SCREENSHOT=FILE keeps the screenshot."""
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO)}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                            str(site)], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    index = site / "index.html"
    page = index.read_text(encoding="utf-8")
    for target in ("reference/scenario.html", "reference/traces.html", "how-to/add-policy.html",
                   "results/default-hour.html"):
        assert f'href="{target}"' in page, target
    assert (site / "reference" / "scenario.schema.json").is_file()
    assert "cosim.api.run" in (site / "reference" / "python-api.html").read_text(encoding="utf-8")
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium here (set COSIM_CHROMIUM or install "
                    "chromium-headless-shell): the site built, the screenshot is skipped")
    shot = Path(os.environ.get("COSIM_SITE_SCREENSHOT") or tmp_path / "site.png")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--window-size=1280,900",
                           f"--screenshot={shot}", index.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 10_000, done.stderr[-2000:]


def test_every_documented_python_snippet_is_run_by_a_test():
    """Each ```python block of the README and the docs is a Python API example (run by
    tests/test_api.py), a trace-loading example (run by tests/test_compare.py) or an extension
    module (run by tests/test_extensions.py)."""
    from doc_snippets import api_snippets, extension_modules, python_blocks, trace_snippet_groups
    from test_extensions import DOCUMENTED_MODULES

    assert set(extension_modules()) == set(DOCUMENTED_MODULES)
    covered = (set(api_snippets()) | {code for group in trace_snippet_groups() for code in group}
               | set(extension_modules().values()))
    untested = [where for where, code in python_blocks() if code not in covered]
    assert not untested, f"no test runs these snippets: {untested}"
