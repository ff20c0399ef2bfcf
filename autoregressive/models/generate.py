"""Batched, KV-cached sampling with classifier-free guidance, and the matching teacher-forced log-probs.

Both paths share :func:`guided_logits` and :func:`process_logits`, so the log-probability that the sampler
reports for a token is, by construction, the one a full forward pass recomputes (tested). Randomness comes
from a ``torch.Generator`` or one generator per row: with per-row generators a sample depends only on its
own seed, not on which other prompts share the batch or the process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from autoregressive.models.gpt import GPT

Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass(frozen=True)
class SamplingConfig:
    """LlamaGen's sampling knobs. ``cfg_interval=-1`` keeps guidance on for every token."""

    cfg_scale: float = 1.0
    cfg_interval: int = -1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    @property
    def uses_cfg(self) -> bool:
        return self.cfg_scale > 1.0

    def guided_positions(self, num_tokens: int, device=None) -> torch.Tensor:
        """Bool (N,): which image tokens were sampled with guidance (token n waits for decode step n-1)."""
        n = torch.arange(num_tokens, device=device)
        if not self.uses_cfg:
            return torch.zeros(num_tokens, dtype=torch.bool, device=device)
        if self.cfg_interval < 0:
            return torch.ones(num_tokens, dtype=torch.bool, device=device)
        return n <= self.cfg_interval + 1


@dataclass
class SampledTokens:
    """What :func:`generate` returns: ``tokens`` (B, N) long; ``logprobs`` (B, N) fp32 under the distribution
    that sampled each token."""

    tokens: torch.Tensor
    logprobs: torch.Tensor


def combine_cfg(cond_logits: torch.Tensor, uncond_logits: torch.Tensor, scale: float) -> torch.Tensor:
    return uncond_logits + scale * (cond_logits - uncond_logits)


def process_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """Temperature, then top-k (ties with the k-th value survive), then nucleus filtering; -inf marks removed."""
    logits = logits / max(temperature, 1e-5)
    vocab = logits.shape[-1]
    if top_k > 0:
        kth = torch.topk(logits, min(max(top_k, 1), vocab), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum > top_p
        remove[..., 1:] = remove[..., :-1].clone()  # keep the token that crosses the threshold
        remove[..., 0] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def draw_uniforms(batch: int, generator: Generators, device: torch.device) -> torch.Tensor:
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(batch, generator=generator, device=device)
    if len(generator) != batch:
        raise ValueError(f"got {len(generator)} generators for {batch} rows")
    return torch.stack([torch.rand((), generator=g, device=device) for g in generator])


def sample_tokens(logits: torch.Tensor, generator: Generators) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-CDF draw from softmax(logits), one uniform per row. Returns (tokens, their log-probs)."""
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.exp()
    cdf = probs.cumsum(-1)
    u = draw_uniforms(logits.shape[0], generator, logits.device).to(cdf.dtype)
    token = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True)
    # Float round-off can push the draw past the last token with mass; never return a removed token.
    last_valid = logits.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(-1, keepdim=True)
    token = torch.minimum(token, last_valid)
    return token.squeeze(1), logp.gather(1, token).squeeze(1)


def guided_logits(logits: torch.Tensor, cfg: SamplingConfig, guided: bool | torch.Tensor) -> torch.Tensor:
    """Split a [conditional | unconditional] batch and combine it where guidance is on."""
    if not cfg.uses_cfg:
        return logits
    cond, uncond = logits.chunk(2, dim=0)
    combined = combine_cfg(cond, uncond, cfg.cfg_scale)
    if isinstance(guided, bool):
        return combined if guided else cond
    return torch.where(guided.view(1, -1, 1), combined, cond)


def cfg_batch(model: GPT, cond: torch.Tensor, cond_mask: torch.Tensor | None, cfg: SamplingConfig):
    """[conditional rows | unconditional rows]; the null caption inherits each prompt's padding mask."""
    if not cfg.uses_cfg:
        return cond, cond_mask
    base = getattr(model, "module", model)  # a DDP/FSDP wrapper forwards calls, not attributes
    both = torch.cat([cond, base.null_condition_like(cond)])
    return both, None if cond_mask is None else torch.cat([cond_mask, cond_mask])


@functools.cache
def compiled_decode_step(mode: str = "default") -> Callable:
    """``torch.compile`` of :meth:`GPT.decode_step_static` (called as ``step(model, token, index)``), built once.

    The step's shapes never change and the position is a tensor, so it is traced once per model and batch size
    and then reused for every token and every rollout. ``mode="reduce-overhead"`` adds CUDA graphs on a GPU.
    """
    return torch.compile(GPT.decode_step_static, mode=mode, dynamic=False, fullgraph=True)


@functools.cache
def compiled_sequence_logprobs(mode: str = "default") -> Callable:
    """``torch.compile`` of :func:`sequence_logprobs` (forward, and backward through AOTAutograd), built once.

    Shapes are static: one graph per model, micro-batch shape and grad mode, traced at the first step and reused
    after. Compiling the whole function fuses the guidance mix, log-softmax, gather and entropy with the
    transformer's elementwise ops, which eager runs one kernel at a time.
    """
    return torch.compile(sequence_logprobs, mode=mode, dynamic=False)


@torch.no_grad()
def generate(
    model: GPT,
    cond: torch.Tensor,
    max_new_tokens: int | None = None,
    cfg: SamplingConfig = SamplingConfig(),
    cond_mask: torch.Tensor | None = None,
    generator: Generators = None,
    cache_dtype: torch.dtype | None = None,
    static_cache: bool = False,
    compile_mode: str | None = None,
) -> SampledTokens:
    """Sample image tokens for each row of ``cond`` (class ids (B,) or caption features (B, T, C)).

    To draw G samples per prompt, repeat the conditions (``repeat_interleave``) and pass one generator per
    row. Prefill runs the condition positions once; every further token is one cached decode step.
    ``static_cache`` decodes with a fixed-size cache and a position mask (same shapes at every token);
    ``compile_mode`` (a ``torch.compile`` mode, e.g. "default" or "reduce-overhead") compiles that step.
    """
    num_tokens = max_new_tokens or model.block_size
    batch = cond.shape[0]
    guided = cfg.guided_positions(num_tokens).tolist()
    model_cond, model_mask = cfg_batch(model, cond, cond_mask, cfg)
    tokens = torch.empty(batch, num_tokens, dtype=torch.long, device=cond.device)
    logprobs = torch.empty(batch, num_tokens, dtype=torch.float32, device=cond.device)
    static = static_cache or compile_mode is not None
    static_step = GPT.decode_step_static if compile_mode is None else compiled_decode_step(compile_mode)
    position = torch.zeros(1, dtype=torch.long, device=cond.device)  # written in place: one graph input
    with model.kv_cache(model_cond.shape[0], num_tokens, cache_dtype, model_mask, static=static):
        logits = model.prefill_static(model_cond) if static else model.prefill(model_cond)
        for n in range(num_tokens):
            step_logits = process_logits(
                guided_logits(logits, cfg, guided[n]), cfg.temperature, cfg.top_k, cfg.top_p
            )
            tokens[:, n], logprobs[:, n] = sample_tokens(step_logits, generator)
            if n + 1 < num_tokens:
                feed = tokens[:, n].repeat(2) if cfg.uses_cfg else tokens[:, n]
                logits = static_step(model, feed, position.fill_(n)) if static else model.decode_step(feed, n)
    return SampledTokens(tokens, logprobs)


def policy_logits(
    model: GPT,
    cond: torch.Tensor,
    tokens: torch.Tensor,
    cfg: SamplingConfig,
    cond_mask: torch.Tensor | None = None,
    guidance: str = "cfg",
) -> torch.Tensor:
    """Teacher-forced logits (B, N, V) of the policy, in one forward pass, before temperature/filtering.

    ``guidance="cfg"`` is the guided distribution that sampled the tokens (on-policy); ``"cond"`` is the
    conditional branch alone (what upstream AR-GRPO optimises).
    """
    if guidance not in ("cfg", "cond"):
        raise ValueError(f"guidance must be 'cfg' or 'cond', got {guidance!r}")
    if guidance == "cond" or not cfg.uses_cfg:
        return model(tokens, cond, cond_mask)
    model_cond, model_mask = cfg_batch(model, cond, cond_mask, cfg)
    logits = model(tokens.repeat(2, 1), model_cond, model_mask)
    return guided_logits(logits, cfg, cfg.guided_positions(tokens.shape[1], tokens.device))


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """log p(token) (B, N) after the same temperature/top-k/top-p processing the sampler applies."""
    return _log_softmax(logits, cfg).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _log_softmax(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    return torch.log_softmax(process_logits(logits, cfg.temperature, cfg.top_k, cfg.top_p), dim=-1)


def sequence_logprobs(
    model: GPT,
    cond: torch.Tensor,
    tokens: torch.Tensor,
    cfg: SamplingConfig,
    cond_mask: torch.Tensor | None = None,
    guidance: str = "cfg",
    *,
    with_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities (B, N) of ``tokens`` under ``cfg``, recomputed in one teacher-forced pass.

    The trainer's only log-probability function (frozen old/reference passes and the update), checked against
    the sampler's log-probs. ``with_entropy`` also returns the per-token entropy (B, N) of the same
    distribution, from the same log-softmax (differentiable, for an entropy bonus).
    """
    logp_all = _log_softmax(policy_logits(model, cond, tokens, cfg, cond_mask, guidance), cfg)
    logp = logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return logp
    return logp, -(logp_all.exp() * logp_all).sum(-1)
