"""The recipe as settings: schedules against hand-computed rates, label smoothing against PyTorch's, AdamW only
when asked for, and the default recipe exactly today's (stored keys and losses bit for bit)."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from torch.nn import functional as F

import models
from bench.data.batching import encode_split
from bench.data.tasks import TaskOptions, make
from bench.data.vocab import PAD, Vocab
from bench.spec import suite
from bench.spec.run import RunSpec, SpecError, TrainConfig
from bench.train.loop import fit, make_step
from bench.train.loss import loss_fn
from bench.train.optim import Schedule, optimizer, schedule
from bench.train.schedule import lr_factor, total_steps
from bench.train.seeding import seed_everything

CPU = torch.device("cpu")
REPO = os.path.join(os.path.dirname(__file__), "..", "..")


# --- schedules: the rate at chosen steps, computed by hand ------------------------------------------------

@pytest.mark.parametrize("schedule_, warmup, step, total, want", [
    ("constant", 0, 1, 100, 1.0),
    ("constant", 0, 100, 100, 1.0),
    ("constant", 4, 1, 100, 0.25),  # warm-up: step / w
    ("constant", 4, 3, 100, 0.75),
    ("constant", 4, 4, 100, 1.0),
    ("constant", 4, 5, 100, 1.0),
    ("inverse-sqrt", 4, 2, 100, 0.5),
    ("inverse-sqrt", 4, 4, 100, 1.0),  # the peak, at the end of the warm-up
    ("inverse-sqrt", 4, 16, 100, 0.5),  # sqrt(4 / 16)
    ("inverse-sqrt", 4, 100, 100, 0.2),  # sqrt(4 / 100)
    ("inverse-sqrt", 0, 1, 100, 1.0),
    ("inverse-sqrt", 0, 25, 100, 0.2),  # sqrt(1 / 25)
    ("cosine", 0, 1, 5, 1.0),  # p = 0: the first update at the peak
    ("cosine", 0, 2, 5, (1 + math.cos(math.pi / 5)) / 2),  # p = 1/5: 0.904508...
    ("cosine", 0, 3, 5, (1 + math.cos(2 * math.pi / 5)) / 2),  # 0.654508...
    ("cosine", 10, 5, 30, 0.5),  # still warming up
    ("cosine", 10, 11, 30, 1.0),  # the first update after the warm-up
    ("cosine", 10, 21, 30, 0.5),  # p = 10 / 20: half way down
    ("cosine", 10, 30, 30, (1 + math.cos(math.pi * 19 / 20)) / 2),  # the last update: 0.00615..., above zero
    ("cosine", 10, 31, 30, 0.0),  # past the budget it stays at the bottom
])
def test_each_schedules_rate_at_chosen_steps(schedule_, warmup, step, total, want):
    assert lr_factor(schedule_, warmup, step, total) == pytest.approx(want, abs=1e-12)


def test_inverse_sqrt_is_vaswanis_formula_divided_by_its_peak():
    """Vaswani et al. 2017, eq. (3): lrate = d^-0.5 * min(step^-0.5, step * warmup^-1.5)."""
    d, w = 512, 4000
    vaswani = [d ** -0.5 * min(s ** -0.5, s * w ** -1.5) for s in (1, 100, 3999, 4000, 4001, 10_000, 100_000)]
    peak = d ** -0.5 * w ** -0.5
    ours = [lr_factor("inverse-sqrt", w, s, 100_000) for s in (1, 100, 3999, 4000, 4001, 10_000, 100_000)]
    assert ours == pytest.approx([v / peak for v in vaswani], rel=1e-12)


def test_total_steps_counts_the_short_last_batch():
    assert total_steps(3, 100, 32) == 12 and total_steps(1, 64, 64) == 1


def test_the_schedule_writes_each_updates_rate_into_the_optimiser():
    p = torch.nn.Parameter(torch.zeros(3))
    cfg = TrainConfig(lr=0.01, schedule="cosine", lr_warmup=2)
    opt = optimizer([p], cfg)
    s = schedule(opt, cfg, total=6)
    assert isinstance(s, Schedule)
    seen = []
    for _ in range(6):
        s.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([0.01 * lr_factor("cosine", 2, k, 6) for k in range(1, 7)])
    assert seen[:3] == pytest.approx([0.005, 0.01, 0.01])


def test_a_tensor_rate_is_filled_in_place():
    """A captured CUDA graph reads the rate from a device tensor's address: the schedule must not replace it."""
    p = torch.nn.Parameter(torch.zeros(3))
    cfg = TrainConfig(lr=0.01, schedule="inverse-sqrt", lr_warmup=4)
    lr = torch.tensor(cfg.lr)
    opt = optimizer([p], cfg, lr=lr, capturable=True)
    s = schedule(opt, cfg, total=10)
    s.step()
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.0025)


def test_no_schedule_when_the_rate_never_changes_and_one_needs_the_budget():
    opt = optimizer([torch.nn.Parameter(torch.zeros(1))], TrainConfig())
    assert schedule(opt, TrainConfig(), None) is None and schedule(opt, TrainConfig(lr_warmup=0, schedule="constant"), 10) is None
    with pytest.raises(ValueError, match="number of updates"):
        schedule(opt, TrainConfig(schedule="cosine"), None)


# --- label smoothing -----------------------------------------------------------------------------------

def test_label_smoothing_is_pytorchs_and_the_textbook_formula_and_ignores_padding():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7)  # [B,T,V]
    tgt = torch.randint(1, 7, (3, 5))
    tgt[0, 3:] = PAD
    tgt[2, 1:] = PAD
    e = 0.1
    ours = loss_fn(logits, tgt, reduction="sum", label_smoothing=e)
    theirs = F.cross_entropy(logits.reshape(-1, 7), tgt.reshape(-1), ignore_index=PAD, reduction="sum", label_smoothing=e)
    torch.testing.assert_close(ours, theirs)
    logp = logits.log_softmax(-1)
    keep = tgt != PAD
    by_hand = ((1 - e) * -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) + e * -logp.mean(-1))[keep].sum()  # (1-e) NLL + e * uniform CE
    torch.testing.assert_close(ours, by_hand)
    assert not torch.equal(ours, loss_fn(logits, tgt, reduction="sum"))
    assert torch.equal(loss_fn(logits, tgt, label_smoothing=0.0), F.cross_entropy(logits.reshape(-1, 7), tgt.reshape(-1), ignore_index=PAD))


# --- the optimiser -------------------------------------------------------------------------------------

def test_adam_by_default_adamw_with_weight_decay():
    ps = [torch.nn.Parameter(torch.ones(2))]
    assert type(optimizer(ps, TrainConfig())) is torch.optim.Adam
    opt = optimizer(ps, TrainConfig(lr=0.1, weight_decay=0.5))
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["weight_decay"] == 0.5
    ps[0].grad = torch.zeros(2)  # no gradient: only the decoupled decay moves the weight, by lr * wd * w
    opt.step()
    torch.testing.assert_close(ps[0].detach(), torch.full((2,), 1 - 0.1 * 0.5))


# --- the default recipe is today's -----------------------------------------------------------------------

def _tiny(n: int = 96):
    data = make("date", TaskOptions(seed=0, train=n, valid=16, test=4))
    vocab = Vocab.from_texts(data.texts())
    return vocab, encode_split(data.train, vocab), encode_split(data.valid, vocab)


def _todays_step(model: torch.nn.Module, cfg: TrainConfig):
    """The training step as it was before the recipe settings (plain Adam, unsmoothed loss), written out here."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step(b, denom=None):
        logits = model(b.src, b.src_mask, b.tgt_in)
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), b.tgt_out.reshape(-1), ignore_index=PAD, reduction="sum")
        loss = loss_sum / (b.tgt_out != PAD).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        return loss_sum.detach()

    return step


@pytest.mark.parametrize("model", ["attention", "transformer"])
def test_the_default_recipe_trains_bit_for_bit_as_before(model, monkeypatch):
    vocab, train, valid = _tiny()
    cfg = TrainConfig(epochs=2, batch_size=32, target=None)
    runs = {}
    for which in ("now", "before"):
        if which == "before":
            import bench.train.loop as loop

            monkeypatch.setattr(loop, "make_step", lambda m, c, d, rows=None, total_steps=None: _todays_step(m, c))
        seed_everything(0)
        m = models.build(model, len(vocab), "tiny")
        r = fit(m, train, valid, cfg, CPU, seed=0)
        runs[which] = ([e.loss for e in r.epochs], [p.detach().clone() for p in m.parameters()])
    assert runs["now"][0] == runs["before"][0]  # the same floats, not approximately
    assert all(torch.equal(a, b) for a, b in zip(runs["now"][1], runs["before"][1]))


def test_a_recipe_changes_the_losses_and_every_schedule_trains():
    vocab, train, valid = _tiny()
    out = {}
    for name, cfg in {"default": TrainConfig(epochs=2, batch_size=32, target=None),
                      "cosine": TrainConfig(epochs=2, batch_size=32, target=None, schedule="cosine", lr_warmup=2),
                      "inverse-sqrt": TrainConfig(epochs=2, batch_size=32, target=None, schedule="inverse-sqrt", lr_warmup=2),
                      "smooth+decay": TrainConfig(epochs=2, batch_size=32, target=None, label_smoothing=0.1, weight_decay=0.01)}.items():
        seed_everything(0)
        r = fit(models.build("attention", len(vocab), "tiny"), train, valid, cfg, CPU, seed=0)
        out[name] = [e.loss for e in r.epochs]
        assert all(math.isfinite(x) for x in out[name])
    assert len({tuple(v) for v in out.values()}) == len(out)


def test_a_scheduled_step_needs_the_runs_budget():
    vocab, _, _ = _tiny()
    with pytest.raises(ValueError, match="number of updates"):
        make_step(models.build("attention", len(vocab), "tiny"), TrainConfig(schedule="cosine"), CPU)


# --- settings: checked, stored only when set ----------------------------------------------------------------

@pytest.mark.parametrize("kw, key", [
    ({"schedule": "linear"}, "schedule"), ({"lr_warmup": -1}, "lr_warmup"), ({"lr_warmup": 2.5}, "lr_warmup"),
    ({"label_smoothing": 1.0}, "label_smoothing"), ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"label_smoothing": math.nan}, "label_smoothing"), ({"weight_decay": -1e-4}, "weight_decay"),
    ({"weight_decay": math.inf}, "weight_decay"),
])
def test_recipe_values_are_refused_with_their_key(kw, key):
    with pytest.raises(SpecError) as e:
        TrainConfig(**kw)
    assert e.value.key == key


def test_recipe_fields_are_stored_only_when_set():
    base = RunSpec("attention", "tiny", 0)
    assert not {"schedule", "lr_warmup", "label_smoothing", "weight_decay"} & set(base.config()["train"])
    tuned = RunSpec("attention", "tiny", 0, train=TrainConfig(schedule="cosine", lr_warmup=10, label_smoothing=0.1, weight_decay=0.01))
    assert {k: tuned.config()["train"][k] for k in ("schedule", "lr_warmup", "label_smoothing", "weight_decay")} == {
        "schedule": "cosine", "lr_warmup": 10, "label_smoothing": 0.1, "weight_decay": 0.01}
    assert tuned.key() != base.key()


@pytest.mark.parametrize("baseline", ["cpu-ci-avx2.json", "cpu-ci-avx512.json"])
def test_the_gate_suites_keys_are_the_committed_baselines(baseline):
    """CI pairs the gate suite with a committed baseline by config hash: the recipe settings must not move one.
    Rows of models a baseline has not recorded (the AVX2 one predates the parallel recurrences; it is re-recorded on
    an AVX2 machine) are new keys, not moved ones; quick's runs are all recorded."""
    with open(os.path.join(REPO, "results", "baselines", baseline), encoding="utf-8") as f:
        doc = json.load(f)
    committed = {(r["task"], r["model"], r["size"], h) for r in doc["results"].values() for h in r["config_hashes"]}
    recorded = {r["model"] for r in doc["results"].values()}
    _, _, specs = suite.load("gate")
    keys = {(s.data.name, s.model, s.size, s.config_hash()) for s in specs}
    assert {k for k in keys if k[1] in recorded} == committed
    _, _, quick = suite.load("quick")
    assert {(s.data.name, s.model, s.size, s.config_hash()) for s in quick} <= committed


def test_suite_keys_and_flags_reach_the_config():
    specs = suite.from_flags({"tasks": ["date"], "models": ["attention"]},
                             {"schedule": "inverse-sqrt", "lr_warmup": 40, "label_smoothing": 0.1, "weight_decay": 0.001})
    t = specs[0].train
    assert (t.schedule, t.lr_warmup, t.label_smoothing, t.weight_decay) == ("inverse-sqrt", 40, 0.1, 0.001)
