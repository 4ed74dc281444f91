"""The format census (docs/formats.md) is generated from the samples and kept fresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.parsers import registry
from auditor.parsers.census import SAMPLES, CensusError, markdown, shapes

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def test_docs_formats_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == markdown(shapes()), (
        "docs/formats.md is stale: python3 -m auditor.parsers.census > docs/formats.md"
    )


def test_every_parser_has_a_shape_in_the_census() -> None:
    covered = {row.parser for row in shapes()}
    assert set(registry()) - covered == set()


def test_examples_are_sample_lines() -> None:
    for row in shapes():
        name, _, line = row.sample.rpartition(":")
        text = (SAMPLES / name).read_text(encoding="utf-8").splitlines()
        assert text[int(line) - 1] == row.example


def test_cells_cannot_break_the_table(tmp_path: Path) -> None:
    folder = tmp_path / "kernel"
    folder.mkdir()
    (folder / "x.log").write_text(
        '# census: {"producer": "a|b", "version": "1\\n2", "framing": "`x`"}\n'
        "# expect: null\nline | with `ticks`\n"
    )
    page = markdown(shapes(tmp_path))
    row = page.splitlines()[-1]
    assert row == ("| kernel | a\\|b | 1 2 | 'x' | `line \\| with 'ticks'` | kernel/x.log:3 |")


@pytest.mark.parametrize("bad", [
    '# census: {"producer": "p"}\n# expect: null\nline\n',
    "# census: not json\n# expect: null\nline\n",
    '# census: {"producer": "p", "version": "v", "framing": "f"}\n',
])
def test_bad_census_comments_are_errors(bad: str, tmp_path: Path) -> None:
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "x.log").write_text(bad)
    with pytest.raises(CensusError, match=r"kernel/x\.log:1"):
        shapes(tmp_path)
