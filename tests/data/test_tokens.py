"""Tokens per side and the vocabulary: char/space/sentencepiece tokenizers, SentencePiece trained on the training
split once per text, a training-only vocabulary with <unk> for real data -- and the built-in tasks' and book
files' token ids exactly as they always were."""

from __future__ import annotations

import os
import pickle

import pytest

from bench.data import tasks
from bench.data.batching import encode_split
from bench.data.prepare import TokenOptions, prepare
from bench.data.tasks import Example, TaskData, TaskOptions, textfile
from bench.data.tokens import OptionError, SubwordMemo, SubwordSettings, Tokenizer
from bench.data.vocab import UNK_TOKEN, Vocab
from bench.runner.cache import DataCache, load
from bench.spec.suite import load as load_suite
from tests.conftest import REPO

TEXT = [f"the {a} {b} sat on the {c}" for a in ("big", "small", "red") for b in ("cat", "dog", "bird") for c in ("mat", "rug", "sofa")] * 5


def test_char_and_space_tokenizers() -> None:
    assert Tokenizer("char").split("ab c") == ["a", "b", " ", "c"]
    assert Tokenizer("space").split(" AH  B AE\tD ") == ["AH", "B", "AE", "D"]
    assert Tokenizer("char").join(["a", "b"]) == "ab" and Tokenizer("space").join(["AH", "B"]) == "AH B"


def test_sentencepiece_is_deterministic_and_trained_once_per_text() -> None:
    pytest.importorskip("sentencepiece")
    memo = SubwordMemo()
    for kind in ("unigram", "bpe"):
        s = SubwordSettings(kind, 20, 0)
        a = memo.model(TEXT, s, "source")
        assert memo.model(list(TEXT), s, "source") is a  # the same text: the memo's model, not a second training
        assert SubwordMemo().model(TEXT, s, "source") == a  # a fresh session trains the same model, byte for byte
        tok = Tokenizer("sentencepiece", a)
        pieces = tok.split("the red dog sat on the sofa")
        assert tok.detokenize(pieces) == "the red dog sat on the sofa"
        assert tok.join(pieces) == " ".join(pieces)
        assert pickle.loads(pickle.dumps(tok)).split("the cat") == tok.split("the cat")  # ships to a worker
    assert len(memo) == 2


def test_a_vocabulary_larger_than_the_text_allows_names_the_option() -> None:
    pytest.importorskip("sentencepiece")
    with pytest.raises(OptionError) as e:
        SubwordMemo().model(TEXT, SubwordSettings("unigram", 5000, 0), "target")
    assert e.value.key == "sentencepiece_vocab" and "5,000" in e.value.rule and "at most" in e.value.rule and "target" in e.value.rule


def test_real_data_vocabulary_comes_from_training_with_unk_last() -> None:
    space = Tokenizer("space")
    data = TaskData("x", train=[Example("a b", "X Y"), Example("b a", "Y X")], valid=[Example("a", "X")],
                    test=[Example("a c", "X Z", others=("Y",))], source="file:x.tsv", source_tokens="space", target_tokens="space",
                    open_vocabulary=True)
    t = prepare(data, TokenOptions(), SubwordMemo())
    assert t.vocab.chars == ("X", "Y", "a", "b") and t.vocab.unk  # c and Z first appear in test
    assert len(t.vocab) == 3 + 4 + 1 and t.vocab.token(t.vocab.unk_id) == UNK_TOKEN
    assert t.test.unk == 2 and t.valid.unk == 0 and t.train.unk == 0  # counted, never a crash
    assert t.test.tokens == 2 + 2 + 1  # source, and every reference
    assert t.test.refs[0] == ((t.vocab.index["X"], t.vocab.unk_id), (t.vocab.index["Y"],))
    assert t.unit == "word" and (t.source, t.target) == (space, space)
    closed = prepare(TaskData("x", data.train, data.valid, data.valid, "file:x.tsv", source_tokens="space", target_tokens="space",
                              open_vocabulary=True), TokenOptions(), SubwordMemo())
    assert not closed.vocab.unk and len(closed.vocab) == 7  # nothing unseen: no <unk> id, no extra parameter


def _old_rule(data: TaskData) -> Vocab:
    """How s2sbench built every vocabulary before tokens per side: the characters of every split."""
    return Vocab.from_texts(data.texts())


def _quick_data() -> list:
    _, _, specs = load_suite("quick")
    return list({s.data: None for s in specs})


def test_the_quick_suites_training_splits_hold_every_test_character() -> None:
    """So a training-only vocabulary would equal the one built from every split on the quick suite's data."""
    for d in _quick_data():
        data = load(d)
        train = {c for e in data.train for c in e.src + e.tgt}
        assert Vocab.from_texts(data.texts()).chars == tuple(sorted(train)), d.task


def test_built_in_tasks_keep_their_token_ids() -> None:
    cache = DataCache()
    for d in _quick_data():
        prep = cache.get(d)
        data = load(d)
        old = _old_rule(data)
        assert prep.vocab == old and not prep.vocab.unk
        ref = encode_split(data.test, old, d.reverse_source)
        assert prep.test.src.equal(ref.src) and prep.test.tgt_out.equal(ref.tgt_out)
    # a tiny training split lacks characters of its test split: still the old vocabulary, ids unchanged
    small = tasks.make("date", TaskOptions(seed=0, train=40, valid=10, test=10))
    assert {c for e in small.test for c in e.src} - {c for e in small.train for c in e.src}  # the case this is about
    assert prepare(small, TokenOptions(), SubwordMemo()).vocab == _old_rule(small)


def test_book_files_keep_their_token_ids(shared_path) -> None:
    for name in ("date.txt", "addition.txt"):
        data = textfile.load(shared_path("data", "book", name), train_size=50)
        assert prepare(data, TokenOptions(), SubwordMemo()).vocab == _old_rule(data)


def test_quick_suite_keys_are_the_committed_baselines() -> None:
    """No new data option moves a stored key: the quick suite's configurations hash as the CI baselines recorded."""
    import json

    _, _, specs = load_suite("quick")
    for isa in ("avx2", "avx512"):
        with open(os.path.join(REPO, "results", "baselines", f"cpu-ci-{isa}.json"), encoding="utf-8") as f:
            doc = json.load(f)
        recorded = {r["model"] for r in doc["results"].values()}
        for s in specs:
            if s.model not in recorded:  # a model added to quick since the baseline was recorded: a new key, not a moved one
                continue
            r = doc["results"][f"{s.data.name}/{s.model}/{s.size}"]
            assert s.config_hash() in r["config_hashes"], (isa, s.label())
