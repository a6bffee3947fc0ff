"""``s2sbench check-model | check-task``: a registered model or task -- built-in or plugin -- against the contract
(``bench.train.contract``). Exit 0 when it keeps every rule, 1 when it breaks one (each broken rule one line), 2 on bad
input: an unknown name, a plugin that does not load, a model that cannot be built or whose forward raises."""

from __future__ import annotations

import argparse
from typing import Any

from bench.cli import args
from bench.errors import UserError


def add(sub: Any) -> None:
    from bench.train.rules import MODEL_RULES, TASK_RULES

    cm = sub.add_parser("check-model", help="hold models to the interface contract every model keeps (exit 1 naming each broken rule)",
                        description="Rules: " + "; ".join(f"{k}: {v}" for k, v in MODEL_RULES.items()) + ".")
    cm.add_argument("names", nargs="+", metavar="NAME", help="registered models (see `s2sbench list --models`), or all")
    cm.add_argument("--size", help="the size the rules run the model at (default: tiny, else the model's smallest); budgets are checked at "
                    "every size")
    cm.add_argument("--option", type=args.option, action="append", default=[], metavar="KEY=VALUE",
                    help="model option, e.g. bidirectional=true")
    cm.add_argument("--rules", help=f"only these rules, separated by commas (default: all: {', '.join(MODEL_RULES)})")
    cm.add_argument("--threads", type=args.nonneg_int, default=1,
                    help="CPU threads (torch.set_num_threads; default 1: the contract's models are tiny, more threads only contend)")
    args.add_plugin_flag(cm)
    cm.set_defaults(func=cmd_check_model)

    ct = sub.add_parser("check-task",
                        help="hold tasks to the task contract: disjoint splits, one seed one dataset, alignments inside sources",
                        description="Rules: " + "; ".join(f"{k}: {v}" for k, v in TASK_RULES.items()) + ".")
    ct.add_argument("names", nargs="+", metavar="NAME", help="registered tasks (see `s2sbench list --tasks`), or all")
    args.add_plugin_flag(ct)
    ct.set_defaults(func=cmd_check_task)


def cmd_check_model(a: argparse.Namespace) -> int:
    import torch

    import models
    from bench.runner import plugins
    from bench.train import contract

    if a.threads < 1:
        raise UserError(f"--threads must be >= 1, got {a.threads}")
    torch.set_num_threads(a.threads)
    plugins.load(args.plugin_refs(a.plugin))
    names = models.names() if a.names == ["all"] else a.names
    rules = [r.strip() for r in a.rules.split(",") if r.strip()] if a.rules else None
    for r in rules or []:
        if r not in contract.MODEL_RULES:
            raise UserError(f"--rules: unknown rule {r!r}; rules: {', '.join(contract.MODEL_RULES)}")
    options = dict(a.option)
    for n in names:  # every name and size known before any rule runs
        if n not in models.names():
            raise UserError(f"unknown model {n!r}; known models: {', '.join(models.names())}")
        sizes = models.sizes(n)
        if a.size and a.size not in sizes:
            why = models.unreachable(n).get(a.size)
            raise UserError(f"--size: model {n!r} " + (f"cannot reach size {a.size!r}: {why}" if why
                                                       else f"has no size {a.size!r}; sizes: {', '.join(sizes)}"))
    failed = 0
    for n in names:
        meta = models.entry(n).meta
        who = n + (f" ({plugins.describe(meta.plugin, meta.plugin_version)})" if meta.plugin else "")
        try:
            size = a.size or contract.default_size(n)
            broken = contract.check_model(n, size, options, rules)
        except contract.Unusable as e:
            raise UserError(f"{who}: {e}") from None
        except models.OptionError as e:
            raise UserError(f"--option: {n} option {e.key} {e.rule}") from None
        except (KeyError, ValueError, TypeError) as e:  # an option the config does not have, or fields its constructor refuses
            raise UserError(f"--option: {n} at size {size}: {str(e).strip(chr(39) + chr(34))}") from None
        failed += _say(f"{who} at size {size}", broken, list(rules or contract.MODEL_RULES))
    return 1 if failed else 0


def cmd_check_task(a: argparse.Namespace) -> int:
    from bench.data import tasks
    from bench.runner import plugins
    from bench.train import contract

    plugins.load(args.plugin_refs(a.plugin))
    names = tasks.names() if a.names == ["all"] else a.names
    for n in names:
        tasks.entry(n)  # unknown: one line, before any task is made
    failed = 0
    for n in names:
        e = tasks.entry(n)
        who = n + (f" ({plugins.describe(e.plugin, e.plugin_version)})" if e.plugin else "")
        try:
            broken = contract.check_task(n)
        except contract.Unusable as err:
            raise UserError(f"{who}: {err}") from None
        failed += _say(who, broken, list(contract.TASK_RULES))
    return 1 if failed else 0


def _say(who: str, broken: list, rules: list[str]) -> int:
    """One line per checked model or task, then one per broken rule -> 1 if any rule is broken, else 0."""
    if not broken:
        print(f"{who}: keeps the contract ({len(rules)} rules: {', '.join(rules)})")
        return 0
    print(f"{who}: breaks {len({b.rule for b in broken})} of {len(rules)} rules")
    for b in broken:
        print(f"  {b}")
    return 1
