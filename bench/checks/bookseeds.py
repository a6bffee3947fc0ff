"""The book's own code with another seed: how much of a figure of the book's is its one draw of weights and batches.

    python -m bench.checks.bookseeds --book-code ../shared/anchors/dlfs2 --data-dir ../shared/data/book \\
        --task addition --model seq2seq --reverse --hidden 128 --epochs 25 --seed 1

does what the book's ``run_book.py`` does (same models, settings, split and scoring; one JSON line per
epoch) except that numpy is seeded again with ``--seed`` after the data is loaded. The book's loader seeds
numpy with 1984 to shuffle and split the data, and the weights and the batch order are then drawn from that
same stream: every run of the book's code is the same single draw. A new seed keeps the book's split and
draws other weights and batches, which is what s2sbench's seeds vary. Without ``--seed``: the book's run.
Needs numpy only (and the book's code).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import types

PROG = "python -m bench.checks.bookseeds"  # the name usage and errors show; `s2sbench check bookseeds` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.bookseeds`` and ``s2sbench check bookseeds``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--book-code", required=True, help="the folder holding the book's run_book.py, ch07/, ch08/")
    p.add_argument("--data-dir", required=True, help="the folder holding the book's addition.txt and date.txt")
    p.add_argument("--task", choices=["date", "addition"], default="addition", help="the book's task: date or addition (default: addition)")
    p.add_argument("--model", choices=["seq2seq", "peeky", "attention"], default="seq2seq",
                   help="the book's model: seq2seq, peeky or attention (default: seq2seq)")
    p.add_argument("--reverse", action="store_true", help="reverse the source, as the book's ch. 7 does (default: off)")
    p.add_argument("--hidden", type=int, default=128, help="hidden size (default: 128)")
    p.add_argument("--epochs", type=int, default=25, help="training epochs (default: 25)")
    p.add_argument("--seed", type=int, default=None, help="numpy seed for the weights and batches (default: the book's own draw)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = parser(prog).parse_args(argv)
    code = os.path.abspath(a.book_code)
    if not os.path.exists(os.path.join(code, "ch07", "seq2seq.py")):
        print(f"{a.book_code}: not the book's code (no ch07/seq2seq.py)", file=sys.stderr)
        return 2
    sys.path[:0] = [code, os.path.join(code, "ch07"), os.path.join(code, "ch08")]
    for name in ("matplotlib", "matplotlib.pyplot"):  # the book's trainer imports it for plots; none are drawn
        sys.modules.setdefault(name, types.ModuleType(name))
    import numpy
    from common.optimizer import Adam
    from common.trainer import Trainer
    from common.util import eval_seq2seq
    from dataset import sequence

    rel = os.path.relpath(os.path.join(os.path.abspath(a.data_dir), a.task + ".txt"), os.path.join(code, "dataset"))
    (x_train, t_train), (x_test, t_test) = sequence.load_data(rel)  # numpy seed 1984: the book's split
    char_to_id, id_to_char = sequence.get_vocab()
    if a.reverse:
        x_train, x_test = x_train[:, ::-1], x_test[:, ::-1]
    if a.seed is not None:
        numpy.random.seed(a.seed)
    if a.model == "attention":
        from attention_seq2seq import AttentionSeq2seq as Model
    elif a.model == "peeky":
        from peeky_seq2seq import PeekySeq2seq as Model
    else:
        from seq2seq import Seq2seq as Model
    model = Model(len(char_to_id), 16, a.hidden)
    trainer = Trainer(model, Adam())
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.fit(x_train, t_train, max_epoch=1, batch_size=128, max_grad=5.0)
        t1 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            correct = sum(eval_seq2seq(model, x_test[[i]], t_test[[i]], id_to_char, False, is_reverse=a.reverse)
                          for i in range(len(x_test)))
        print(json.dumps({"impl": "dlfs2-numpy", "task": a.task, "model": a.model, "seed": a.seed, "epoch": epoch,
                          "train_s": round(t1 - t0, 2), "test_exact_match": correct / len(x_test)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
