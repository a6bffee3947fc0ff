"""A FLOP counter that counts the fused LSTM kernels.

``torch.utils.flop_counter.FlopCounterMode`` has no formula for the fused RNN kernels
(``aten.mkldnn_rnn_layer`` and its backward on CPU, ``aten._cudnn_rnn`` and its backward on CUDA) and
silently counts them as zero, which would make every RNN look free (docs/design.md, "Measurement pitfalls"). We
register one: a layer's gates are two matmuls per token, input [4H x D] and recurrent [4H x H], so the
forward pass costs 2 * tokens * (4H*D + 4H*H) multiply-adds-as-two-FLOPs per layer and direction, and the
backward pass twice that (gradients for the inputs and for the weights). Elementwise gate math is ignored,
as the counter ignores it for every other op.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode


def _tokens(input_shape: Sequence[int]) -> int:
    # [T,B,D] (or [B,T,D]) padded, or [sum(batch_sizes), D] packed: every row of every step is computed.
    return math.prod(input_shape[:-1])


def _matmul_elems(weights: Sequence) -> int:
    return sum(math.prod(w) for w in weights if w is not None and len(w) == 2)


def mkldnn_rnn_layer_flops(input, weight0, weight1, *args, out_shape=None, **kwargs) -> int:
    return 2 * _tokens(input) * _matmul_elems([weight0, weight1])


def mkldnn_rnn_layer_backward_flops(input, weight1, weight2, *args, out_shape=None, **kwargs) -> int:
    return 2 * mkldnn_rnn_layer_flops(input, weight1, weight2)


def cudnn_rnn_flops(input, weight, *args, out_shape=None, **kwargs) -> int:
    # ``weight`` lists every layer and direction's [w_ih, w_hh, (b_ih, b_hh)]; each layer sees every token.
    return 2 * _tokens(input) * _matmul_elems(weight)


def cudnn_rnn_backward_flops(input, weight, *args, out_shape=None, **kwargs) -> int:
    return 2 * cudnn_rnn_flops(input, weight)


def rnn_mapping() -> dict:
    aten = torch.ops.aten
    mapping = {
        aten.mkldnn_rnn_layer: mkldnn_rnn_layer_flops,
        aten.mkldnn_rnn_layer_backward: mkldnn_rnn_layer_backward_flops,
    }
    if hasattr(aten, "_cudnn_rnn"):
        mapping[aten._cudnn_rnn] = cudnn_rnn_flops
        mapping[aten._cudnn_rnn_backward] = cudnn_rnn_backward_flops
    return mapping


def counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=rnn_mapping())
