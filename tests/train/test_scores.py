"""Scores for real outputs, against hand-computed cases: error rates against the closest reference at corpus level
(Phonetisaurus's calculateER.py rule), exact match against any reference, BLEU and chrF from sacrebleu."""

from __future__ import annotations

import pytest
import torch

from bench.data.batching import encode_split
from bench.data.tasks import Example
from bench.data.tokens import Tokenizer
from bench.data.vocab import EOS, Vocab
from bench.train.evaluate import evaluate
from bench.train.scores import closest, error_rates, hypothesis, text_scores


def test_closest_reference_is_the_smallest_edit_distance_first_on_a_tie() -> None:
    hyp = ["AH", "B", "AE", "D", "IY"]
    refs = [["AH", "B", "AA", "D", "IY"], ["AH", "B", "AE", "D", "IY"], ["AE", "B", "AE", "D", "IY"]]
    assert closest(hyp, refs) == (0, 1)
    assert closest(["K", "AE", "T"], [["K", "AA", "T"], ["K", "AE", "T", "S"]]) == (1, 0)  # both 1 edit: the first
    assert closest(["K"], [["K", "AE", "T"], ["AE"]]) == (1, 1)
    assert closest([], [["A", "B"]]) == (2, 0)  # an empty hypothesis: every reference token deleted


def test_error_rates_are_corpus_level_over_the_chosen_references() -> None:
    # word 1: exact on its second reference (0 edits, chosen length 3)
    # word 2: one substitution against a 4-token reference
    # word 3: hypothesis "A" against "A B C D E F" (5 deletions) or "A X" (1 insertion... the closest: "A X", 1 edit, length 2)
    hyps = [["K", "AE", "T"], ["D", "AO", "G", "Z"], ["A"]]
    refs = [[["K", "AA", "T"], ["K", "AE", "T"]], [["D", "AA", "G", "Z"]], [["A", "B", "C", "D", "E", "F"], ["A", "X"]]]
    er = error_rates(hyps, refs)
    assert er.distances == (0, 1, 1) and er.chosen == (1, 0, 1)
    assert (er.edits, er.ref_tokens) == (2, 3 + 4 + 2)
    assert er.token_error_rate == pytest.approx(2 / 9)  # not the mean of per-word rates (0, 1/4, 1/2)
    assert er.sequence_error_rate == pytest.approx(2 / 3)  # G2P's word error rate: words not exactly right


def test_error_rates_count_insertions_deletions_and_substitutions() -> None:
    er = error_rates([list("kitten"), list("flaw")], [[list("sitting")], [list("lawn")]])
    assert er.distances == (3, 2)  # the textbook cases
    assert er.token_error_rate == pytest.approx(5 / 11)
    assert er.sequence_error_rate == 1.0
    perfect = error_rates([[1, 2], [3]], [[[1, 2]], [[3]]])
    assert perfect.token_error_rate == 0.0 and perfect.sequence_error_rate == 0.0


def test_hypothesis_drops_the_end_token_or_keeps_the_fixed_width() -> None:
    v = Vocab.from_texts(["abc"])
    enc = encode_split([Example("ab", "ca")], v)
    a, b, c = (v.index[x] for x in "abc")
    assert hypothesis([c, a, EOS], enc, 0) == [c, a]
    assert hypothesis([c, a, b, b], enc, 0) == [c, a, b, b]  # never ended: every token it wrote counts
    fixed = encode_split([Example("ab", "ca")], v, eos=False)
    assert hypothesis([c, a, b, b], fixed, 0) == [c, a]  # the book's fixed-length decoding: the target's width


class Echo(torch.nn.Module):
    """A stand-in model whose greedy output is fixed per source row: ``outputs[first source id]``."""

    def __init__(self, outputs: dict[int, list[int]]) -> None:
        super().__init__()
        self.outputs = outputs
        self.w = torch.nn.Parameter(torch.zeros(1))

    def generate(self, src, src_mask, max_len, bos, eos, return_attention=False):  # noqa: ANN001
        rows = [self.outputs[int(s[0])] for s in src]
        out = torch.zeros(len(rows), max_len, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r[:max_len])
        return type("G", (), {"tokens": out, "attention": None})()


def test_exact_match_is_against_any_reference() -> None:
    space = Tokenizer("space")
    exs = [Example("r", "AH B", others=("AA B",)), Example("t", "K AE T"), Example("d", "D AO G", others=("D AA G",))]
    vocab = Vocab.from_tokens(["r", "t", "d", "AH", "AA", "B", "K", "AE", "T", "D", "AO", "G"])
    enc = encode_split(exs, vocab, source=space, target=space)
    i = vocab.index
    model = Echo({i["r"]: [i["AA"], i["B"], EOS], i["t"]: [i["K"], i["AE"], EOS], i["d"]: [i["D"], i["AA"], i["G"], EOS]})
    ev = evaluate(model, enc, torch.device("cpu"), batch_size=2)
    # row 0 matches its second reference, row 1 misses a token, row 2 matches its second reference
    assert ev.exact_match == pytest.approx(2 / 3)
    assert ev.token_accuracy < 1  # token accuracy is against the first reference: "AA" is not "AH"
    er = error_rates([hypothesis(p, enc, k) for k, p in enumerate(ev.predictions)], enc.refs)
    assert er.distances == (0, 1, 0)
    assert er.token_error_rate == pytest.approx(1 / (2 + 3 + 3))
    assert er.sequence_error_rate == pytest.approx(1 - ev.exact_match)


def test_bleu_and_chrf_with_several_references_and_their_signatures() -> None:
    pytest.importorskip("sacrebleu")
    hyps = ["the cat sat on the mat", "a dog ran"]
    exact = text_scores(hyps, [["the cat sat on the mat"], ["a dog ran"]])
    assert exact["test_bleu"] == pytest.approx(1.0) and exact["test_chrf"] == pytest.approx(1.0)
    assert "nrefs:1" in exact["bleu_signature"] and "version:" in exact["chrf_signature"]
    # the second source's right answer is only its second reference: scoring every reference finds it
    one = text_scores(hyps, [["the cat sat on the mat"], ["the dog ran away home"]])
    both = text_scores(hyps, [["the cat sat on the mat"], ["the dog ran away home", "a dog ran"]])
    assert both["test_bleu"] == pytest.approx(1.0) and one["test_bleu"] < 1.0
    assert "nrefs:var" in both["bleu_signature"]  # one source with two references, one with one: padded with None
    import sacrebleu

    want = sacrebleu.corpus_bleu(hyps, [["the cat sat on the mat", "the dog ran away home"]]).score / 100
    assert one["test_bleu"] == pytest.approx(want)  # sacrebleu's own figure, as a fraction
