"""The one Markdown-table writer: columns, alignment, escaping."""

from __future__ import annotations

import pytest

from bench.analysis.markdown import table


def test_a_table_has_a_header_a_rule_and_one_line_per_row() -> None:
    out = table(["model", "exact %"], [["attention", "99.1"], ["seq2seq", "48.0"]], align="lr")
    assert out.splitlines() == ["| model | exact % |", "|---|---:|", "| attention | 99.1 |", "| seq2seq | 48.0 |"]


def test_a_pipe_or_a_line_break_in_a_cell_cannot_split_the_row() -> None:
    out = table(["a"], [["x|y"], ["two\nlines"]])
    assert out.splitlines()[2:] == ["| x\\|y |", "| two lines |"]


@pytest.mark.parametrize("rows, align", [([["1", "2", "3"]], None), ([["1", "2"]], "lx"), ([["1", "2"]], "l")])
def test_a_row_or_an_alignment_of_the_wrong_width_is_refused(rows, align) -> None:
    with pytest.raises(ValueError):
        table(["a", "b"], rows, align=align)
