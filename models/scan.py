"""Parallel scans for the first-order linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (``h_0 = 0``, ``0 < a_t <= 1``).

The recurrences of minGRU, minLSTM and the selective state-space model all take this form once their gates
depend on the input alone (Feng et al. 2024, "Were RNNs All We Needed?", §3; Gu & Dao 2023, "Mamba", §3.2):
``a_t`` and ``b_t`` are computed for every position at once, and the sequence of states follows from an
associative scan instead of a loop over time. Two scans, the model option ``scan``:

* ``heinsen`` -- Heinsen's closed form (2023, "Efficient Parallelization of a Ubiquitous Sequential
  Computation", arXiv:2311.06281), the one the minGRU paper gives (its appendix B): with ``a*_t = sum_{k<=t}
  log a_k``, ``log h_t = a*_t + logcumsumexp_{k<=t}(log b_k - a*_k)``. One cumulative sum and one cumulative
  log-sum-exp over the whole sequence, depth O(log n). It needs ``b_t > 0`` (minGRU keeps its candidate
  states positive for that, ``g``); values of any sign (the SSM's ``Delta_t B_t x_t``) go through it as two
  scans, of the positive and of the negative parts (the recurrence is linear in b; Heinsen uses complex
  logarithms, this is the real-valued equivalent). Two limits: ``logcumsumexp`` is slow on a CPU (about 20x
  a cumulative sum, torch 2.13), and ``a*_t`` grows with t, so float32 loses about ``|a*_t| * 2^-24`` of each
  state's relative precision (1e-4 after a few hundred steps of strong gates).
* ``chunked`` (the default) -- the same recurrence in chunks of ``CHUNK`` positions (Blelloch 1990, "Prefix
  sums and their applications": scan the blocks, scan the block totals, add back). Inside a chunk, in
  float32, ``h_t = exp(A_t) * cumsum_k(exp(-A_k) b_k)`` with ``A`` the chunk's own running sum of log a: two
  cumulative sums and no log-sum-exp. Across chunks, the ``n / CHUNK`` chunk end states bring each chunk its
  start state (``chunk_starts``: a loop over up to 64 chunks, Heinsen's scan in float64 beyond). Measured on a
  2-core CPU, 4-7x faster than ``heinsen`` and exact to float32 (about 1e-6) at every length tested, up to 2050.

The decay floor. ``exp(-A_k)`` must stay within float32's range inside a chunk, which bounds the decay a
chunk may hold: every step's decay is floored at ``exp(LOG_A_FLOOR)`` (5.5e-4; 8 steps x 7.5 = 60 < 88, the
log of float32's largest number, with room for values ``b`` up to 1e12). A gate may thus drop at most 99.945 %
of the state in one step; where the unfloored gate would drop more, 0.055 % stays. The floor is part of the
models' definition, not of one algorithm: both scans and the step-by-step recurrence of decoding apply it
(``floor_decay``), so all three compute one function.

Both scans compute in float32 at least, whatever the inputs' dtype (bf16 autocast included: the log-space
sums cancel large terms, which half precision cannot hold). ``loop_scan`` is the plain recurrence: what the
scans must equal (tests), and what decoding runs, one step at a time.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

SCANS = ("chunked", "heinsen")  # the model option ``scan``

TINY = 1e-30
"""Stands for a value of exactly 0 inside a log-space scan: log 0 = -inf would turn the backward pass of
``logcumsumexp`` into NaN (inf - inf) at positions nothing has been added to yet. It adds at most ``TINY``
(times gates <= 1) per position to a state: far below float32's resolution of any real state."""
LOG_TINY = -69.07755278982137  # log(TINY): what a masked (identity) step adds in log space
CHUNK = 8  # positions per chunk of the chunked scan
LOG_A_FLOOR = -7.5  # every step's log decay is at least this (module docstring: the decay floor); 8 x 7.5 = 60 < 88
A_FLOOR = 5.530843701478336e-04  # exp(LOG_A_FLOOR): the smallest decay a step applies
LOOP_CHUNKS = 64  # up to this many chunks the chunked scan carries states across them in a loop (``chunk_starts``)


def floor_decay(log_a: torch.Tensor) -> torch.Tensor:
    """log a_t floored at ``LOG_A_FLOOR`` (the decay floor, module docstring): what every scan and step applies."""
    return log_a.clamp_min(LOG_A_FLOOR)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def log_scan(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """Heinsen's scan along dim 1 for positive values: log_a, log_b [B,T,...] (finite) -> h [B,T,...].

    h_t = a_t h_{t-1} + b_t with h_0 = 0, i.e. h_t = sum_{k<=t} (prod_{k<j<=t} a_j) b_k. Float32 at least. No
    decay floor: ``scan`` applies it (the chunked scan's chunk totals pass through here unfloored).
    """
    dt = _compute_dtype(log_b)
    log_a, log_b = log_a.to(dt), log_b.to(dt)
    a_star = log_a.cumsum(dim=1)  # [B,T,...]
    return torch.exp(a_star + (log_b - a_star).logcumsumexp(dim=1))


def safe_log(x: torch.Tensor) -> torch.Tensor:
    """log of x >= 0, with log 0 read as ``LOG_TINY`` (see ``TINY``): finite values and finite gradients."""
    return x.clamp_min(TINY).log()


def signed_log_scan(log_a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Heinsen's scan for values of any sign: log_a, b [B,T,...] -> h [B,T,...], as two positive scans."""
    b = b.to(_compute_dtype(b))
    return log_scan(log_a, safe_log(F.relu(b))) - log_scan(log_a, safe_log(F.relu(-b)))


def chunked_scan(log_a: torch.Tensor, b: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """The chunked scan (module docstring): log_a, b [B,T,...] (b of any sign) -> h [B,T,...] in b's dtype
    promoted to float32. Applies the decay floor, which keeps its chunk-local sums in range."""
    out_dt = _compute_dtype(b)
    B, T = b.shape[:2]
    rest = b.shape[2:]
    n = -(-T // chunk)  # chunks
    pad = n * chunk - T
    la = floor_decay(log_a.to(out_dt))
    bb = b.to(out_dt)
    if pad:  # identity steps at the end: decay 1, nothing added
        la = F.pad(la, (0, 0) * len(rest) + (0, pad))
        bb = F.pad(bb, (0, 0) * len(rest) + (0, pad))
    la = la.reshape(B, n, chunk, *rest)
    bb = bb.reshape(B, n, chunk, *rest)
    A = la.cumsum(dim=2)  # [B,n,C,...] chunk-local log decay since the chunk's start, in [C * LOG_A_FLOOR, 0]
    P = A.exp()  # exp(-A) below is its own exp, not 1 / P: the backward of 1 / P would square P
    local = P * (bb * (-A).exp()).cumsum(dim=2)  # [B,n,C,...] each chunk's states from a zero start
    if n > 1:
        local = local + P * chunk_starts(A[:, :, -1], local[:, :, -1], P[:, :, -1]).unsqueeze(2)
    return local.reshape(B, n * chunk, *rest)[:, :T]


def chunk_starts(log_decay: torch.Tensor, ends: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """The state each chunk starts from: log_decay [B,n,...] (each chunk's total, in [C * LOG_A_FLOOR, 0]) and
    ends [B,n,...] (each chunk's end state from a zero start), decay = exp(log_decay) -> [B,n,...], zero for the
    first chunk.

    Up to ``LOOP_CHUNKS`` chunks, the chunk recurrence one chunk after another (exact; on a CPU cheaper than any
    scan over so few); beyond, Heinsen's scan over the chunks in float64 (its |a*| grows with n; float64 keeps
    the error at float32's resolution), O(log n) depth for long sequences on a GPU.
    """
    n = ends.size(1)
    if n <= LOOP_CHUNKS:
        h = torch.zeros_like(ends[:, 0])
        starts = [h]
        for c in range(n - 1):
            h = decay[:, c] * h + ends[:, c]
            starts.append(h)
        return torch.stack(starts, dim=1)
    true_ends = signed_log_scan(log_decay.double(), ends.double()).to(ends.dtype)  # [B,n,...]
    return F.pad(true_ends[:, :-1], (0, 0) * (ends.dim() - 2) + (1, 0))


def scan(log_a: torch.Tensor, b: torch.Tensor, method: str = "chunked", log_b: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = a_t h_{t-1} + b_t along dim 1 by ``method`` (``SCANS``): log_a, b [B,T,...] -> h [B,T,...].

    ``log_b``: log b where the caller has it exactly (b > 0, minGRU's and minLSTM's values); Heinsen's scan then
    runs once on it instead of twice on b's signed parts.
    """
    if method == "heinsen":
        log_a = floor_decay(log_a)
        return log_scan(log_a, log_b) if log_b is not None else signed_log_scan(log_a, b)
    if method == "chunked":
        return chunked_scan(log_a, b)
    raise ValueError(f"unknown scan {method!r}; use {' or '.join(SCANS)}")


def loop_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """The recurrence itself, one position after another: a, b [B,T,...] -> h [B,T,...] (h0 [B,...], default 0).
    No decay floor here: the caller applies it (``floor_decay``) as the models do."""
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    out = []
    for t in range(b.size(1)):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


def g(x: torch.Tensor) -> torch.Tensor:
    """Feng et al. 2024, appendix B.3: a continuous, positive activation for the candidate state (x + 1/2 for
    x >= 0, sigmoid(x) below), so that its log exists and Heinsen's log-space scan applies."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log g(x), computed without forming g (log(x + 1/2) above 0, -softplus(-x) = log sigmoid(x) below)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))
