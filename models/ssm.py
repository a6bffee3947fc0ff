"""A selective state-space model in the manner of Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling
with Selective State Spaces", arXiv:2312.00752), in pure torch, with the ``mamba-ssm`` CUDA kernel as an
optional fast path.

Each channel of the mixer's inner width carries an ``d_state``-dimensional state, updated by the discretised
linear system of S4 (Gu et al. 2022) whose step size and input/output maps depend on the input -- the
*selection* of §3.2 that lets it keep or forget per token:

    Delta_t = softplus(W_Delta x_t + b_Delta)   B_t = W_B x_t   C_t = W_C x_t          (Mamba, Algorithm 2)
    h_t = exp(Delta_t A) * h_{t-1} + Delta_t B_t x_t                                   (zero-order hold of A,
    y_t = C_t . h_t + D * x_t                                                          Euler for B; §3.5.2)

The recurrence is linear in h with coefficients known for every position, so training runs it as a
parallel scan (``models.scan``: the values ``Delta B x`` have either sign, so Heinsen's scan takes their
positive and negative parts), and decoding steps it from a state of ``d_inner x d_state`` numbers plus the
last ``d_conv - 1`` inputs of the causal convolution, per block -- fixed in the length.

The mixer is Mamba's block (Fig. 3): an input projection to two branches of width ``d_inner = expand x
d_model``; on one, a causal depthwise convolution (width ``d_conv``), SiLU and the selective SSM; the other,
through SiLU, gates the result; an output projection back to ``d_model``. Initialisation as Mamba's
reference code: ``A = -(1, 2, ..., N)`` per channel (S4D-real), ``D = 1``, ``Delta``'s bias such that its
softplus starts log-uniform in [0.001, 0.1]. Mamba's own blocks have no feed-forward; here each block has the
Transformer's (``models.recurrence``), so that the three recurrent models differ from each other and from the
Transformer in their mixer alone.

``kernel=mamba`` runs the scan through ``mamba_ssm``'s fused selective-scan CUDA kernel
(``selective_scan_fn``; the extra ``mamba``) instead of ``models.scan``: the same function, in fewer
launches and without materialising the [B,T,d_inner,d_state] states, on CUDA only (``unmet_requirement``
refuses it elsewhere before any run). Decoding is the pure-torch step either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from models.options import POSITIVE
from models.recurrence import Mixer, ScanConfig, ScanSeq2Seq, State, hold
from models.registry import ModelMeta, register
from models.scan import floor_decay, scan

KERNELS = ("torch", "mamba")  # the model option ``kernel``
MAMBA_PACKAGE = "mamba_ssm"
DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4  # Mamba's initial range of Delta, and its floor


@dataclass(frozen=True)
class SSMConfig(ScanConfig):
    expand: int = 2  # d_inner = expand x d_model, the width the SSM runs at (Mamba: 2)
    d_state: int = 16  # N, the state per inner channel (Mamba: 16); decoding carries d_inner x N per block
    d_conv: int = 4  # width of the causal depthwise convolution before the SSM (Mamba: 4)
    dt_rank: int | None = None  # rank of Delta's projection; None: ceil(d_model / 16) (Mamba)
    kernel: str = "torch"  # torch (models.scan, runs anywhere) | mamba (mamba-ssm's CUDA kernel)

    LIMITS: ClassVar[dict] = {**ScanConfig.LIMITS, "expand": POSITIVE, "d_state": POSITIVE, "d_conv": POSITIVE, "dt_rank": POSITIVE,
                              "kernel": KERNELS}

    def check(self) -> None:
        super().check()
        if self.dt_rank is not None and (isinstance(self.dt_rank, bool) or not isinstance(self.dt_rank, int) or self.dt_rank < 1):
            raise ValueError(f"dt_rank must be an integer >= 1 (or unset: ceil(d_model / 16)), got {self.dt_rank!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; use {' or '.join(KERNELS)}")

    def rank(self) -> int:
        return self.dt_rank if self.dt_rank is not None else math.ceil(self.d_model / 16)

    def unmet_requirement(self, device_type: str) -> str | None:
        """What this configuration needs that a ``device_type`` device on this machine lacks (``models.unmet_requirement``)."""
        if self.kernel != "mamba":
            return None
        if device_type != "cuda":
            return f"kernel=mamba runs on CUDA only, not on {device_type}; use kernel=torch"
        if importlib.util.find_spec(MAMBA_PACKAGE) is None:
            return "kernel=mamba needs the mamba-ssm package, which is not installed: pip install 's2sbench[mamba]' (CUDA only)"
        return None


def mamba_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, Bm: torch.Tensor, Cm: torch.Tensor, D: torch.Tensor,
               z: torch.Tensor, with_state: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The selective scan by mamba-ssm's CUDA kernel: u, delta, z [B,T,di]; A [di,N]; Bm, Cm [B,T,N]; D [di]
    -> ((C.h + D u) * silu(z)) [B,T,di] and, with ``with_state``, h at the last position [B,di,N]."""
    fn = importlib.import_module(f"{MAMBA_PACKAGE}.ops.selective_scan_interface").selective_scan_fn
    t = lambda x: x.transpose(1, 2).contiguous()  # noqa: E731 -- the kernel's layout is [B,channels,T]
    out = fn(t(u), t(delta), A.float().contiguous(), t(Bm), t(Cm), D.float(), t(z), delta_bias=None, delta_softplus=False,
             return_last_state=with_state)
    y, last = out if with_state else (out, None)
    return y.transpose(1, 2), last


class SelectiveSSM(Mixer):
    """Mamba's mixer (module docstring): x [B,T,d] -> [B,T,d]; its state: h [B,di,N] and the convolution's last inputs [B,di,K-1]."""

    def __init__(self, cfg: SSMConfig) -> None:
        super().__init__()
        d, di, N, K, R = cfg.d_model, cfg.expand * cfg.d_model, cfg.d_state, cfg.d_conv, cfg.rank()
        self.di, self.N, self.K, self.R = di, N, K, R
        self.method, self.kernel = cfg.scan, cfg.kernel
        self.in_proj = nn.Linear(d, 2 * di, bias=False)  # the SSM branch and the gate branch
        self.conv = nn.Conv1d(di, di, K, groups=di, padding=K - 1)  # causal once its last K-1 outputs are cut
        self.x_proj = nn.Linear(di, R + 2 * N, bias=False)  # Delta (low rank), B_t, C_t: the selection
        self.dt_proj = nn.Linear(R, di)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(di, 1))  # [di,N]: A = -(1..N)
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d, bias=False)
        with torch.no_grad():  # Mamba's reference initialisation of Delta: softplus(bias) log-uniform in [DT_MIN, DT_MAX]
            nn.init.uniform_(self.dt_proj.weight, -(R**-0.5), R**-0.5)
            dt = torch.exp(torch.rand(di) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN)).clamp(min=DT_FLOOR)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)

    def _select(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """u [...,di] -> Delta [...,di], B [...,N], C [...,N] (Mamba, Algorithm 2)."""
        dt, Bm, Cm = self.x_proj(u).split([self.R, self.N, self.N], dim=-1)
        return F.softplus(self.dt_proj(dt)), Bm, Cm

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None, with_state: bool = False) -> tuple[torch.Tensor, State | None]:
        T = x.size(1)
        xi, z = self.in_proj(x).chunk(2, dim=-1)  # [B,T,di] each
        if keep is not None:  # skipped positions feed the convolution zeros: the left padding it pads with anyway
            xi = xi.masked_fill(~keep.unsqueeze(-1), 0.0)
        u = F.silu(self.conv(xi.transpose(1, 2))[..., :T]).transpose(1, 2)  # [B,T,di]
        delta, Bm, Cm = self._select(u)
        if keep is not None:  # Delta = 0: decay exp(0) = 1 and nothing added, an identity step
            delta = delta.masked_fill(~keep.unsqueeze(-1), 0.0)
        A = -torch.exp(self.A_log.float())  # [di,N]
        if self.kernel == "mamba":
            if x.device.type != "cuda":
                raise RuntimeError("kernel=mamba runs on CUDA only; use kernel=torch")
            y, last = mamba_scan(u, delta, A, Bm, Cm, self.D, z, with_state)
        else:
            cd = torch.promote_types(delta.dtype, torch.float32)
            log_a = delta.to(cd).unsqueeze(-1) * A  # [B,T,di,N] log exp(Delta A)
            b = (delta * u).to(cd).unsqueeze(-1) * Bm.to(cd).unsqueeze(2)  # [B,T,di,N] Delta B x
            h = scan(log_a, b, self.method)  # [B,T,di,N]
            y = ((h * Cm.to(cd).unsqueeze(2)).sum(-1) + self.D * u.to(cd)) * F.silu(z.to(cd))  # [B,T,di]
            last = h[:, -1] if with_state else None
        state = None
        if with_state:  # the convolution's window: the last K-1 inputs (zeros before the start)
            state = (last.float(), F.pad(xi.transpose(1, 2), (self.K - 1, 0))[..., -(self.K - 1):].float() if self.K > 1
                     else xi.new_zeros(x.size(0), self.di, 0))
        return self.out_proj(y.to(x.dtype)), state

    def start(self, batch: int, like: torch.Tensor) -> State:
        dt = torch.promote_types(like.dtype, torch.float32)
        return (torch.zeros(batch, self.di, self.N, dtype=dt, device=like.device),
                torch.zeros(batch, self.di, self.K - 1, dtype=dt, device=like.device))

    def step(self, x: torch.Tensor, state: State, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        h, window = state  # [B,di,N], [B,di,K-1]
        xi, z = self.in_proj(x).to(h.dtype).chunk(2, dim=-1)  # [B,di]
        full = torch.cat([window, xi.unsqueeze(-1)], dim=-1)  # [B,di,K]
        u = F.silu((full * self.conv.weight[:, 0].to(h.dtype)).sum(-1) + self.conv.bias.to(h.dtype))  # [B,di]
        delta, Bm, Cm = self._select(u.to(x.dtype))
        delta, Bm, Cm = delta.to(h.dtype), Bm.to(h.dtype), Cm.to(h.dtype)
        A = -torch.exp(self.A_log.to(h.dtype))
        h_new = torch.exp(floor_decay(delta.unsqueeze(-1) * A)) * h + (delta * u).unsqueeze(-1) * Bm.unsqueeze(1)  # [B,di,N]
        y = ((h_new * Cm.unsqueeze(1)).sum(-1) + self.D * u) * F.silu(z)  # [B,di]
        new = hold(keep, (h_new, full[..., 1:]), state)
        return self.out_proj(y.to(x.dtype)), new


class SSMSeq2Seq(ScanSeq2Seq):
    """Selective SSM blocks in either form (``models.recurrence``)."""

    def mixer(self, cfg: SSMConfig) -> Mixer:
        return SelectiveSSM(cfg)


# Parameter counts at vocab 60 (models.BUDGET_VOCAB) are checked against models.BUDGETS in the tests, in both forms.
register(
    "ssm",
    SSMSeq2Seq,
    SSMConfig,
    {
        # The Transformer's depth and (from small up) width at each size, Mamba's expand 2, d_state 16, d_conv 4;
        # the mixer's 6 d^2 leave a narrower feed-forward. GPU sizes: widths multiples of 64, heads 64 wide.
        "tiny": SSMConfig(d_model=24, layers=4, ff=104, heads=4),
        "small": SSMConfig(d_model=64, layers=6, ff=256, heads=4),
        "base": SSMConfig(d_model=192, layers=6, ff=640, heads=4),
        "large": SSMConfig(d_model=512, layers=6, ff=1600, heads=8),
        "xl": SSMConfig(d_model=768, layers=12, ff=3072, heads=12),
    },
    "selective state-space blocks (Mamba, Gu & Dao 2023): trained by a parallel scan, decoded by recurrence; mamba-ssm kernel optional",
    # cost: measured beside attention (10) at size small on date batches, 1 CPU thread: the pure-torch scan
    # materialises a [B,T,d_inner,d_state] state, what the mamba-ssm kernel exists to avoid (Mamba §3.3.2).
    ModelMeta(cost=180, attention=False, recurrent=True, scan=True),
)
