"""Reference GPT for ember's golden tests: nanoGPT's architecture and state-dict
names, plus the positional-encoding variants ember offers (learned, sinusoidal,
rope, alibi, none), nanoGPT's AdamW grouping and its warmup + cosine LR schedule.
Written for clarity, not speed; attention is spelled out (no fused kernels).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

POS_KINDS = ("learned", "sinusoidal", "rope", "alibi", "none")


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    pos: str = "learned"


# ---- positional tables (fixed, float64 maths cast to float32) -------------

def sinusoidal_table(T, C):
    """PE[p, 2i] = sin(p / 10000^(2i/C)), PE[p, 2i+1] = cos(same angle). [T, C]"""
    p = torch.arange(T, dtype=torch.float64).unsqueeze(1)          # [T,1]
    two_i = torch.arange(0, C, 2, dtype=torch.float64)             # [C/2]
    angle = p / torch.pow(torch.tensor(10000.0, dtype=torch.float64), two_i / C)
    pe = torch.zeros(T, C, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : C // 2])
    return pe.float()


def rope_tables(T, D):
    """cos/sin [T, D/2] for interleaved pairs: angle(p, i) = p * 10000^(-2i/D)."""
    p = torch.arange(T, dtype=torch.float64).unsqueeze(1)          # [T,1]
    i = torch.arange(D // 2, dtype=torch.float64)                  # [D/2]
    angle = p * torch.pow(torch.tensor(10000.0, dtype=torch.float64), -2.0 * i / D)
    return torch.cos(angle).float(), torch.sin(angle).float()


def apply_rope(x, cos, sin):
    """x [B,H,T,D]; rotate pairs (2i, 2i+1): (x0,x1) -> (x0 c - x1 s, x0 s + x1 c)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]                             # [B,H,T,D/2]
    r0 = x0 * cos - x1 * sin
    r1 = x0 * sin + x1 * cos
    return torch.stack((r0, r1), dim=-1).flatten(-2)                # re-interleave


def alibi_slopes(n):
    """ALiBi head slopes. Power of two n: 2^(-8(h+1)/n). Otherwise the slopes of
    the nearest lower power of two n', then the even-indexed (0,2,4..) slopes of
    the 2n' sequence until there are n."""
    def pow2(m):
        return [2.0 ** (-8.0 * (h + 1) / m) for h in range(m)]
    if n & (n - 1) == 0:
        return pow2(n)
    lower = 2 ** int(math.floor(math.log2(n)))
    return pow2(lower) + pow2(2 * lower)[0::2][: n - lower]


def alibi_bias(H, T):
    """bias[h, i, j] = -slope_h * (i - j) [H,T,T]; entries j > i are masked later."""
    slopes = torch.tensor(alibi_slopes(H), dtype=torch.float64).view(H, 1, 1)
    pos = torch.arange(T, dtype=torch.float64)
    dist = pos.view(T, 1) - pos.view(1, T)                          # i - j
    return (-slopes * dist).float()


# ---- modules ---------------------------------------------------------------

class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.pos = cfg.pos
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        T, H, D = cfg.block_size, cfg.n_head, cfg.n_embd // cfg.n_head
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)
        if cfg.pos == "rope":
            cos, sin = rope_tables(T, D)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.pos == "alibi":
            self.register_buffer("alibi", alibi_bias(H, T), persistent=False)

    def forward(self, x):                                           # x [B,T,C]
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)                    # 3 x [B,T,C]
        q = q.view(B, T, H, D).transpose(1, 2)                      # [B,H,T,D]
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        if self.pos == "rope":
            q = apply_rope(q, self.rope_cos[:T], self.rope_sin[:T])
            k = apply_rope(k, self.rope_cos[:T], self.rope_sin[:T])
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))      # [B,H,T,T]
        if self.pos == "alibi":
            att = att + self.alibi[:, :T, :T]
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v                                                 # [B,H,T,D]
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU()                                       # exact erf form
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=1e-5, elementwise_affine=True)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.mlp = MLP(cfg)
        if not cfg.bias:       # torch 1.13 LayerNorm has no bias=False switch
            self.ln_1.bias = None
            self.ln_2.bias = None

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg.pos in POS_KINDS, f"pos must be one of {POS_KINDS}, got {cfg.pos!r}"
        self.config = cfg
        parts = dict(wte=nn.Embedding(cfg.vocab_size, cfg.n_embd))
        if cfg.pos == "learned":
            parts["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        parts["drop"] = nn.Dropout(cfg.dropout)
        parts["h"] = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        parts["ln_f"] = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        if not cfg.bias:
            parts["ln_f"].bias = None
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            # one Parameter under two names; named_parameters() yields it once,
            # as transformer.wte.weight, state_dict() has both keys
            self.transformer.wte.weight = self.lm_head.weight
        if cfg.pos == "sinusoidal":
            self.register_buffer("pe", sinusoidal_table(cfg.block_size, cfg.n_embd),
                                 persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        """normal(0, 0.02) for Linear/Embedding weights, zero biases, LayerNorm 1/0,
        residual projections (c_proj) std 0.02/sqrt(2 n_layer)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx, targets=None):                           # idx [B,T]
        B, T = idx.shape
        assert T <= self.config.block_size, f"T={T} > block_size={self.config.block_size}"
        x = self.transformer.wte(idx)                               # [B,T,C]
        if self.config.pos == "learned":
            x = x + self.transformer.wpe(torch.arange(T, device=idx.device))
        elif self.config.pos == "sinusoidal":
            x = x + self.pe[:T]
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)                                    # [B,T,V]
        loss = None
        if targets is not None:
            V = logits.size(-1)
            loss = F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        return make_adamw(self, weight_decay, learning_rate, betas)


def make_adamw(model, weight_decay, learning_rate, betas):
    """nanoGPT grouping: tensors with dim >= 2 (matmul weights, embeddings) decay,
    the rest (biases, LayerNorm) do not."""
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=1e-8)


def get_lr(it, max_lr, min_lr, warmup_iters, lr_decay_iters):
    """Linear warmup, then cosine decay from max_lr to min_lr, then flat min_lr."""
    if it < warmup_iters:
        return max_lr * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return min_lr + coeff * (max_lr - min_lr)
