"""The standalone collector: the shipped file is what the build makes from the collect modules
today, it is Python 3.9 and standard library only (run under 3.9 when there is one, checked
by syntax, imports and vermin always), and the build refuses what would break the joined file."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from auditor.bundle.collect_main import window
from auditor.bundle.standalone import MODULES, BuildError, build, module_body
from auditor.timeutil import parse_duration
from tests.bundle.collectors import SHIPPED, python39

NOT_39 = '''
from datetime import UTC
def f(a, b):
    match a:
        case 1:
            return list(zip(a, b, strict=True))
'''


def test_shipped_file_is_fresh() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == build(), (
        "standalone/auditor-collect.py is stale: run "
        "'python3 -m auditor collect --standalone > standalone/auditor-collect.py'"
    )


def test_generated_by_the_cli_too() -> None:
    out = subprocess.run([sys.executable, "-m", "auditor", "collect", "--standalone"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout == build()


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_python39_syntax_and_standard_library_only() -> None:
    text = build()
    tree = ast.parse(text, feature_version=(3, 9))
    assert _imports(tree) <= set(sys.stdlib_module_names) | {"__future__"}, _imports(tree)
    with pytest.raises(SyntaxError):  # the check bites on what 3.9 cannot parse
        ast.parse(NOT_39, feature_version=(3, 9))


def _vermin(path: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from vermin import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, "-t=3.9-", "--violations", "--no-tips",
                           "--no-parse-comments", path], capture_output=True, text=True,
                          timeout=300, check=False)


def test_vermin_finds_nothing_newer_than_39(tmp_path: Path) -> None:
    pytest.importorskip("vermin", reason="vermin (pip install '.[test]') checks 3.9 APIs")
    shipped = _vermin(str(SHIPPED))
    assert shipped.returncode == 0, shipped.stdout
    bad = tmp_path / "not39.py"
    bad.write_text(NOT_39)
    assert _vermin(str(bad)).returncode != 0  # datetime.UTC, match, zip(strict=)


def test_runs_under_python39() -> None:
    py39 = python39()
    if py39 is None:
        pytest.skip("no Python 3.9 interpreter here (set AUDITOR_PYTHON39); "
                    "syntax, imports and vermin are checked above")
    out = subprocess.run([py39, str(SHIPPED), "--help"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0 and "--obfuscate" in out.stdout, out.stderr
    out = subprocess.run([py39, str(SHIPPED), "--since", "yesterday"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 2 and "--since" in out.stderr


@pytest.mark.parametrize("text", ["90s", "15m", "2h", "1d12h", "1.5h", "3600", "2W"])
def test_since_reads_as_auditor_reads_it(text: str) -> None:
    assert window(text) == parse_duration(text)


@pytest.mark.parametrize("text", ["", "2x", "h", "1h 2q", "-1h"])
def test_since_refuses_what_auditor_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
    with pytest.raises(ValueError):
        window(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("import yaml\n", "not in the standard library"),
        ("from auditor.timeutil import parse_duration\n", "not an earlier collector module"),
        ("from auditor.bundle.collect import collect\n", "not an earlier collector module"),
        ("from auditor.bundle.writer import Collector as C\n", "renames"),
        ("def f():\n    import json\n", "inside a function"),
        ("def read_small():\n    pass\n", "also defined in hostread"),
    ],
)
def test_build_refuses_what_would_break_the_joined_file(text: str, why: str) -> None:
    defined: dict[str, str] = {"read_small": "hostread"}
    with pytest.raises(BuildError, match=why):
        module_body("extra", text, {"hostread", "writer"}, defined)


def test_joined_modules_keep_their_code_and_lose_their_sibling_imports() -> None:
    text = build()
    assert "auditor" not in _imports(ast.parse(text))
    for name in MODULES:
        assert f"# ---- auditor/bundle/{name}.py" in text
    assert text.count("from __future__ import annotations") == 1
    assert window("2h") == timedelta(hours=2)
