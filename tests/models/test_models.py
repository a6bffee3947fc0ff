"""The model zoo beyond the contract: sizes shaped for GPUs, early stopping, the Transformer's cache and position
table, gradients, options.

What every model must keep -- shapes, masks, no look-ahead, greedy decoding equal to teacher forcing, seeds,
budgets, host syncs, learning a tiny task -- is the contract (``bench.train.contract``), run over the whole
registry in ``test_contract.py``. What is generic here is parametrised over ``models.names()`` and uses only the
public interface, so a newly registered model is checked too; what holds the built-in models to the project's
own choices (every budget size, GPU-shaped widths) runs over ``BUILTIN``. The Transformer's cache check runs in
float64 so that equal tokens cannot hinge on a near-tie.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import models
from bench.data.vocab import BOS, EOS
from bench.train.contract import first_batch
from models.base import STOP_CHECK_EVERY, after_eos, greedy_decode
from tests.conftest import builtin_models

NAMES = models.names()
BUILTIN = builtin_models()  # the project's own models (installed plugins aside)
V = models.BUDGET_VOCAB


def tiny(name: str, dtype: torch.dtype = torch.float32, seed: int = 0, **overrides) -> models.Seq2Seq:
    torch.manual_seed(seed)
    return models.build(name, V, "tiny", **overrides).to(dtype).eval()


def random_batch(B: int = 5, S: int = 9, T: int = 7, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded random source (lengths 2..S, at least one full row and one short row) and a BOS target: the
    contract's first batch, of another shape where asked."""
    return first_batch(V, B, S, T, seed)


# ---------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", BUILTIN)
def test_every_model_has_the_budget_sizes(name: str) -> None:
    assert set(models.BUDGETS) <= set(models.sizes(name))


GPU_SIZES = ("large", "xl")  # 20 M and 100 M parameters: counted on the meta device, never allocated here


@pytest.mark.parametrize("name,size", [(n, s) for n in NAMES for s in models.sizes(n) if s not in GPU_SIZES])
def test_shape_and_real_parameter_count(name: str, size: str) -> None:
    """A real build runs forward, and has exactly the parameters the meta-device count says."""
    torch.manual_seed(0)
    model = models.build(name, V, size).eval()
    src, mask, tgt_in = random_batch(B=3, S=6, T=4)
    with torch.no_grad():
        logits = model(src, mask, tgt_in)
    assert logits.shape == (3, 4, V)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert models.count_params(model) == models.param_count(name, V, size)


def test_param_count_allocates_nothing(monkeypatch) -> None:
    seen: list[set[str]] = []
    real = models.count_params

    def spy(model):
        seen.append({p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()})
        return real(model)

    monkeypatch.setattr(models, "count_params", spy)
    for name in BUILTIN:
        assert models.param_count(name, V, "xl") > 0.9 * models.BUDGETS["xl"]
    assert seen and all(s == {"meta"} for s in seen)


@pytest.mark.parametrize("name", BUILTIN)
def test_gpu_sizes_have_gpu_shapes(name: str) -> None:
    """At large and xl every width is a multiple of 64 (tensor-core tiles); heads divide d_model."""
    for size in GPU_SIZES:
        cfg = models.config(name, V, size)
        for field in ("embed", "hidden", "d_model", "ff", "width"):
            if hasattr(cfg, field):
                assert getattr(cfg, field) % 64 == 0, f"{name}/{size}: {field}={getattr(cfg, field)}"
        if hasattr(cfg, "heads"):
            assert cfg.d_model % cfg.heads == 0 and (cfg.d_model // cfg.heads) % 64 == 0
        if name == "gnmt":  # a deep residual stack; each direction of the bidirectional bottom layer 64-aligned
            assert min(cfg.enc_layers, cfg.dec_layers) > cfg.residual_from + 2 and (cfg.hidden // 2) % 64 == 0


def test_book_sizes_are_the_books() -> None:
    # Book ch. 7 (seq2seq, peeky): wordvec 16, hidden 128; ch. 8 (attention): wordvec 16, hidden 256.
    for name, hidden in (("seq2seq", 128), ("peeky", 128), ("attention", 256)):
        cfg = models.config(name, V, "book")
        assert (cfg.embed, cfg.hidden) == (16, hidden)


# ---------------------------------------------------------------------------------------------------- masks


def test_a_real_source_token_does_change_the_outputs() -> None:
    """Sanity check of the contract's padding rule: changing a *real* source token does change the outputs."""
    for name in NAMES:
        model = tiny(name)
        src, mask, tgt_in = random_batch()
        changed = src.clone()
        changed[:, 0] = 3 + (src[:, 0] - 3 + 5) % (V - 3)
        with torch.no_grad():
            assert not torch.allclose(model(changed, mask, tgt_in), model(src, mask, tgt_in)), name


# ---------------------------------------------------------------------------------------------------- decoding


def _module_calls(model: torch.nn.Module, fn) -> int:
    """How many times any leaf module of ``model`` runs during ``fn()``: a measure of decoding steps done."""
    calls = [0]

    def hook(*_):
        calls[0] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        fn()
    finally:
        for h in handles:
            h.remove()
    return calls[0]


def _ending_token(tokens: torch.Tensor, before: int) -> int | None:
    """A token id every row emits before position ``before`` (the earliest such, by its latest first hit)."""
    best, best_at = None, before
    for v in tokens.unique().tolist():
        hits = tokens[:, :before] == v
        if hits.any(dim=1).all():
            at = int(hits.float().argmax(dim=1).max())  # the last row to emit v, at its first v
            if at < best_at:
                best, best_at = v, at
    return best


EARLY_STOP = [(n, {}) for n in NAMES] + [("transformer", {"use_cache": False})]  # the static decoder's: tests/train/test_decode.py


@pytest.mark.parametrize("name,kw", EARLY_STOP, ids=[*NAMES, "transformer-uncached"])
def test_early_stop_gives_the_fixed_length_result(name: str, kw: dict) -> None:
    """Decoding stops once every row has emitted EOS (checked every STOP_CHECK_EVERY steps), and returns
    exactly what running all max_len steps and finishing the rows gives: tokens, PAD and maps."""
    src, mask, _ = random_batch(B=4, S=8)
    max_len = 5 * STOP_CHECK_EVERY
    for seed in range(10):  # random weights: the first model whose rows share a token, used as EOS
        model = tiny(name, seed=seed)
        full = model.generate(src, mask, max_len, BOS, -1, return_attention=True, **kw)  # no row ever ends: every step runs
        eos = _ending_token(full.tokens, max_len - 2 * STOP_CHECK_EVERY)  # every row ends well before max_len
        if eos is not None:
            break
    assert eos is not None, f"{name}: no seed gives a token that every row emits"
    stopped = model.generate(src, mask, max_len, BOS, eos, return_attention=True, **kw)
    dead = after_eos(full.tokens, eos)
    assert torch.equal(stopped.tokens, full.tokens.masked_fill(dead, 0))
    if full.attention is not None:
        assert torch.equal(stopped.attention, full.attention.masked_fill(dead.unsqueeze(-1), 0.0))
    else:
        assert stopped.attention is None
    # ... and it did stop early: fewer module calls than the full-length decode.
    n_full = _module_calls(model, lambda: model.generate(src, mask, max_len, BOS, -1, **kw))
    n_stopped = _module_calls(model, lambda: model.generate(src, mask, max_len, BOS, eos, **kw))
    assert n_stopped < n_full, name


def test_shared_loop_checks_for_the_end_every_k_steps() -> None:
    """Rows end at steps 3 and 10 (1-based): the loop runs to the next check, 2K steps, not to max_len."""
    K = STOP_CHECK_EVERY
    ends = torch.tensor([3, 10])
    calls = []

    def step(tok: torch.Tensor) -> tuple[torch.Tensor, None]:
        calls.append(tok)
        t = len(calls)  # 1-based step
        ids = torch.where(ends == t, 2, 5 + t % 3)  # EOS = 2 at each row's end step, something else otherwise
        return F.one_hot(ids, 9).float().unsqueeze(1), None  # logits [B,1,V]

    gen = greedy_decode(step, 2, 6 * K, 1, 2, torch.device("cpu"))
    assert len(calls) == 2 * K  # stopped at the first check after step 10
    assert gen.tokens.shape == (2, 6 * K)
    assert gen.tokens[0, 2] == 2 and (gen.tokens[0, 3:] == 0).all() and gen.tokens[1, 9] == 2 and (gen.tokens[1, 10:] == 0).all()
    calls.clear()
    ends[1] = 5 * K + 1  # the last row ends after the last check: every step runs
    greedy_decode(step, 2, 5 * K + 3, 1, 2, torch.device("cpu"))
    assert len(calls) == 5 * K + 3


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_transformer_cached_generate_equals_uncached(positions: str) -> None:
    torch.manual_seed(0)
    model = models.build("transformer", V, "small", positions=positions).double().eval()
    src, mask, _ = random_batch(B=6, S=12)
    cached = model.generate(src, mask, 20, BOS, EOS, return_attention=True)
    uncached = model.generate(src, mask, 20, BOS, EOS, return_attention=True, use_cache=False)
    assert torch.equal(cached.tokens, uncached.tokens)
    torch.testing.assert_close(cached.attention, uncached.attention)
    assert cached.tokens.unique().numel() > 1  # a non-trivial sequence, not one token repeated


# ---------------------------------------------------------------------------------------------------- learning


def test_gradients_reach_the_first_layers() -> None:
    """In the deep models the loss gradient reaches the embeddings and the bottom layer with nonzero norm."""
    first = {
        "gnmt": ("src_embed.weight", "encoder.0.weight_ih_l0", "encoder.0.weight_ih_l0_reverse", "tgt_embed.weight",
                 "decoder.0.weight_ih_l0"),
        "transformer": ("src_embed.weight", "encoder.0.ln1.weight", "encoder.0.attn.qkv.weight", "tgt_embed.weight",
                        "decoder.0.self_attn.qkv.weight"),
    }
    for name, params in first.items():
        for size in ("tiny", "base"):  # base: gnmt is 8+8 layers deep
            torch.manual_seed(0)
            model = models.build(name, V, size).train()
            src, mask, tgt_in = random_batch()
            F.cross_entropy(model(src, mask, tgt_in).flatten(0, 1), tgt_in.roll(-1, 1).flatten()).backward()
            named = dict(model.named_parameters())
            for p in params:
                g = named[p].grad
                assert g is not None and torch.isfinite(g).all() and g.norm() > 0, f"{name}/{size}: no gradient at {p}"


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_finite_gradient(name: str) -> None:
    model = tiny(name).train()
    src, mask, tgt_in = random_batch()
    F.cross_entropy(model(src, mask, tgt_in).flatten(0, 1), tgt_in.roll(-1, 1).flatten()).backward()
    for p_name, p in model.named_parameters():
        assert p.grad is not None, f"{p_name} is not used by forward"
        assert torch.isfinite(p.grad).all(), p_name


# ---------------------------------------------------------------------------------------------------- long sequences


def test_longest_sequence_per_model() -> None:
    """The harness asks the registry how long a sequence a model takes: None (no limit) for the recurrent
    models, the position table for the Transformer -- at least 2048 by default, and what max_positions says."""
    for name in NAMES:
        limit = models.longest_sequence(name, "small")
        if name == "transformer":
            assert limit is not None and limit >= 2048
        else:
            assert limit is None, name
    assert models.longest_sequence("transformer", "xl", max_positions=300) == 300
    assert models.longest_sequence("transformer", "tiny", positions="learned") == 512
    assert models.longest_sequence("transformer", "tiny", positions="learned", max_positions=2048) == 2048


def test_transformer_default_table_covers_long_sequences_without_parameters() -> None:
    for size in models.BUDGETS:  # sinusoids are a buffer: the table's length costs no parameters
        assert models.param_count("transformer", V, size) == models.param_count("transformer", V, size, max_positions=16)
    d = models.config("transformer", V, "tiny").d_model
    learned = models.param_count("transformer", V, "tiny", positions="learned", max_positions=100)
    assert learned == models.param_count("transformer", V, "tiny") + 100 * d  # learned rows are parameters
    model = tiny("transformer")
    S = T = 2050  # a 2048-character source and its target with BOS / EOS
    src = torch.randint(3, V, (1, S))
    tgt_in = torch.randint(3, V, (1, T))
    with torch.no_grad():
        logits = model(src, torch.ones(1, S, dtype=torch.bool), tgt_in)
    assert logits.shape == (1, T, V) and torch.isfinite(logits).all()


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_transformer_refuses_sequences_past_its_table(positions: str) -> None:
    model = tiny("transformer", positions=positions, max_positions=12)
    src, mask, tgt_in = random_batch(B=2, S=12, T=12)
    with torch.no_grad():
        model(src, mask, tgt_in)  # exactly the table: fine
        long_src = torch.cat([src, src[:, :1]], dim=1)
        with pytest.raises(ValueError, match="max_positions=12"):
            model(long_src, torch.ones_like(long_src, dtype=torch.bool), tgt_in)
        with pytest.raises(ValueError, match="max_positions=12"):
            model(src, mask, torch.cat([tgt_in, tgt_in[:, :1]], dim=1))
    assert model.generate(src, mask, 12, BOS, -1).tokens.shape == (2, 12)
    with pytest.raises(ValueError, match="max_positions=12"):
        model.generate(src, mask, 13, BOS, EOS)


# --- options: checked against the config before anything is built ------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_size_lies_within_its_config_limits(name) -> None:
    """The declared ranges and choices admit every registered size, and name only real fields."""
    import dataclasses

    from models.options import check_options

    cls = models.entry(name).config_cls
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(cls.LIMITS) <= fields
    for size in models.sizes(name):
        cfg = models.config(name, V, size)
        values = {f: getattr(cfg, f) for f in fields - {"vocab_size"}}
        assert check_options(cls, values) == values


@pytest.mark.parametrize("name, options, words", [
    ("attention", {"bidirectional": "maybe"}, ["bidirectional", "true or false"]),
    ("attention", {"bidirectional": 1}, ["bidirectional", "true or false"]),
    ("attention", {"score": "cosine"}, ["score", "dot, general, additive"]),
    ("attention", {"hidden": 0}, ["hidden", ">= 1"]),
    ("attention", {"hidden": True}, ["hidden", "integer"]),
    ("seq2seq", {"dropout": 2}, ["dropout", "[0, 1)"]),
    ("seq2seq", {"dropout": float("nan")}, ["dropout", "finite"]),
    ("gnmt", {"attention_feed": "input"}, ["attention_feed", "gnmt, output"]),
    ("transformer", {"positions": "rotary"}, ["positions", "sinusoidal, learned"]),
    ("ntm", {"clip": 0}, ["clip", "> 0"]),
    ("ntm", {"shift": -1}, ["shift", ">= 0"]),
    ("mingru", {"form": "hybrid"}, ["form", "prefix, cross"]),
    ("minlstm", {"scan": "blelloch"}, ["scan", "chunked, heinsen"]),
    ("ssm", {"kernel": "triton"}, ["kernel", "torch, mamba"]),
    ("ssm", {"d_state": 0}, ["d_state", ">= 1"]),
])
def test_bad_options_are_refused_with_the_rule(name, options, words) -> None:
    with pytest.raises(models.OptionError) as e:
        models.config(name, V, "tiny", **options)
    for w in words:
        assert w in str(e.value)


def test_options_are_coerced_to_the_field_type() -> None:
    cfg = models.config("attention", V, "tiny", bidirectional="TRUE", dropout=0)
    assert cfg.bidirectional is True and isinstance(cfg.dropout, float)
    assert models.config("attention", V, "tiny", bidirectional="false").bidirectional is False
    with pytest.raises(KeyError, match="LIMITS"):  # a class variable is not an option
        models.config("attention", V, "tiny", LIMITS={})
