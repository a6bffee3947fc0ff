"""Task data, built once per session: a pure function of its DataSpec, shared across the runs that use it.

Preparation -- reading or generating the examples, the split, SentencePiece training, tokenising, the
vocabulary, padding -- all happens here, when a session checks its runs (``bench.runner.session.check``),
before any run's clock starts. A SentencePiece model is trained once per distinct training text, however many
data specs share it (another ``reverse_source``, another model).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.data import tasks
from bench.data.batching import Encoded
from bench.data.prepare import TokenOptions, prepare
from bench.data.tasks import TaskData, TaskOptions, parallel, textfile
from bench.data.tokens import SubwordMemo, SubwordSettings, Tokenizer
from bench.data.vocab import Vocab
from bench.errors import UserError
from bench.spec.run import DataSpec


@dataclass
class Prepared:
    data: TaskData
    vocab: Vocab
    train: Encoded
    valid: Encoded
    test: Encoded
    source: Tokenizer = Tokenizer("char")
    target: Tokenizer = Tokenizer("char")
    unit: str = "char"  # what one target token is: char | phone | word | subword (names the token error rate)


def load(d: DataSpec) -> TaskData:
    """The examples of a data spec: a book-format or parallel-corpus file, or a registered task."""
    if d.task_file:
        if d.target_file or d.valid_file or d.test_file or parallel.is_tab_separated(d.task_file):
            files = parallel.Files(d.task_file, d.target_file, d.valid_file, d.test_file)
            if d.keep_source_padding or d.fixed_length_target:
                raise UserError(f"{d.task_file}: keep_source_padding and fixed_length_target are the book format's options, "
                                "not a parallel corpus's")
            return parallel.load(files, d.seed, d.valid, d.train_size)
        return textfile.load(d.task_file, d.train_size, d.keep_source_padding, d.fixed_length_target)
    opts = TaskOptions(seed=d.seed, train=d.train, valid=d.valid, test=d.test, train_lengths=d.train_lengths, test_lengths=d.test_lengths,
                       extra={"keep_stress": True} if d.keep_stress else {})
    data = tasks.make(d.task, opts)
    if d.train_size is not None:
        data = replace(data, train=data.train[: d.train_size])
    return data


class DataCache:
    """Task data is a pure function of its DataSpec: build it once per session, share it across runs."""

    def __init__(self) -> None:
        self._c: dict[DataSpec, Prepared] = {}
        self._subwords = SubwordMemo()

    def get(self, d: DataSpec) -> Prepared:
        if d not in self._c:
            data = load(d)
            opts = TokenOptions(d.source_tokens, d.target_tokens, SubwordSettings(d.sentencepiece_type, d.sentencepiece_vocab, d.seed),
                                d.target_unit)
            t = prepare(data, opts, self._subwords, d.reverse_source, eos=not d.fixed_length_target)
            self._c[d] = Prepared(data, t.vocab, t.train, t.valid, t.test, t.source, t.target, t.unit)
        return self._c[d]

    @property
    def subword_models(self) -> int:
        """SentencePiece models trained so far (one per distinct training text and settings)."""
        return len(self._subwords)
