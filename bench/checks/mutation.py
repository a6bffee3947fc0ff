"""The mutation check: plant the quiet bugs a benchmark cannot afford, one at a time, and prove a test catches each.

    python -m bench.checks.mutation                     # every planted bug; a table: bug, file, caught by which test
    python -m bench.checks.mutation --list              # the planted bugs and the tests each one runs, nothing run
    python -m bench.checks.mutation --only gnmt-encoder-residual,warmup-in-rates --jobs 2
    python -m bench.checks.mutation --against tests/models   # which bugs does this selection catch?

A benchmark's worst bugs are the quiet ones: a model that is not quite the architecture it claims to be (a
GNMT without its residual connections still has the same parameter count and still learns a small batch), a
throughput figure computed over the wrong epochs, a timer that stops the clock before the device is done.
They change a number, not whether anything runs, so only a test that pins the defining property down can
see them. This check keeps that promise honest: each entry of ``MUTATIONS`` is one such bug as data -- a
file, an exact piece of its text and what replaces it -- and the tests that should catch it.

For each planted bug the check copies the tree (``bench``, ``models``, ``tests``, ``pyproject.toml`` and the
small committed files tests read, ``COPIED``) into a temporary folder, applies the one change there (the
working tree is never touched), and runs ``python -m pytest -x`` on the bug's tests in that copy, one torch
thread. A bug is *caught* when a test fails; the first failing test is named in the table. Before any bug is
planted, the union of all the selected tests runs once on an unchanged copy and must pass -- a test that
fails anyway catches nothing.

The list cannot rot silently: an entry whose text is not found exactly once in its file (the code moved
on) stops the check before anything runs, with one line naming it and exit code 2. Exit code 0 when
every planted bug is caught, 1 when one survives (or its tests time out).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.analysis import markdown

REPO = Path(__file__).resolve().parents[2]
# What a test run needs: the code, the tests, and the small committed files tests read (baselines, the Makefile,
# the CI files); stores, reports and virtual environments stay out. Those not in the tree are skipped.
COPIED = ("bench", "models", "tests", "pyproject.toml", "results/baselines", "Makefile", "tox.ini", "README.md", ".ci", ".github")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


@dataclass(frozen=True)
class Mutation:
    """One planted bug: in ``file``, the exact text ``old`` (found exactly once) becomes ``new``."""

    name: str
    what: str  # the bug in words, as the table shows it
    file: str  # relative to the repository root
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids (or files) that must catch it; fast, seconds each


M = Mutation
ARCH = "tests/models/test_architecture.py"
CONTRACT = "tests/models/test_contract.py"
NTM = "tests/models/test_ntm.py"
MET = "tests/results/test_metrics.py"
DER = "tests/runner/test_derived_metrics.py"
FIT = "tests/train/test_fit_records.py"
THR = "tests/train/test_throughput.py"
CMP = "tests/regress/test_compare.py"
SCO = "tests/train/test_scores.py"

MUTATIONS: tuple[Mutation, ...] = (
    # --- architectures: each model's defining connection -----------------------------------------------
    M("gnmt-encoder-residual", "GNMT encoder: residual connections removed", "models/gnmt.py",
      "x = y + x if i >= self.cfg.residual_from else y", "x = y",
      (f"{ARCH}::test_gnmt_encoder_layers_from_residual_from_are_residual",)),
    M("gnmt-decoder-residual", "GNMT decoder: residual connections removed", "models/gnmt.py",
      "new.append(s)\n                x = y + x if i >= res else y\n        else:", "new.append(s)\n                x = y\n        else:",
      (f"{ARCH}::test_gnmt_decoder_layers_from_residual_from_are_residual",)),
    M("gnmt-unidirectional-bottom", "GNMT encoder: bottom layer left-to-right only (same width)", "models/gnmt.py",
      "enc = [nn.LSTM(E, H // 2, batch_first=True, bidirectional=True)]", "enc = [nn.LSTM(E, H, batch_first=True)]",
      (f"{ARCH}::test_a_bidirectional_encoder_s_first_state_sees_the_last_source_token",)),
    M("peeky-no-input-peek", "peeky: the source vector no longer reaches the decoder's input", "models/seq2seq.py",
      "x = torch.cat([x, hs], dim=-1)  # [B,T,E+H]", "x = torch.cat([x, torch.zeros_like(hs)], dim=-1)",
      (f"{ARCH}::test_peeky_decoder_sees_the_source_vector_at_every_step",)),
    M("peeky-no-output-peek", "peeky: the source vector no longer reaches the output layer", "models/seq2seq.py",
      "y = torch.cat([y, hs], dim=-1)  # [B,T,2H]", "y = torch.cat([y, torch.zeros_like(hs)], dim=-1)",
      (f"{ARCH}::test_peeky_decoder_sees_the_source_vector_at_every_step",)),
    M("attention-padding-unmasked", "attention: padded source positions get attention weight", "models/attention.py",
      '        scores = scores.masked_fill(~src_mask.unsqueeze(1), float("-inf"))\n', "",
      (f"{CONTRACT}::test_padding_is_masked",)),
    M("transformer-unscaled-scores", "Transformer: attention scores not divided by sqrt(d_head)", "models/transformer.py",
      "attn_mask=bias, dropout_p=p, is_causal=causal)", "attn_mask=bias, dropout_p=p, is_causal=causal, scale=1.0)",
      (f"{ARCH}::test_transformer_attention_is_softmax_of_scaled_scores",)),
    M("transformer-maps-unscaled", "Transformer: attention maps not divided by sqrt(d_head) (not what SDPA used)", "models/transformer.py",
      "q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) + bias", "q @ k.transpose(-2, -1) + bias",
      (f"{ARCH}::test_transformer_attention_is_softmax_of_scaled_scores",)),
    M("transformer-padding-unmasked", "Transformer: source key padding not masked", "models/transformer.py",
      '.masked_fill(~src_mask, float("-inf"))\n        bias = bias[:, None, None, :]', "\n        bias = bias[:, None, None, :]",
      (f"{CONTRACT}::test_padding_is_masked",)),
    M("transformer-not-causal", "Transformer: decoder self-attention sees the future", "models/transformer.py",
      "a = self.self_attn.attend(q, k, v, causal=True)", "a = self.self_attn.attend(q, k, v, causal=False)",
      (f"{CONTRACT}::test_no_look_ahead",)),
    M("transformer-encoder-residual", "Transformer: encoder self-attention residual removed", "models/transformer.py",
      "x = x + self.drop(self.attn.attend(", "x = self.drop(self.attn.attend(",
      (f"{ARCH}::test_transformer_blocks_are_residual",)),
    M("ntm-dot-addressing", "NTM: content addressing by dot product, not cosine similarity", "models/ntm.py",
      "cos = dot / (nk * nm).clamp_min(eps)", "cos = dot",
      (f"{ARCH}::test_ntm_content_addressing_is_a_softmax_of_cosine_similarity",)),
    M("ntm-shift-reversed", "NTM: location shift moves the weighting the wrong way", "models/ntm.py",
      "(windows * s.flip(-1).unsqueeze(-2))", "(windows * s.unsqueeze(-2))",
      (f"{NTM}::test_shift_moves_one_hot_by_one_slot_circularly",)),
    M("ntm-gate-swapped", "NTM: interpolation gate keeps the old weighting when it should take the new", "models/ntm.py",
      "return g * w_content + (1 - g) * w_prev", "return g * w_prev + (1 - g) * w_content",
      (f"{NTM}::test_interpolation_gate",)),
    # --- metric derivations ----------------------------------------------------------------------------
    M("warmup-in-steady", "warm-up epoch counted in the steady-state epochs", "bench/results/metrics.py",
      "return list(epochs[1:]) or list(epochs)", "return list(epochs)",
      (MET,)),
    M("warmup-in-rates", "warm-up epoch counted in steady tokens/s (and so MFU)", "bench/results/metrics.py",
      "st = steady(epochs)", "st = list(epochs)",
      (MET, DER)),
    M("s-per-epoch-mean", "s/epoch is the mean of the steady epochs, not the median", "bench/results/metrics.py",
      "float(statistics.median(steady(epoch_seconds)))", "float(statistics.mean(steady(epoch_seconds)))",
      (MET,)),
    M("tokens-count-padding", "training tokens counted with the padding", "bench/train/loop.py",
      "tokens += int(train.tgt_len[b.index].sum())", "tokens += b.tgt_out.numel()",
      (FIT,)),
    M("throughput-tokens-count-padding", "throughput run counts padded target positions as tokens", "bench/train/throughput.py",
      "tokens = [float((b.tgt_out != PAD).sum()) for b in todo]", "tokens = [float(b.tgt_out.numel()) for b in todo]",
      (THR,)),
    M("flops-per-padded-position", "FLOPs per token divided by padded target positions", "bench/runner/execute.py",
      "flops_per_token = train_step_flops(model, probe) / max(probe.target_tokens, 1)",
      "flops_per_token = train_step_flops(model, probe) / max(probe.tgt_out.numel(), 1)",
      (DER,)),
    M("mfu-from-examples", "MFU computed from examples/s instead of tokens/s", "bench/runner/execute.py",
      '"mfu": mfu(flops_per_token, rates["train_tokens_per_s"], sc.peak(spec.train.amp)),',
      '"mfu": mfu(flops_per_token, rates["train_examples_per_s"], sc.peak(spec.train.amp)),',
      (DER,)),
    M("mfu-wrong-precision", "MFU against the fp32 peak for a bf16 run", "bench/runner/execute.py",
      '"mfu": mfu(flops_per_token, rates["train_tokens_per_s"], sc.peak(spec.train.amp)),',
      '"mfu": mfu(flops_per_token, rates["train_tokens_per_s"], sc.peak("off")),',
      (DER,)),
    M("lstm-backward-flops-uncounted", "FLOPs of the fused LSTM's backward pass counted as zero (CPU kernel)", "bench/measure/flops.py",
      "return 2 * mkldnn_rnn_layer_flops(input, weight1, weight2)", "return 0",
      ("tests/measure/test_timing.py::test_lstm_flops_follow_the_gate_matmul_formula",)),
    M("cudnn-backward-flops-halved", "FLOPs of cuDNN's LSTM backward pass counted once, not twice", "bench/measure/flops.py",
      "return 2 * cudnn_rnn_flops(input, weight)", "return cudnn_rnn_flops(input, weight)",
      ("tests/measure/test_timing.py::test_cudnn_lstm_formula_on_its_argument_shapes",)),
    M("time-to-target-with-eval", "time to target counts evaluation time as training time", "bench/train/loop.py",
      "result.time_to_target_s, result.wall_to_target_s = train_cum, wall_cum",
      "result.time_to_target_s, result.wall_to_target_s = wall_cum, wall_cum",
      (FIT,)),
    M("target-strictly-above", "the target counts as reached only when exceeded", "bench/train/loop.py",
      "ev.exact_match >= cfg.target", "ev.exact_match > cfg.target",
      (FIT,)),
    M("time-to-target-some-seeds", "a group's time to target from the seeds that reached it", "bench/regress/sides.py",
      'if metric == "time_to_target_s" and len(xs) < len(self.seeds):', 'if metric == "time_to_target_s" and not xs:',
      (f"{CMP}::test_a_group_has_a_time_to_target_only_when_every_seed_reached_it",)),
    M("t-interval-wrong-df", "95 % interval with n degrees of freedom, not n - 1", "bench/analysis/stats.py",
      "t95(n - 1) * std / math.sqrt(n)", "t95(n) * std / math.sqrt(n)",
      ("tests/train/test_evaluate.py::test_summarize_known_values",)),
    M("verdict-throughput-as-time", "a drop in tokens/s judged as if it were a time (better)", "bench/regress/verdicts.py",
      "cost = 1 / ratio if higher_is_better else ratio", "cost = ratio",
      (f"{CMP}::test_ratio_verdict_throughput_is_judged_as_time",)),
    M("verdict-ignores-seed-spread", "accuracy verdict ignores the seed-to-seed spread", "bench/regress/verdicts.py",
      "band = max(threshold, 2 * sp) if sp is not None else threshold", "band = threshold",
      (f"{CMP}::test_quality_verdict_uses_seed_spread",)),
    M("verdict-calibration-inverted", "machine normalisation applied the wrong way round", "bench/regress/compare.py",
      'ratio = ratio / (cn / cb) if better == "low" else ratio * (cn / cb)',
      'ratio = ratio * (cn / cb) if better == "low" else ratio / (cn / cb)',
      (f"{CMP}::test_slower_machine_with_slower_calibration_is_same",)),
    M("error-rate-rise-as-gain", "a rise of an error rate (PER, WER) judged as an improvement", "bench/regress/verdicts.py",
      "gain = -delta if lower_is_better else delta", "gain = delta",
      (f"{CMP}::test_an_error_rate_that_rises_is_the_regression",)),
    # --- scores for real outputs ---------------------------------------------------------------------------
    M("first-reference-not-closest", "error rates against the first reference, not the closest", "bench/train/scores.py",
      "if best < 0 or d < best:", "if best < 0:",
      (f"{SCO}::test_closest_reference_is_the_smallest_edit_distance_first_on_a_tie",)),
    M("per-over-first-reference-length", "PER divided by the first references' length, not the chosen ones'", "bench/train/scores.py",
      "total += len(rs[i])", "total += len(rs[0])",
      (f"{SCO}::test_error_rates_are_corpus_level_over_the_chosen_references",)),
    # --- timing ------------------------------------------------------------------------------------------
    M("stopwatch-no-sync", "stopwatch reads the clock before the device is done", "bench/measure/timing.py",
      "sync(self.device)\n        dt = time.perf_counter() - self._t0", "dt = time.perf_counter() - self._t0",
      ("tests/measure/test_timing.py::test_stopwatch_synchronises_cuda_at_start_and_stop",)),
    M("throughput-events-unsynced", "throughput step times read from CUDA events before they completed", "bench/train/throughput.py",
      "        torch.cuda.synchronize(device)\n        secs = ", "        secs = ",
      (THR,)),
    M("fp16-without-scaler", "fp16 training steps without the gradient scaler", "bench/train/loop.py",
      "scaler = prec.scaler(device)", "scaler = None",
      (FIT,)),
    # --- the store -----------------------------------------------------------------------------------------
    M("claim-ignores-stored-run", "a run already stored can be claimed, run and written again", "bench/results/owners.py",
      "AND key=? AND status='ok' LIMIT 1", "AND key=? AND 0 LIMIT 1",
      ("tests/results/test_owners.py::test_a_run_is_claimed_once_and_stored_only_under_its_claim",)),
    M("resume-skips-failed", "--resume counts failed runs as done (never retried)", "bench/results/store.py",
      "WHERE session=? AND status='ok'", "WHERE session=?",
      ("tests/runner/test_resume.py",)),
    M("resume-appends-to-finished", "--resume adds runs to a finished session", "bench/results/plans.py",
      'if row["status"] == "finished":', "if False:",
      ("tests/results/test_history.py",)),
    M("resume-outside-plan", "--resume runs what the session never planned", "bench/results/plans.py",
      "extra = keys - p.keys", "extra = set()",
      ("tests/runner/test_resume.py",)),
    M("merge-rewrites-finished", "merge replaces the runs of a session finished in OUT", "bench/results/merge.py",
      'if mine is not None and mine["status"] == "finished":', "if False:",
      ("tests/results/test_history.py",)),
    M("merge-writes-twice", "merge into a store that has the run writes it a second time", "bench/results/merge.py",
      "        if keep is None:\n            inserts.append((best[2], ", "        inserts.append((best[2], ",
      ("tests/runner/test_shards.py::test_merge_joins_same_session_ids_keeps_others_and_later_finished_wins",)),
)


@dataclass
class Outcome:
    mutation: Mutation
    caught_by: str | None  # the first failing test, or why it counts as caught
    seconds: float
    status: str  # caught | survived | timeout | error
    detail: str = ""


class ListError(Exception):
    """The mutation list does not fit the code any more (text not found exactly once, a missing file)."""


def check_list(mutations: Sequence[Mutation], root: Path = REPO, selection: Sequence[str] | None = None) -> None:
    """Every entry must apply exactly: its file exists, ``old`` occurs once, ``new`` differs, its tests (or
    the ``selection`` that replaces them) exist."""
    names = [m.name for m in mutations]
    if len(set(names)) != len(names):
        raise ListError("mutation names repeat: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    for m in mutations:
        path = root / m.file
        if not path.is_file():
            raise ListError(f"{m.name}: {m.file} does not exist")
        n = path.read_text(encoding="utf-8").count(m.old)
        if n != 1:
            raise ListError(f"{m.name}: the text to replace occurs {n} times in {m.file}, not once (the code moved on: update the entry)")
        if m.old == m.new:
            raise ListError(f"{m.name}: the replacement is the original text")
        if not m.tests:
            raise ListError(f"{m.name}: no tests to run")
        for t in selection or m.tests:
            if not (root / t.split("::", 1)[0]).exists():
                raise ListError(f"{m.name}: test file {t.split('::', 1)[0]} does not exist")


def copy_tree(dest: Path, root: Path = REPO) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for item in COPIED:
        src = root / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=SKIP)
        elif src.is_file():
            shutil.copy2(src, dest / item)
    return dest


def apply(m: Mutation, tree: Path) -> None:
    path = tree / m.file
    text = path.read_text(encoding="utf-8")
    assert text.count(m.old) == 1, m.name  # checked on the original by check_list
    path.write_text(text.replace(m.old, m.new), encoding="utf-8")


def run_tests(tree: Path, tests: Sequence[str], timeout: float, stop_first: bool = True) -> tuple[int | None, str]:
    """pytest on ``tests`` inside ``tree`` (the copy imports itself, one torch thread). -> (exit code or None on timeout, output)."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *(["-x"] if stop_first else []), *tests]
    try:
        p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out
    return p.returncode, p.stdout + p.stderr


def failing_tests(output: str) -> list[str]:
    """Node ids from pytest's short summary (``FAILED tests/x.py::test_y - ...``, ``ERROR ...``)."""
    out = []
    for line in output.splitlines():
        for tag in ("FAILED ", "ERROR "):
            if line.startswith(tag):
                out.append(line[len(tag):].split(" - ", 1)[0].strip())
    return out


def plant(m: Mutation, work: Path, timeout: float, selection: Sequence[str] | None = None, root: Path = REPO) -> Outcome:
    """Copy the tree, plant ``m``, run its tests (or ``selection``). -> whether and by what it was caught."""
    tree = copy_tree(work / m.name, root)
    apply(m, tree)
    t0 = time.perf_counter()
    rc, out = run_tests(tree, selection or m.tests, timeout)
    secs = time.perf_counter() - t0
    if rc is None:
        return Outcome(m, None, secs, "timeout", f"tests ran past {timeout:g} s")
    if rc == 0:
        return Outcome(m, None, secs, "survived", "every selected test passed")
    failed = failing_tests(out)
    if rc == 1 and failed:
        return Outcome(m, failed[0], secs, "caught")
    if failed:  # a collection error: loud, so caught, but say how
        return Outcome(m, f"{failed[0]} (error)", secs, "caught")
    tail = " ".join(out.strip().splitlines()[-1:])
    return Outcome(m, None, secs, "error", f"pytest exit {rc}: {tail}")


def baseline(mutations: Sequence[Mutation], work: Path, timeout: float, selection: Sequence[str] | None = None,
             root: Path = REPO) -> tuple[bool, str, float]:
    """The union of the selected tests on an unchanged copy: they must pass, or a failure proves nothing."""
    tests = list(selection) if selection else list(dict.fromkeys(t for m in mutations for t in m.tests))
    tree = copy_tree(work / "_unchanged", root)
    t0 = time.perf_counter()
    rc, out = run_tests(tree, tests, timeout * 4, stop_first=False)
    secs = time.perf_counter() - t0
    if rc == 0:
        return True, f"{len(tests)} selections pass unchanged", secs
    failed = failing_tests(out)
    why = "timed out" if rc is None else (", ".join(failed[:5]) or " ".join(out.strip().splitlines()[-3:]))
    return False, why, secs


def _verdict(o: Outcome) -> str:
    verdict = {"caught": o.caught_by, "survived": "NOT CAUGHT", "timeout": "NOT CAUGHT (timeout)", "error": "ERROR"}[o.status]
    return verdict + (f" -- {o.detail}" if o.status != "caught" and o.detail else "")


def table(outcomes: Sequence[Outcome]) -> str:
    """The check's table, one row per planted bug in list order: what, where, caught by which test, seconds."""
    rows = [(i, o.mutation.what, o.mutation.file, _verdict(o), f"{o.seconds:.0f}") for i, o in enumerate(outcomes, 1)]
    return markdown.table(("#", "planted bug", "file", "caught by", "s"), rows, align="rlllr")


PROG = "python -m bench.checks.mutation"  # the name usage and errors show; `s2sbench check mutation` passes its own


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """This check's options: one parser for both doors, ``python -m bench.checks.mutation`` and ``s2sbench check mutation``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="print the planted bugs and their tests; run nothing")
    p.add_argument("--only", help="comma-separated mutation names (default: all)")
    p.add_argument("--against", help="run these tests (comma-separated paths or node ids) for every bug instead of its own selection")
    p.add_argument("--jobs", type=int, default=1, help="bugs tested at once, each in its own copy (default 1)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one bug's tests may take (default: 600)")
    p.add_argument("--no-baseline", action="store_true", help="skip running the selected tests on the unchanged tree first")
    p.add_argument("--keep", help="build the copies here and keep them (default: a temporary folder, removed)")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    a = parser(prog).parse_args(argv)
    todo = list(MUTATIONS)
    if a.only:
        want = [n.strip() for n in a.only.split(",") if n.strip()]
        unknown = [n for n in want if n not in {m.name for m in MUTATIONS}]
        if unknown:
            print(f"mutation: error: unknown mutation {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        todo = [m for m in MUTATIONS if m.name in want]
    if a.jobs < 1:
        print("mutation: error: --jobs must be >= 1", file=sys.stderr)
        return 2
    selection = [t.strip() for t in a.against.split(",") if t.strip()] if a.against else None
    try:
        check_list(todo, selection=selection)
    except ListError as e:
        print(f"mutation: error: {e}", file=sys.stderr)
        return 2
    if a.list:
        for m in todo:
            print(f"{m.name:<32} {m.file:<28} {m.what}\n{'':<32} tests: {' '.join(m.tests)}")
        return 0
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="s2sbench-mutation-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    outcomes: list[Outcome] = []
    try:
        print(f"mutation check: {len(todo)} planted bugs, {a.jobs} at a time, copies in {work}", flush=True)
        if not a.no_baseline:
            ok, why, secs = baseline(todo, work, a.timeout, selection)
            print(f"unchanged tree: {'ok' if ok else 'FAILS'} ({why}; {secs:.0f} s)", flush=True)
            if not ok:
                print("mutation: error: the selected tests fail on the unchanged tree, so a failure would prove nothing", file=sys.stderr)
                return 2
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            for i, o in enumerate(pool.map(lambda m: plant(m, work, a.timeout, selection), todo), 1):  # in list order, as they end
                outcomes.append(o)
                done = f"caught by {o.caught_by}" if o.status == "caught" else _verdict(o)
                print(f"  {i}/{len(todo)} {o.mutation.name}: {done} ({o.seconds:.0f} s)", file=sys.stderr, flush=True)
    finally:
        if outcomes:  # the table, also of a check cut short: the bugs planted so far
            print("\n" + table(outcomes), flush=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    caught = sum(o.status == "caught" for o in outcomes)
    print(f"\n{caught}/{len(outcomes)} planted bugs caught in {time.perf_counter() - t0:.0f} s", flush=True)
    missed = [o.mutation.name for o in outcomes if o.status != "caught"]
    if missed:
        print(f"not caught: {', '.join(missed)}", flush=True)
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
