"""The contract's rules by name, each with what it asks (``bench.train.contract`` checks them): read without torch, so
that the command line can list them in its help while ``report`` and ``compare`` still never load torch."""

from __future__ import annotations

# rule -> what it asks, as `check-model --help` and docs/plugins.md list them
MODEL_RULES: dict[str, str] = {
    "shapes": "forward: finite float32 logits [B,T,V]; generate: long tokens [B,max_len], PAD after EOS, maps exactly when declared",
    "padding": "changing padded source positions, or adding padded columns, changes no output",
    "look-ahead": "changing tgt_in[:, t+1:] leaves logits[:, :t+1] unchanged",
    "greedy": "generate's tokens are the argmax of forward on its own output",
    "seed": "two builds under one seed are identical, and one batch gives one output",
    "budget": "every budgeted size within +-10 % of its budget; the meta-device count equals a real build's",
    "host-sync": "host_sync() is declared exactly when forward reads a device value on the host",
    "learns": "memorises a tiny task (reverse 32 strings of 2-5 symbols) in at most 400 steps",
}
TASK_RULES: dict[str, str] = {
    "splits": "train, valid and test hold the examples asked for and share no source",
    "seed": "one seed gives the same examples twice",
    "examples": "non-empty strings; alignments exactly when declared, each span inside its source",
}
