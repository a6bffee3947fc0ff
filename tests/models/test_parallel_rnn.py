"""minGRU, minLSTM and the selective SSM: trained by a parallel scan, decoded by recurrence, in two forms.

What test_models.py checks for every model (masks, no look-ahead, budgets, host syncs, learning) runs on these
too, in both forms (its VARIANTS). Here: the scans equal the recurrence they parallelise, the models' parallel
path equals their step-by-step path, decoding carries a state that does not grow with the output (where the
Transformer's KV cache does), attention maps exist exactly in the cross form, and the CUDA kernel is asked for
only where it can run.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch.nn import functional as F

import models
from bench.data.vocab import BOS, EOS
from models.base import state_bytes
from models.recurrence import right_justify
from models.scan import A_FLOOR, CHUNK, LOOP_CHUNKS, SCANS, floor_decay, g, log_g, loop_scan, scan
from tests.models.test_models import V, random_batch

PARALLEL = ("mingru", "minlstm", "ssm")
FORMS = ("prefix", "cross")
ALL = [(n, f, s) for n in PARALLEL for f in FORMS for s in SCANS]
ALL_IDS = ["-".join(x) for x in ALL]


def build(name: str, seed: int = 0, **overrides) -> models.Seq2Seq:
    torch.manual_seed(seed)
    return models.build(name, V, "tiny", **{"dropout": 0.0, **overrides}).eval()


# ---------------------------------------------------------------------------------------------------- the scans


@pytest.mark.parametrize("method", SCANS)
@pytest.mark.parametrize("T", [1, 5, CHUNK, CHUNK + 3, 10 * CHUNK + 1, (LOOP_CHUNKS + 2) * CHUNK + 5])
def test_scan_equals_the_recurrence(method: str, T: int) -> None:
    """Every scan computes h_t = a_t h_{t-1} + b_t (decay floored) within 1e-5 in float32, values of either sign, at
    lengths inside one chunk, across chunks, and past the chunk count where the carry turns from loop to scan."""
    g_ = torch.Generator().manual_seed(T)
    log_a = -F.softplus(2 * torch.randn(3, T, 4, 2, generator=g_))  # gates from nearly 1 to below the floor
    b = torch.randn(3, T, 4, 2, generator=g_)
    ref = loop_scan(floor_decay(log_a).double().exp(), b.double())
    h = scan(log_a, b, method)
    assert h.dtype == torch.float32 and h.shape == b.shape
    # Heinsen's scan loses |a*_t| 2^-24 of relative precision as its running sum of log-decays grows (models.scan):
    # within 1e-5 up to ten chunks, 1e-3 at 533 steps. The chunked scan holds 1e-5 at every length.
    tol = 1e-3 if method == "heinsen" and T > 100 else 1e-5
    torch.testing.assert_close(h.double(), ref, rtol=tol, atol=tol)
    if method == "heinsen":  # positive values through the one-scan path (log b given)
        torch.testing.assert_close(scan(log_a, b.abs(), method, log_b=b.abs().log()).double(), loop_scan(floor_decay(log_a).double().exp(),
                                   b.abs().double()), rtol=tol, atol=tol)


@pytest.mark.parametrize("method", SCANS)
def test_scan_gradients_equal_the_recurrences(method: str) -> None:
    g_ = torch.Generator().manual_seed(0)
    log_a = -F.softplus(torch.randn(2, 3 * CHUNK + 2, 5, generator=g_))
    b = torch.randn(2, 3 * CHUNK + 2, 5, generator=g_)
    w = torch.randn(b.shape, generator=g_)
    la, bb = log_a.clone().requires_grad_(), b.clone().requires_grad_()
    (scan(la, bb, method) * w).sum().backward()
    la64, b64 = log_a.double().requires_grad_(), b.double().requires_grad_()
    (loop_scan(floor_decay(la64).exp(), b64) * w.double()).sum().backward()
    torch.testing.assert_close(la.grad.double(), la64.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bb.grad.double(), b64.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", SCANS)
def test_the_decay_floor_is_the_same_everywhere(method: str) -> None:
    """A gate far below the floor (log a = -100) keeps A_FLOOR of the state in the scan, as the step does."""
    b = torch.tensor([[1.0], [0.0], [0.0]]).unsqueeze(0)  # [1,3,1]: one value, then two steps of pure decay
    h = scan(torch.full((1, 3, 1), -100.0), b, method)
    torch.testing.assert_close(h.flatten(), torch.tensor([1.0, A_FLOOR, A_FLOOR**2]), rtol=1e-4, atol=0)


def test_scans_compute_in_float32_under_half_precision() -> None:
    log_a = -F.softplus(torch.randn(2, 20, 3)).bfloat16()
    b = torch.randn(2, 20, 3).bfloat16()
    for method in SCANS:
        assert scan(log_a, b, method).dtype == torch.float32


def test_g_is_positive_continuous_and_log_g_its_log() -> None:
    x = torch.linspace(-30, 30, 601)
    assert (g(x) > 0).all()
    torch.testing.assert_close(log_g(x), g(x).log())
    torch.testing.assert_close(g(torch.tensor([-1e-6, 0.0])), torch.tensor([0.5, 0.5]), atol=1e-6, rtol=0)


def test_right_justify_moves_padding_in_front() -> None:
    src = torch.tensor([[5, 6, 7], [8, 0, 0], [0, 0, 0]])
    mask = src != 0
    out, keep = right_justify(src, mask)
    assert out.tolist() == [[5, 6, 7], [0, 0, 8], [0, 0, 0]]
    assert keep.tolist() == [[True, True, True], [False, False, True], [False, False, False]]


# ---------------------------------------------------------------------------------------------------- the models


@pytest.mark.parametrize("name,form,method", ALL, ids=ALL_IDS)
def test_parallel_forward_equals_the_step_by_step_recurrence(name: str, form: str, method: str) -> None:
    """Teacher forcing by scan (forward) and by the recurrence alone -- the source read one position at a time,
    then the target one token at a time through ``step`` -- give the same logits within 1e-5 in float32; so do the
    states the two prefills leave (the parallel one is what ``generate`` starts from)."""
    model = build(name, form=form, scan=method)
    src, mask, tgt_in = random_batch(B=5, S=11, T=9)
    with torch.no_grad():
        ref = model(src, mask, tgt_in)  # [B,T,V]
        by_scan = model.prefill(src, mask)
        state = model.prefill(src, mask, parallel=False)
        for a, b in zip(by_scan.layers, state.layers, strict=True):
            for x, y in zip(a, b, strict=True):
                torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
        steps = torch.cat([model.step(tgt_in[:, t], state)[0] for t in range(tgt_in.size(1))], dim=1)
    torch.testing.assert_close(steps, ref, rtol=1e-5, atol=1e-5)
    assert ref.abs().amax() > 0.1  # not a trivially small output


@pytest.mark.parametrize("name,form", [(n, f) for n in PARALLEL for f in FORMS])
def test_generate_is_the_argmax_of_teacher_forcing_on_its_own_output(name: str, form: str) -> None:
    src, mask, _ = random_batch(B=4, S=10)
    for seed in range(10):  # random weights: the first model that does not emit one token throughout
        model = build(name, seed=seed, form=form)
        gen = model.generate(src, mask, 12, BOS, -1)
        if gen.tokens.unique().numel() > 1:
            break
    assert gen.tokens.unique().numel() > 1
    tgt_in = torch.cat([torch.full((4, 1), BOS), gen.tokens[:, :-1]], dim=1)
    with torch.no_grad():
        assert torch.equal(model(src, mask, tgt_in).argmax(-1), gen.tokens)


@pytest.mark.parametrize("name", PARALLEL)
def test_forms_have_the_budget_and_one_source_of_truth_for_attention(name: str) -> None:
    """Both forms meet every size's budget (the cross-attention comes out of the decoder's feed-forward), and
    the registry says a form has attention maps exactly when generate returns them."""
    for size, budget in models.BUDGETS.items():
        for form in FORMS:
            n = models.param_count(name, V, size, form=form)
            assert abs(n - budget) <= 0.10 * budget, (name, size, form, n)
    src, mask, _ = random_batch(B=4, S=8)
    for form in FORMS:
        gen = build(name, form=form).generate(src, mask, 6, BOS, EOS, return_attention=True)
        assert models.attention_maps(name, "tiny", form=form) == (form == "cross") == (gen.attention is not None)
        assert models.meta_record(name, "tiny", form=form)["attention"] == (form == "cross")
        if gen.attention is not None:  # the last decoder block's cross-attention, mean over heads
            assert gen.attention.shape == (4, 6, 8)
            assert (gen.attention.masked_select(~mask.unsqueeze(1).expand_as(gen.attention)) == 0).all()
    meta = models.entry(name).meta
    assert meta.recurrent and meta.scan and not meta.attention
    assert models.meta_record(name)["scan"] is True and models.meta_record("transformer")["scan"] is False


def test_prefix_form_carries_the_source_in_the_state_alone() -> None:
    """In the prefix form the answer sees the source only through the recurrent state at the separator: with the
    state after the source zeroed, the logits no longer depend on the source."""
    model = build("mingru")
    src, mask, tgt_in = random_batch(B=3, S=8, T=5)
    other = torch.where(mask, 3 + (src - 3 + 11) % (V - 3), src)
    with torch.no_grad():
        outs = []
        for s in (src, other):
            state = model.prefill(s, mask)
            state.layers = [tuple(torch.zeros_like(t) for t in st) for st in state.layers]
            outs.append(torch.cat([model.step(tgt_in[:, t], state)[0] for t in range(tgt_in.size(1))], dim=1))
        assert torch.equal(outs[0], outs[1])
        assert not torch.allclose(model(src, mask, tgt_in), model(other, mask, tgt_in))


# ---------------------------------------------------------------------------------------------------- decode state


def _bytes(model: models.Seq2Seq, src: torch.Tensor, mask: torch.Tensor, max_len: int) -> int:
    state = model.decode_state(src, mask, max_len)
    assert state is not None
    return state_bytes(state)


@pytest.mark.parametrize("name,form", [(n, f) for n in PARALLEL for f in FORMS])
def test_decode_state_is_flat_in_the_output_length(name: str, form: str) -> None:
    """O(1) per layer: the state generate carries has the same bytes for 8 or 512 output tokens, and stays that
    size while decoding; the Transformer's KV cache grows by 2 x layers x d_model floats per row and token."""
    model = build(name, form=form)
    src, mask, _ = random_batch(B=4, S=10)
    sizes = [_bytes(model, src, mask, L) for L in (8, 64, 512)]
    assert sizes[0] == sizes[1] == sizes[2] > 0
    state = model.prefill(src, mask)
    before = state_bytes(state.tensors())
    tok = torch.full((4,), BOS)
    with torch.no_grad():
        for _ in range(20):
            logits, _ = model.step(tok, state)
            tok = logits.argmax(-1).view(-1)
    assert state_bytes(state.tensors()) == before == sizes[0]
    if form == "prefix":  # the whole state: a few tensors per block, nothing that grows with the source either
        cfg = model.cfg
        per_row = sizes[0] // 4
        assert _bytes(model, *random_batch(B=4, S=40)[:2], 8) == sizes[0]
        assert per_row == cfg.layers * 4 * (cfg.hidden if name != "ssm" else cfg.expand * cfg.d_model * (cfg.d_state + cfg.d_conv - 1))


def test_transformer_decode_state_grows_with_the_output_length() -> None:
    model = models.build("transformer", V, "tiny").eval()
    cfg = model.cfg
    src, mask, _ = random_batch(B=4, S=10)
    sizes = [_bytes(model, src, mask, L) for L in (8, 64, 512)]
    per_token = 4 * 2 * cfg.dec_layers * cfg.d_model * 4  # rows x (K and V) x layers x width x float32
    assert sizes[1] - sizes[0] == 56 * per_token and sizes[2] - sizes[1] == 448 * per_token


# ---------------------------------------------------------------------------------------------------- the CUDA kernel


def test_mamba_kernel_is_asked_for_only_where_it_can_run(monkeypatch) -> None:
    assert models.unmet_requirement("ssm", "cpu", "tiny") is None
    assert models.unmet_requirement("mingru", "cuda", "tiny") is None
    cpu = models.unmet_requirement("ssm", "cpu", "tiny", kernel="mamba")
    assert cpu is not None and "CUDA" in cpu and "kernel=torch" in cpu
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mamba_ssm" else real(name, *a))
    missing = models.unmet_requirement("ssm", "cuda", "tiny", kernel="mamba")
    assert missing is not None and "s2sbench[mamba]" in missing
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "mamba_ssm" else real(name, *a))
    assert models.unmet_requirement("ssm", "cuda", "tiny", kernel="mamba") is None


MAMBA_TOL = {"rtol": 1e-3, "atol": 1e-4}  # float32 logits; the kernel scans sequentially in chunks, models.scan in parallel
MAMBA_GRAD_TOL = {"rtol": 1e-2, "atol": 1e-3}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is None, reason="needs mamba-ssm (pip install 's2sbench[mamba]')")
@pytest.mark.parametrize("form", FORMS)
def test_mamba_kernel_equals_the_torch_scan(form: str) -> None:
    """kernel=mamba and kernel=torch are one function: the same weights give the same logits (MAMBA_TOL) and
    gradients (MAMBA_GRAD_TOL) in float32, padding included, and the state a prefill leaves for decoding."""
    dev = torch.device("cuda")
    ref = models.build("ssm", V, "small", form=form, dropout=0.0).to(dev).eval()
    fast = models.build("ssm", V, "small", form=form, dropout=0.0, kernel="mamba").to(dev).eval()
    fast.load_state_dict(ref.state_dict())
    src, mask, tgt_in = (t.to(dev) for t in random_batch(B=8, S=40, T=33))
    a, b = ref(src, mask, tgt_in), fast(src, mask, tgt_in)
    torch.testing.assert_close(b, a, **MAMBA_TOL)
    a.square().mean().backward()
    b.square().mean().backward()
    for (n, p), q in zip(ref.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, **MAMBA_GRAD_TOL, msg=lambda m, n=n: f"{n}: {m}")
    with torch.no_grad():
        for x, y in zip(fast.prefill(src, mask).tensors(), ref.prefill(src, mask).tensors(), strict=True):
            torch.testing.assert_close(x, y, **MAMBA_TOL)


@pytest.mark.parametrize("name", ["seq2seq", "peeky", "attention"])
def test_the_lstm_models_carry_a_state_flat_in_the_output_length_too(name: str) -> None:
    """The book's recurrent models decode from (h, c) -- and attention from the encoder states, O(source) -- so their
    state does not grow with the output either; the peeky decoder's source vector is its encoder's h."""
    torch.manual_seed(0)
    model = models.build(name, V, "tiny").eval()
    src, mask, _ = random_batch(B=4, S=10)
    sizes = [_bytes(model, src, mask, L) for L in (8, 512)]
    H = model.cfg.hidden
    assert sizes[0] == sizes[1] == 4 * 4 * H * (2 if name != "attention" else 2 + 10)


@pytest.mark.parametrize("name", PARALLEL)
def test_the_cross_forms_fixed_shape_step_gives_generates_tokens_and_maps(name: str) -> None:
    """The decode step the harness replays as CUDA graphs (``decode_step``), in the form with attention: buffers
    larger than the batch, the same tokens and maps as ``generate``; its state buffers never change size."""
    src, mask, _ = random_batch(B=4, S=9)
    for seed in range(5):
        model = build(name, seed=seed, form="cross").double()
        want = model.generate(src, mask, 10, BOS, -1, return_attention=True)
        if want.tokens.unique().numel() > 1:
            break
    step = model.decode_step(6, 11, 10, return_attention=True)
    step.load(src, mask, BOS)
    shapes = [tuple(t.shape) for s in step.states for t in s]
    for _ in range(10):
        step.step()
    assert [tuple(t.shape) for s in step.states for t in s] == shapes and int(step.position) == 10
    assert torch.equal(step.tokens[:4], want.tokens)
    torch.testing.assert_close(step.attention[:4, :, :9], want.attention)
