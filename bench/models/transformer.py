"""Causal transformer policy for the token reversal tasks.

Architecture (TPO paper, token reversal; reference implementation where the two differ):
2 pre-LayerNorm blocks, d_model 64, FFN 256 with tanh-GELU, learned absolute
positions over the 2H buffer (prompt at positions 0..H−1, answer at H..2H−1),
final LayerNorm and a V-way head. LayerNorm eps 1e-6, no dropout, biases on
every linear layer and attention projection.

    h_0 = E_tok[x] + P[pos]
    h   = h + Attn(LN_1(h));   h = h + W_2 gelu_tanh(W_1 LN_2(h) + b_1) + b_2
    logits = W_head LN_f(h) + b_head

Logits at position p predict the token at p + 1, so answer token t is
predicted from position H + t − 1 (the last prompt token predicts y_0).

Heads: the paper's text says 4 heads, the reference code uses 2; the config
default follows the code (2).

Initialisation: linear weights LeCun normal (normal truncated at ±2σ, rescaled
so the variance is exactly 1/fan_in), biases 0, LayerNorm scale 1 / bias 0,
token embedding N(0, 1/d_model), position embedding N(0, 0.02²).

One implementation, any number of seeds: :func:`stacked_run` evaluates S
policies at once from parameters stacked on a leading seed axis ([S, ...],
names as in :class:`TransformerPolicy`) with batched matmuls — the sequence
families train all seeds of a configuration this way, without ``vmap``, so a
step issues the same operators for 1 seed as for 20. The module is the same
function at S = 1 (its parameters viewed as [1, ...]). ``forward(tokens)`` is
written without in-place ops or data-dependent Python control flow, so
``torch.func.functional_call`` + ``torch.func.vmap`` over stacked parameters
also work. Incremental decoding uses an explicit, immutable KV cache (a tuple
of per-layer ``(k, v)`` tensors ``[N, heads, T, d_head]``; S·N seed-major rows
for stacked parameters) grown by concatenation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms import ops

KVCache = tuple[tuple[Tensor, Tensor], ...]


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture hyperparameters (paper/reference defaults; n_heads: code's 2, paper text 4)."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 256
    ln_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")


# std of a standard normal truncated to [−2, 2]: sqrt(1 − 2·2φ(2)/(Φ(2) − Φ(−2)))
_TRUNC2_STD = math.sqrt(1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / math.erf(2.0 / math.sqrt(2.0)))


def lecun_normal_(weight: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """LeCun normal for a torch Linear weight [fan_out, fan_in]: truncated normal at ±2σ
    with σ chosen so that Var = 1/fan_in (σ = sqrt(1/fan_in)/0.8796)."""
    std = math.sqrt(1.0 / weight.shape[1]) / _TRUNC2_STD
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std, generator=generator)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with biased q/k/v/out projections.

    x [N, T, d] plus optional past (k, v) [N, h, T_past, d_h] → y [N, T, d] and
    the new (k, v) [N, h, T_past + T, d_h]. Query at absolute position p attends
    to keys at positions ≤ p: softmax(q kᵀ/√d_h + mask) v.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:
        """[N, T, d] → [N, h, T, d_h]."""
        return _split_heads(x, x.shape[0], x.shape[1], self.n_heads)

    def forward(self, x: Tensor, past: Optional[tuple[Tensor, Tensor]] = None):
        N, T, d = x.shape
        y, kv = _attention(x.reshape(1, N * T, d), _own(self), "", (1, N, T), self.n_heads, past)
        return y.reshape(N, T, d), kv


class FeedForward(nn.Module):
    """x ↦ W_2 gelu_tanh(W_1 x + b_1) + b_2, d → d_ff → d."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return _ffn(x.reshape(1, -1, x.shape[-1]), _own(self), "").reshape(*x.shape[:-1], -1)


class Block(nn.Module):
    """Pre-LN block: h + Attn(LN(h)), then h + FFN(LN(h))."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.attn = CausalSelfAttention(cfg.d_model, cfg.n_heads)
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff)

    def forward(self, h: Tensor, past: Optional[tuple[Tensor, Tensor]] = None):
        N, T, d = h.shape
        out, kv = _block(h.reshape(1, N * T, d), _own(self), "", (1, N, T), self.config, past)
        return out.reshape(N, T, d), kv


class TransformerPolicy(nn.Module):
    """Causal transformer over a 2H token buffer with a V-way head.

    Parameter count (V = 2, H = 10, defaults: d = 64, d_ff = 256, 2 layers) = 101,634:
      token embedding V·d = 128; position embedding 2H·d = 1,280;
      per block: 2 LayerNorms 2·2d = 256, q/k/v/o 4·(d² + d) = 16,640,
                 FFN (d·d_ff + d_ff) + (d_ff·d + d) = 33,088  → 49,984; ×2 = 99,968;
      final LayerNorm 2d = 128; head d·V + V = 130.
    The count does not depend on the number of heads.
    """

    def __init__(self, vocab: int, horizon: int, config: TransformerConfig = TransformerConfig(),
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.vocab, self.horizon, self.config = vocab, horizon, config
        self.max_len = 2 * horizon
        d = config.d_model
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Parameter(torch.empty(self.max_len, d))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d, eps=config.ln_eps)
        self.head = nn.Linear(d, vocab)
        self.reset_parameters(generator)

    # ------------------------------------------------------------------ init / roles

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Initialise every parameter as described in the module docstring.

        Pass a (CPU) generator for common random numbers: the same seed gives
        the same weights for every algorithm, independent of the global RNG.
        """
        d = self.config.d_model
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    lecun_normal_(module.weight, generator)
                    module.bias.zero_()
                elif isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            self.tok_emb.weight.normal_(0.0, 1.0 / math.sqrt(d), generator=generator)
            self.pos_emb.normal_(0.0, 0.02, generator=generator)

    def parameter_roles(self) -> dict[str, str]:
        """Name → role for optimizer splits.

        Roles: ``attention`` (q/k/v/o weights), ``attention_bias`` (q/k/v
        biases: [heads, head_dim] matrices in the reference, see
        :meth:`parameter_views`), ``ffn`` (fc1/fc2 weights), ``head`` (head
        weight), ``embedding`` (token and position tables, laid out [in, out]
        = [V or 2H, d]), ``norm`` (LayerNorm scale/bias), ``bias`` (the other
        linear biases: attention out, FFN, head).
        """
        linear_role = {CausalSelfAttention: "attention", FeedForward: "ffn", TransformerPolicy: "head"}
        roles: dict[str, str] = {"tok_emb.weight": "embedding", "pos_emb": "embedding"}
        for mname, module in self.named_modules():
            prefix = f"{mname}." if mname else ""
            for cname, child in module.named_children():
                if isinstance(child, nn.Linear):
                    roles[f"{prefix}{cname}.weight"] = linear_role[type(module)]
                    qkv = isinstance(module, CausalSelfAttention) and cname in ("q", "k", "v")
                    roles[f"{prefix}{cname}.bias"] = "attention_bias" if qkv else "bias"
                elif isinstance(child, nn.LayerNorm):
                    roles[f"{prefix}{cname}.weight"] = "norm"
                    roles[f"{prefix}{cname}.bias"] = "norm"
        return roles

    def parameter_views(self) -> dict[str, tuple[int, int]]:
        """Name → (heads, head_dim) for the q/k/v biases: the reference (Flax DenseGeneral) stores each
        as a [heads, head_dim] matrix, torch as the flat d_model vector (output feature h·head_dim + j
        is head h, entry j, as in :meth:`CausalSelfAttention._heads`)."""
        d_head = self.config.d_model // self.config.n_heads
        return {f"blocks.{i}.attn.{n}.bias": (self.config.n_heads, d_head)
                for i in range(len(self.blocks)) for n in ("q", "k", "v")}

    # ------------------------------------------------------------------ forward passes

    def _run(self, tokens: Tensor, cache: Optional[KVCache]):
        """tokens [N, T] (+ cache) → logits [N, T, V], cache: :func:`stacked_run` at S = 1. The parameters are read
        by attribute, so ``functional_call`` substitutes its tensors."""
        logits, new_cache = stacked_run(_own(self), self.config, tokens.unsqueeze(0), cache)
        return logits[0], new_cache

    def forward(self, tokens: Tensor) -> Tensor:
        """Full causal forward: tokens [..., T] (T ≤ 2H, starting at position 0) → logits [..., T, V]."""
        lead = tokens.shape[:-1]
        logits, _ = self._run(tokens.reshape(-1, tokens.shape[-1]), None)
        return logits.reshape(*lead, tokens.shape[-1], self.vocab)

    def logits(self, tokens: Tensor) -> Tensor:
        """Alias of :meth:`forward` (the training-time full-sequence pass)."""
        return self.forward(tokens)

    def prefill(self, tokens: Tensor) -> tuple[Tensor, KVCache]:
        """Start decoding: tokens [N, T] at positions 0..T−1 → (logits [N, T, V], cache)."""
        return self._run(tokens, None)

    def decode(self, tokens: Tensor, cache: KVCache) -> tuple[Tensor, KVCache]:
        """Continue decoding: tokens [N, T_new] placed right after the cached ones.

        Returns logits [N, T_new, V] and the grown cache. Equal (up to float
        rounding) to the matching slice of the full forward.
        """
        return self._run(tokens, cache)


# ---------------------------------------------------------------------------- the stacked (seed-batched) forward

def _key(name: str, leaf: str) -> str:
    return f"{name}.{leaf}" if name else leaf


def _own(module: nn.Module) -> dict[str, Tensor]:
    """A module's parameters as a one-seed stack {name: [1, ...]}, read by attribute (so that
    ``torch.func.functional_call`` substitutes its tensors)."""
    return {n: reduce(getattr, n.split("."), module).unsqueeze(0)
            for n, _ in module.named_parameters(remove_duplicate=False)}


def _linear(x: Tensor, p: dict[str, Tensor], name: str) -> Tensor:
    """x [S, M, in] → x Wᵀ + b [S, M, out] for W = p[name.weight] [S, out, in], b = p[name.bias] [S, out]."""
    return torch.baddbmm(p[_key(name, "bias")].unsqueeze(1), x, p[_key(name, "weight")].transpose(1, 2))


def _layer_norm(x: Tensor, p: dict[str, Tensor], name: str, eps: float) -> Tensor:
    """LayerNorm over the last axis of x [S, M, d] with per-seed scale and bias [S, d]."""
    w, b = p[_key(name, "weight")], p[_key(name, "bias")]
    if w.shape[0] == 1:   # one seed: the fused affine kernel
        return F.layer_norm(x, x.shape[-1:], w[0], b[0], eps)
    return torch.addcmul(b.unsqueeze(1), F.layer_norm(x, x.shape[-1:], eps=eps), w.unsqueeze(1))


def _split_heads(t: Tensor, rows: int, T: int, n_heads: int) -> Tensor:
    """Projections [..., d] of rows × T positions → [rows, h, T, d_h]; output feature h·d_h + j is head h, entry j."""
    return t.reshape(rows, T, n_heads, t.shape[-1] // n_heads).transpose(1, 2)


def _attention(x: Tensor, p: dict[str, Tensor], name: str, shape: tuple[int, int, int], n_heads: int,
               past: Optional[tuple[Tensor, Tensor]]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Causal self-attention of :class:`CausalSelfAttention` on x [S, N·T, d] (shape = (S, N, T)); past and the
    returned (k, v) are [S·N, h, T_past (+ T), d_h], seed-major rows."""
    S, N, T = shape
    d = x.shape[-1]
    d_head = d // n_heads
    q, k, v = (_split_heads(_linear(x, p, _key(name, w)), S * N, T, n_heads) for w in ("q", "k", "v"))
    if past is not None:
        k = torch.cat([past[0], k], dim=2)
        v = torch.cat([past[1], v], dim=2)
    T_k = k.shape[2]
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d_head))                     # [S·N, h, T, T_k]
    if T > 1:   # one query (a decoding step) sits at the last position and sees every key
        q_pos = torch.arange(T_k - T, T_k, device=x.device)
        allowed = torch.arange(T_k, device=x.device)[None, :] <= q_pos[:, None]        # [T, T_k]
        scores = scores.masked_fill(~allowed, float("-inf"))
    y = (ops.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(S, N * T, d)
    return _linear(y, p, _key(name, "o")), (k, v)


def _ffn(x: Tensor, p: dict[str, Tensor], name: str) -> Tensor:
    """x [S, M, d] ↦ W_2 gelu_tanh(W_1 x + b_1) + b_2 (:class:`FeedForward`)."""
    return _linear(F.gelu(_linear(x, p, _key(name, "fc1")), approximate="tanh"), p, _key(name, "fc2"))


def _block(h: Tensor, p: dict[str, Tensor], name: str, shape: tuple[int, int, int], config: TransformerConfig,
           past: Optional[tuple[Tensor, Tensor]]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Pre-LN block (:class:`Block`) on h [S, N·T, d]: h + Attn(LN_1(h)), then h + FFN(LN_2(h))."""
    a, kv = _attention(_layer_norm(h, p, _key(name, "ln1"), config.ln_eps), p, _key(name, "attn"), shape,
                       config.n_heads, past)
    h = h + a
    return h + _ffn(_layer_norm(h, p, _key(name, "ln2"), config.ln_eps), p, _key(name, "ffn")), kv


def stacked_run(params: dict[str, Tensor], config: TransformerConfig, tokens: Tensor,
                cache: Optional[KVCache] = None) -> tuple[Tensor, KVCache]:
    """S transformer policies at once: the forward of :class:`TransformerPolicy` with stacked parameters.

    params: {name: [S, ...]} with :class:`TransformerPolicy`'s parameter names; tokens [S, N, T] (long) placed
    after the cached positions (0 without a cache); cache: per-layer (k, v) [S·N, heads, T_past, d_head] with the
    rows of seed s at s·N … s·N + N − 1. Returns logits [S, N, T, V] and the grown cache (T_past + T positions).
    Seed s's outputs (and gradients) are those of policy s alone, up to float rounding of the batched matmuls.

        h_0 = E_tok[x] + P[pos];  h += Attn(LN_1(h));  h += W_2 gelu_tanh(W_1 LN_2(h) + b_1) + b_2
        logits = W_head LN_f(h) + b_head

    ValueError when the positions exceed the 2H buffer (``pos_emb``'s length).
    """
    S, N, T = tokens.shape
    offset = 0 if cache is None else cache[0][0].shape[2]
    tok, pos = params["tok_emb.weight"], params["pos_emb"]
    if offset + T > pos.shape[1]:
        raise ValueError(f"positions up to {offset + T} exceed the 2H buffer of {pos.shape[1]}")
    V, d = tok.shape[1], tok.shape[2]
    emb = F.embedding(tokens[0], tok[0])[None] if S == 1 else \
        tok[torch.arange(S, device=tokens.device).view(S, 1, 1), tokens]     # per-seed table; ids ≥ V raise
    h = (emb + pos[:, None, offset:offset + T]).reshape(S, N * T, d)
    new_cache = []
    for i in range(config.n_layers):
        h, kv = _block(h, params, f"blocks.{i}", (S, N, T), config, None if cache is None else cache[i])
        new_cache.append(kv)
    logits = _linear(_layer_norm(h, params, "ln_f", config.ln_eps), params, "head")
    return logits.reshape(S, N, T, V), tuple(new_cache)
