"""The book's own numpy code ("Deep Learning from Scratch 2", ch. 7-8) for tests to measure against.

It lives in ``../shared/anchors/dlfs2`` beside the checkout (with the book's data in ``../shared/data/book``)
where this machine has it; tests that need it skip cleanly where it is absent. The book's modules are
imported under their own top-level names (``common``, ``seq2seq``, ...), so ``book_modules`` puts them on
``sys.path`` only while it imports them and takes them out of ``sys.modules`` afterwards.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
BOOK_CODE = os.path.normpath(os.path.join(SHARED, "anchors", "dlfs2"))
BOOK_DATA = os.path.normpath(os.path.join(SHARED, "data", "book"))

needs_book_code = pytest.mark.skipif(not os.path.exists(os.path.join(BOOK_CODE, "run_book.py")),
                                     reason="the book's code (../shared/anchors/dlfs2) is not here")
needs_book_data = pytest.mark.skipif(not os.path.exists(os.path.join(BOOK_DATA, "addition.txt")),
                                     reason="the book's data (../shared/data/book) is not here")


@contextmanager
def book_modules(*names: str) -> Iterator[list[types.ModuleType]]:
    """Import the book's modules ``names`` (e.g. "seq2seq", "dataset.sequence"); undo every trace afterwards."""
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    sys.path[:0] = [BOOK_CODE, os.path.join(BOOK_CODE, "ch07"), os.path.join(BOOK_CODE, "ch08")]
    for name in ("matplotlib", "matplotlib.pyplot"):  # the book's trainer imports it for plots; none are drawn
        sys.modules.setdefault(name, types.ModuleType(name))
    try:
        yield [importlib.import_module(n) for n in names]
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            del sys.modules[name]
