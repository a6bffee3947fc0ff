"""Parallel-corpus files: tab-separated and line-aligned pairs, several references, the split by distinct source,
a standard split used as it is, and bad lines refused with their file and line."""

from __future__ import annotations

import os

import pytest

from bench.data.tasks import parallel
from bench.data.tasks.parallel import Files
from bench.errors import UserError
from bench.runner.cache import load
from bench.spec.run import DataSpec


def write(path, text: str | bytes) -> str:
    with open(path, "wb") as f:
        f.write(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def corpus(n: int = 200, extra: str = "") -> str:
    """n distinct words and their 'pronunciations'; every fifth word has a second one."""
    lines = []
    for i in range(n):
        w = f"w{i:03d}"
        lines.append(f"{w}\t{' '.join(w.upper())}")
        if i % 5 == 0:
            lines.append(f"{w}\t{' '.join(w.upper())} X")
    return "\n".join(lines) + "\n" + extra


def test_a_tsv_is_split_by_distinct_source_with_every_answer_a_reference(tmp_path) -> None:
    p = write(tmp_path / "lex.tsv", corpus())
    d = parallel.load(Files(p), seed=0, valid=15)
    tr, va, te = ({e.src for e in s} for s in (d.train, d.valid, d.test))
    assert not (tr & va) and not (tr & te) and not (va & te)  # no source in two splits
    assert len(te) == 20 and len(va) == 15 and len(tr) == 165  # a tenth for test, then `valid` sources
    assert len(d.test) == 20 and len(d.valid) == 15  # one example per source, scored against all its answers
    for e in d.test + d.valid:
        n = int(e.src[1:])
        assert e.references == ((" ".join(e.src.upper()),) + ((" ".join(e.src.upper()) + " X",) if n % 5 == 0 else ()))
    two = [e for e in d.train if int(e.src[1:]) % 5 == 0]
    assert len(two) == 2 * len({e.src for e in two})  # training sees every (source, answer) pair
    assert d.open_vocabulary and d.source == "file:lex.tsv" and d.name == "lex"


def test_the_split_is_a_function_of_the_seed(tmp_path) -> None:
    p = write(tmp_path / "lex.tsv", corpus())
    a, b, c = (parallel.load(Files(p), seed=s, valid=15) for s in (0, 0, 1))
    assert (a.train, a.valid, a.test) == (b.train, b.valid, b.test)
    assert {e.src for e in c.test} != {e.src for e in a.test}


def test_a_training_cap_is_a_random_subset_not_the_files_first_lines(tmp_path) -> None:
    p = write(tmp_path / "lex.tsv", corpus())
    d = parallel.load(Files(p), seed=0, valid=15, train_size=30)
    assert len(d.train) == 30
    assert max(int(e.src[1:]) for e in d.train) > 100  # drawn across the whole file, not its first lines


def test_given_valid_and_test_files_are_used_as_they_are(tmp_path) -> None:
    train = write(tmp_path / "train.tsv", corpus(50))
    test = write(tmp_path / "test.tsv", "zz1\tZ Z 1\nzz1\tZ Z ONE\nzz2\tZ Z 2\n")
    valid = write(tmp_path / "valid.tsv", "vv1\tV V 1\n")
    d = parallel.load(Files(train, test=test), seed=0, valid=5)
    assert [e.references for e in d.test] == [("Z Z 1", "Z Z ONE"), ("Z Z 2",)]
    assert len({e.src for e in d.valid}) == 5 and len({e.src for e in d.train}) == 45  # valid still held out of training
    d2 = parallel.load(Files(train, valid=valid, test=test), seed=0)
    assert [e.src for e in d2.valid] == ["vv1"] and len({e.src for e in d2.train}) == 50


def test_line_aligned_files_and_their_standard_split(tmp_path) -> None:
    write(tmp_path / "train.src", "a b\nc d\ne f\ng h\ni j\nk l\nm n\no p\nq r\ns t\na b\n")
    write(tmp_path / "train.tgt", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n")
    write(tmp_path / "test.src", "u v\n")
    write(tmp_path / "test.tgt", "99\n")
    d = parallel.load(Files(str(tmp_path / "train.src"), str(tmp_path / "train.tgt"), test=str(tmp_path / "test.src")), seed=0, valid=1)
    assert [(e.src, e.references) for e in d.test] == [("u v", ("99",))]
    ab = [e for e in d.train + d.valid if e.src == "a b"]
    assert {e.tgt for e in ab} | {o for e in ab for o in e.others} == {"1", "11"}  # a source on two lines: two answers
    with pytest.raises(UserError, match="PREFIX"):
        parallel.load(Files(str(tmp_path / "train.src"), str(tmp_path / "train.tgt"), test=str(tmp_path / "t.other")))


@pytest.mark.parametrize("content, words", [
    ("a\tb\nno tab here\n", ["x.tsv:2:", "no tab"]),
    ("a\tb\nc\t\n", ["x.tsv:2:", "empty target"]),
    ("a\tb\n \tc\n", ["x.tsv:2:", "empty source"]),
    ("a\tb\nc\td\te\n", ["x.tsv:2:", "more than one tab"]),
    ("a\tb\n\nc\td\n", ["x.tsv:2:", "empty line"]),
    (b"a\tb\nc\td\n\xff\xfe\tx\n", ["x.tsv:3:", "utf-8"]),
    ("", ["x.tsv", "no examples"]),
])
def test_bad_lines_name_the_file_and_line(tmp_path, content, words) -> None:
    p = write(tmp_path / "x.tsv", content)
    with pytest.raises(UserError) as e:
        parallel.load(Files(p))
    for w in words:
        assert w.lower() in str(e.value).lower()


def test_line_aligned_files_of_different_lengths_are_refused(tmp_path) -> None:
    s = write(tmp_path / "a.src", "x\ny\nz\n")
    t = write(tmp_path / "a.tgt", "1\n2\n")
    with pytest.raises(UserError, match=r"a\.src has 3 lines and .*a\.tgt has 2"):
        parallel.load(Files(s, t))


def test_trailing_blank_lines_and_windows_line_ends_are_fine(tmp_path) -> None:
    p = write(tmp_path / "w.tsv", "".join(f"s{i}\tt{i}\r\n" for i in range(30)) + "\r\n\n")
    d = parallel.load(Files(p), valid=3)
    assert len(d.train) + len(d.valid) + len(d.test) == 30
    assert all(not e.tgt.endswith("\r") for e in d.train)


def test_the_format_is_told_by_extension_or_a_tab(tmp_path) -> None:
    assert parallel.is_tab_separated(write(tmp_path / "a.tsv", "x_y\n"))
    assert parallel.is_tab_separated(write(tmp_path / "g014b2b.train", "\n\nAAA\tT R IH P AH L EY\n"))
    assert not parallel.is_tab_separated(write(tmp_path / "date.txt", "september 27, 1994 _1994-09-27\n"))
    # the runner picks the loader: a tab-separated file by content, the book's format otherwise
    tsv = write(tmp_path / "lex.train", corpus(40))
    assert load(DataSpec(task="lex", task_file=tsv, valid=4)).source == "file:lex.train"
    book = write(tmp_path / "b.txt", "".join(f"{i}+1 _{i + 1}  \n" for i in range(20)))
    assert load(DataSpec(task="b", task_file=book)).valid_is_test  # the book's own split, as before


def test_book_options_are_refused_for_a_parallel_corpus(tmp_path) -> None:
    tsv = write(tmp_path / "lex.tsv", corpus(40))
    with pytest.raises(UserError, match="book format"):
        load(DataSpec(task="lex", task_file=tsv, keep_source_padding=True))


def test_the_standard_cmudict_split_reads_as_it_is(shared_path) -> None:
    """The data beside the project: g014b2b's 106,837 training and 12,000 test words, no word in both."""
    folder = shared_path("data", "cmudict")
    train, test = os.path.join(folder, "g014b2b.train"), os.path.join(folder, "g014b2b.test")
    d = parallel.load(Files(train, test=test), seed=0, valid=1000)
    assert len(d.test) == 12_000
    assert len({e.src for e in d.train}) + len(d.valid) == 106_837
    assert len(d.train) + sum(len(e.references) for e in d.valid) == 113_438  # every pronunciation line of the training file
    assert sum(len(e.references) for e in d.test) == 12_753
    assert not ({e.src for e in d.test} & ({e.src for e in d.train} | {e.src for e in d.valid}))
