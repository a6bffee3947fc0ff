"""Which groups of the two sides are compared: only equal configurations pair, and what keeps two apart is said.

Two runs are seeds of one result only when nothing but the seed differs (``bench.analysis.configs``); a
group of one side is compared with the group of the other side that has its configuration, and where the
sides have the same task, model and size in different configurations, the fields that differ are named.
"""

from __future__ import annotations

from bench.analysis import configs
from bench.regress.sides import Group


def model_labels(groups: list[Group]) -> dict[str | None, str]:
    """config hash -> the row's model label: the model, plus in brackets what sets this configuration apart from
    the others of its task, model and size on either side (``attention [bf16]``)."""
    first = groups[0].model if groups else ""
    hashes = list(dict.fromkeys(g.config_hash for g in groups))
    if len(hashes) < 2:
        return {h: first for h in hashes}
    flats = {g.config_hash: configs.flatten(g.config) for g in groups if g.config is not None}
    if len(flats) == len(hashes):
        lab = configs.labels(flats)
    else:  # a side that does not record its configurations (an older baseline): name them by hash
        lab = {h: f"config {h}" if h else "config not recorded" for h in hashes}
    return {h: f"{first} [{lab[h]}]" if lab.get(h) else first for h in hashes}


def pair_groups(bs: list[Group], ns: list[Group]) -> tuple[list[tuple[Group, Group, str]], list[Group], list[Group]]:
    """The groups of one task x model x size on each side -> (pairs, base left over, new left over).

    Only equal configurations pair (same config hash). Where one side does not record its configuration
    (a baseline saved before hashes were kept) and each side has exactly one, they pair, and the note says so.
    """
    left_n = list(ns)
    pairs, left_b = [], []
    for b in bs:
        n = next((n for n in left_n if b.config_hash is not None and n.config_hash == b.config_hash), None)
        if n is None:
            left_b.append(b)
        else:
            left_n.remove(n)
            pairs.append((b, n, ""))
    if len(left_b) == 1 and len(left_n) == 1 and len(bs) == len(ns) == 1 and None in (left_b[0].config_hash, left_n[0].config_hash):
        pairs.append((left_b[0], left_n[0], "a side does not record its configuration: paired by task, model and size only"))
        return pairs, [], []
    return pairs, left_b, left_n


def unpaired_reasons(left_b: list[Group], left_n: list[Group]) -> list[tuple[Group, str]]:
    """For the configurations left without an equal on the other side, where the other side has the same task,
    model and size: which config fields differ from the nearest configuration there (one line per such pair)."""
    out: list[tuple[Group, str]] = []
    if not left_b or not left_n:
        return out
    known = all(g.config is not None for g in left_b + left_n)

    def dist(a: Group, b: Group) -> int:
        return len(configs.differing([configs.flatten(a.config), configs.flatten(b.config)])) if known else 0

    matched: set[int] = set()
    for mine, theirs, is_base in ((left_b, left_n, True), (left_n, left_b, False)):
        for g in mine:
            if id(g) in matched:
                continue
            near = min(theirs, key=lambda t: dist(g, t))
            b, n = (g, near) if is_base else (near, g)
            matched.update((id(b), id(n)))
            head = f"{'/'.join(g.cell)}: base config {b.config_hash or '(not recorded)'} and new config {n.config_hash or '(not recorded)'}"
            if known:
                diff = configs.diff_text(configs.flatten(b.config), configs.flatten(n.config))
                out.append((g, f"{head} differ in {diff or 'nothing recorded (only the hashes differ)'}."))
            else:
                out.append((g, f"{head} differ; which fields is unknown, as a side does not record its configurations (re-save the "
                            "baseline)."))
    return out
