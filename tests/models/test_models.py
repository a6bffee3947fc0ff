"""The model zoo: one interface, equivalent sizes, masks that hold, no future leakage, learning a tiny task.

Everything generic is parametrised over ``models.names()`` and uses only the public interface
(``forward``, ``generate``, ``models.build``/``config``), so a newly registered model is checked too.
Checks run in float32 (what every model must support) with "unchanged" meaning within 1e-5; the
Transformer's cache check runs in float64 so that equal tokens cannot hinge on a near-tie.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import models
from bench.data.batching import encode_split, make_batch
from bench.data.tasks import TaskOptions, make
from bench.data.vocab import BOS, EOS, Vocab
from models.base import STOP_CHECK_EVERY, after_eos, greedy_decode

NAMES = models.names()
V = models.BUDGET_VOCAB
# Models whose Generation.attention is known; a model not listed may return either (checked if returned).
# Non-default variants that take other code paths; they join the mask and leakage checks.
VARIANTS = [(n, {}) for n in NAMES] + [
    ("gnmt", {"attention_feed": "output"}),
    ("transformer", {"positions": "learned"}),
]
VARIANT_IDS = [n + "".join(f"-{v}" for v in o.values()) for n, o in VARIANTS]


def no_dropout(name: str) -> dict:
    """Override dropout to 0 where the config has it (generic: any model, any field set)."""
    return {"dropout": 0.0} if "dropout" in models.config(name, V, "tiny").__dataclass_fields__ else {}


def tiny(name: str, dtype: torch.dtype = torch.float32, seed: int = 0, **overrides) -> models.Seq2Seq:
    torch.manual_seed(seed)
    return models.build(name, V, "tiny", **overrides).to(dtype).eval()


def random_batch(B: int = 5, S: int = 9, T: int = 7, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded random source (lengths 2..S, at least one full row and one short row) and a BOS target."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, S + 1, (B,), generator=g)
    lengths[0], lengths[-1] = S, 2
    mask = torch.arange(S).unsqueeze(0) < lengths.unsqueeze(1)  # [B,S]
    src = torch.randint(3, V, (B, S), generator=g).masked_fill(~mask, 0)
    tgt_in = torch.randint(3, V, (B, T), generator=g)
    tgt_in[:, 0] = BOS
    return src, mask, tgt_in


# ---------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("name", NAMES)
def test_every_model_has_the_budget_sizes(name: str) -> None:
    assert set(models.BUDGETS) <= set(models.sizes(name))


GPU_SIZES = ("large", "xl")  # 20 M and 100 M parameters: counted on the meta device, never allocated here


@pytest.mark.parametrize("name,size", [(n, s) for n in NAMES for s in models.sizes(n) if s in models.BUDGETS])
def test_parameter_budget(name: str, size: str) -> None:
    """Every budgeted size of every model is within +-10 % of its budget, counted without allocating (meta)."""
    n, budget = models.param_count(name, V, size), models.BUDGETS[size]
    assert abs(n - budget) <= 0.10 * budget, f"{name}/{size}: {n:,} parameters, budget {budget:,} +-10 %"


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
    for name in NAMES:
        assert models.param_count(name, V, "xl") > 0.9 * models.BUDGETS["xl"]
    assert seen and all(s == {"meta"} for s in seen)


@pytest.mark.parametrize("name", NAMES)
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


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=VARIANT_IDS)
def test_no_future_leakage(name: str, overrides: dict) -> None:
    """logits[:, t] depend only on tgt_in[:, :t+1]: perturbing position k leaves logits[:, :k] unchanged."""
    model = tiny(name, **overrides)
    src, mask, tgt_in = random_batch()
    with torch.no_grad():
        ref = model(src, mask, tgt_in)
        for k in (1, 3, tgt_in.size(1) - 1):
            changed = tgt_in.clone()
            changed[:, k] = 3 + (tgt_in[:, k] - 3 + 7) % (V - 3)  # a different real token in every row
            out = model(src, mask, changed)
            torch.testing.assert_close(out[:, :k], ref[:, :k], rtol=0, atol=1e-5)
            assert not torch.allclose(out[:, k], ref[:, k]), "position k must see its own input token"


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=VARIANT_IDS)
def test_source_padding_is_ignored(name: str, overrides: dict) -> None:
    """Garbage in padded source positions -- and extra padded columns -- change no output."""
    model = tiny(name, **overrides)
    src, mask, tgt_in = random_batch()
    assert (~mask).any()
    g = torch.Generator().manual_seed(5)
    noisy = torch.where(mask, src, torch.randint(3, V, src.shape, generator=g))
    wide = torch.cat([noisy, torch.randint(3, V, (src.size(0), 3), generator=g)], dim=1)  # 3 more padded columns
    wide_mask = torch.cat([mask, torch.zeros(src.size(0), 3, dtype=torch.bool)], dim=1)
    gen = model.generate(src, mask, 6, BOS, EOS, return_attention=True)
    with torch.no_grad():
        ref = model(src, mask, tgt_in)
        for s, m in ((noisy, mask), (wide, wide_mask)):
            torch.testing.assert_close(model(s, m, tgt_in), ref, rtol=0, atol=1e-5)
            other = model.generate(s, m, 6, BOS, EOS, return_attention=True)
            assert torch.equal(other.tokens, gen.tokens)
            if gen.attention is not None:
                S = src.size(1)
                torch.testing.assert_close(other.attention[..., :S], gen.attention, rtol=0, atol=1e-5)
                assert (other.attention[..., S:] == 0).all()


def test_a_real_source_token_does_change_the_outputs() -> None:
    """Sanity check of the check above: changing a *real* source token does change the outputs."""
    for name in NAMES:
        model = tiny(name)
        src, mask, tgt_in = random_batch()
        changed = src.clone()
        changed[:, 0] = 3 + (src[:, 0] - 3 + 5) % (V - 3)
        with torch.no_grad():
            assert not torch.allclose(model(changed, mask, tgt_in), model(src, mask, tgt_in)), name


# ---------------------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("name", NAMES)
def test_generate_agrees_with_forward(name: str) -> None:
    """Greedy tokens are the argmax of forward() on the generated prefix: one model, two code paths."""
    model = tiny(name)
    src, mask, _ = random_batch(B=4)
    gen = model.generate(src, mask, 8, BOS, -1)  # eos -1 is never produced: all 8 tokens are kept
    assert gen.tokens.shape == (4, 8) and gen.tokens.dtype == torch.long
    tgt_in = torch.cat([torch.full((4, 1), BOS), gen.tokens[:, :-1]], dim=1)
    with torch.no_grad():
        assert torch.equal(model(src, mask, tgt_in).argmax(-1), gen.tokens)


@pytest.mark.parametrize("name", NAMES)
def test_generate_attention(name: str) -> None:
    model = tiny(name)
    src, mask, _ = random_batch(B=4, S=8)
    gen = model.generate(src, mask, 6, BOS, EOS, return_attention=True)
    plain = model.generate(src, mask, 6, BOS, EOS)
    assert plain.attention is None  # not asked, not computed
    assert torch.equal(plain.tokens, gen.tokens)  # asking for maps does not change the decoding
    if not models.entry(name).meta.attention:  # the registry's word, checked against what generate returns
        assert gen.attention is None
        return
    assert gen.attention is not None
    if gen.attention is not None:
        a = gen.attention
        assert a.shape == (4, 6, 8)
        assert (a >= 0).all()
        live = ~after_eos(gen.tokens, EOS)  # up to and including each row's EOS; zero maps after it
        torch.testing.assert_close(a.sum(-1), live.to(a.dtype))
        assert (a.masked_select(~mask.unsqueeze(1).expand_as(a)) == 0).all()


def test_generate_replaces_everything_after_eos_by_pad() -> None:
    for name in NAMES:
        model = tiny(name)
        src, mask, _ = random_batch(B=4)
        raw = model.generate(src, mask, 8, BOS, -1).tokens
        eos = int(raw[0, 2])  # pretend a token row 0 produces is EOS
        expected = raw.clone()
        for row in expected:
            hits = (row == eos).nonzero()
            if len(hits):
                row[int(hits[0]) + 1 :] = 0  # everything after the first EOS is PAD
        assert (expected == 0).any()
        assert torch.equal(model.generate(src, mask, 8, BOS, eos).tokens, expected), name


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
        "gnmt": ("src_embed.weight", "encoder.0.weight_ih_l0", "encoder.0.weight_ih_l0_reverse", "tgt_embed.weight", "decoder.0.weight_ih_l0"),
        "transformer": ("src_embed.weight", "encoder.0.ln1.weight", "encoder.0.attn.qkv.weight", "tgt_embed.weight", "decoder.0.self_attn.qkv.weight"),
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


@pytest.fixture(scope="module")
def date_batch():
    task = make("date", TaskOptions(train=64, valid=1, test=1))
    vocab = Vocab.from_texts(task.texts())
    enc = encode_split(task.train, vocab)
    return len(vocab), make_batch(enc, torch.arange(len(enc)))


@pytest.mark.parametrize("name", NAMES)
def test_overfits_a_date_batch(name: str, date_batch) -> None:
    """Every model can memorise 64 date conversions (book ch. 8's task) to 100 % exact match."""
    vocab_size, b = date_batch
    torch.manual_seed(0)
    model = models.build(name, vocab_size, "tiny", **no_dropout(name))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    acc = 0.0
    for step in range(1, 801):
        model.train()
        logits = model(b.src, b.src_mask, b.tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), b.tgt_out.flatten(), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0:
            model.eval()
            tokens = model.generate(b.src, b.src_mask, b.tgt_out.size(1), BOS, EOS).tokens
            acc = (tokens == b.tgt_out).all(dim=1).float().mean().item()
            if acc == 1.0:
                break
    assert acc == 1.0, f"{name}: {acc:.0%} exact match after {step} steps (loss {loss.item():.3f})"


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


SYNC_VARIANTS = VARIANTS + [("attention", {"bidirectional": True})]


@pytest.mark.parametrize("name,overrides", SYNC_VARIANTS, ids=[*VARIANT_IDS, "attention-bidirectional"])
def test_host_sync_is_declared_exactly_when_forward_reads_the_host(name: str, overrides: dict) -> None:
    """``models.host_sync`` decides whether ``--capture cudagraph`` is refused, so it must not lie either way.

    On the meta device a tensor has no values: a forward that reads one on the host (``.cpu()``, ``.item()``,
    packing's lengths) raises there, one that does not runs through -- the same line a CUDA graph draws.
    """
    with torch.device("meta"):
        m = models.build(name, V, "tiny", **overrides).train()
        src = torch.ones(3, 7, dtype=torch.long)
        mask = torch.ones(3, 7, dtype=torch.bool)
        tgt = torch.ones(3, 5, dtype=torch.long)
    declared = models.host_sync(name, "tiny", **overrides)
    try:
        m(src, mask, tgt).sum().backward()
        synced = None
    except NotImplementedError as e:  # only a read of values: any other error is a failure of its own
        if "meta tensor" not in str(e):
            raise
        synced = e
    assert (declared is None) == (synced is None), f"declared {declared!r}, forward on meta: {synced!r}"
