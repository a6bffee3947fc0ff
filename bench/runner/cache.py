"""Task data, built once per session: a pure function of its DataSpec, shared across the runs that use it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.data import tasks
from bench.data.batching import Encoded, encode_split
from bench.data.tasks import TaskData, TaskOptions, textfile
from bench.data.vocab import Vocab
from bench.spec.run import DataSpec


@dataclass
class Prepared:
    data: TaskData
    vocab: Vocab
    train: Encoded
    valid: Encoded
    test: Encoded


class DataCache:
    """Task data is a pure function of its DataSpec: build it once per session, share it across runs."""

    def __init__(self) -> None:
        self._c: dict[DataSpec, Prepared] = {}

    def get(self, d: DataSpec) -> Prepared:
        if d not in self._c:
            if d.task_file:
                data = textfile.load(d.task_file, d.train_size, d.keep_source_padding, d.fixed_length_target)
            else:
                opts = TaskOptions(seed=d.seed, train=d.train, valid=d.valid, test=d.test,
                                   train_lengths=d.train_lengths, test_lengths=d.test_lengths)
                data = tasks.make(d.task, opts)
                if d.train_size is not None:
                    data = replace(data, train=data.train[: d.train_size])
            vocab = Vocab.from_texts(data.texts())
            enc = [encode_split(s, vocab, d.reverse_source, eos=not d.fixed_length_target) for s in (data.train, data.valid, data.test)]
            self._c[d] = Prepared(data, vocab, *enc)
        return self._c[d]
