"""Generating text: prefill and decode with a preallocated KV cache, samplers, ``generate`` and ``stream``.

A language model predicts one token at a time. Generating text is a loop around it:

    ids = tokenizer.encode(prompt)
    for _ in range(max_new_tokens):
        logits = model(ids)[-1]            # scores for every token of the vocabulary
        next_id = sample(logits)           # pick one: greedy, or at random from a shaped distribution
        ids.append(next_id)
        if next_id == eos_id:
            break
    text = tokenizer.decode(ids)

That loop is correct (``use_cache=False`` computes exactly this) but wasteful: each step
recomputes the keys and values of every earlier token, which never change. A **KV cache** stores
them instead. The prompt goes through the model once (*prefill*, one big parallel pass that fills
the cache), then each *decode step* feeds only the newest token, which attends to the cached keys
and values and appends its own. A step then costs one token's worth of matrix work plus attention over the cache,
instead of a forward pass over the whole context.

Three choices make the loop fast on an accelerator and on CPU alike:

* **Preallocated cache.** Each layer's cache is a fixed (B, max_len, n_kv_heads, head_dim) array;
  slot j holds position j. Nothing grows, so shapes stay static and XLA can compile the loop.
* **One compiled loop.** The whole token loop is a ``lax.while_loop`` inside one ``jax.jit``:
  no Python runs between tokens. It is compiled over ``nnx.split(model)``'s state with the
  graph definition static, and JAX caches the compiled program, so the next call reuses it.
* **Buckets.** A compiled program is specialised to its shapes. Prompts are right-padded to a
  bucket (16, 32, 64, ... tokens), so a new prompt length reuses the program of its bucket
  instead of compiling a new one. The cache holds bucket + max_new_tokens slots (capped by the
  model's context) rather than always the full context, because every decode step attends over
  the whole cache and its cost grows with the cache's length.

Batched prompts of different lengths share one padded batch: row b keeps its own length, its
next token goes to slot ``lengths[b]`` (overwriting padding) with position ``lengths[b]``, and
the attention mask (key position <= query position) hides the padding beyond it. Each row
stops on its own: on EOS, a stop string, ``max_new_tokens``, or when its context is full.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Iterator, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tinyslm.errors import GenerationError
from tinyslm.model import LayerCache, TransformerLM
from tinyslm.tokenizer import Tokenizer

# ------------------------------------------------------------------------------------- samplers
#
# A sampler turns the next-token logits (B, V) into token ids (B,). Each filter below reshapes
# the logits (removing unlikely tokens by setting them to -inf, or rescaling them); a Sampler
# applies its filters in order, then takes the argmax (greedy) or draws from softmax(logits).


class LogitsFilter(Protocol):
    def __call__(self, logits: jax.Array, seen: jax.Array) -> jax.Array:
        """logits (B, V) float32, seen (B, V) bool (tokens already in each row) -> logits (B, V)."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise GenerationError(message)


@dataclass(frozen=True)
class RepetitionPenalty:
    """Make tokens already in the text less likely (Keskar et al. 2019, CTRL, arXiv:1909.05858).

    For every token present in the prompt or the output so far, a positive logit is divided by
    ``penalty`` and a negative one multiplied by it, so either way the token loses ground.
    """

    penalty: float

    def __post_init__(self) -> None:
        _require(self.penalty > 0, f"repetition_penalty must be positive, got {self.penalty}")

    def __call__(self, logits: jax.Array, seen: jax.Array) -> jax.Array:
        penalized = jnp.where(logits > 0, logits / self.penalty, logits * self.penalty)
        return jnp.where(seen, penalized, logits)


@dataclass(frozen=True)
class Temperature:
    """Divide the logits by ``temperature``: < 1 sharpens the distribution, > 1 flattens it."""

    temperature: float

    def __post_init__(self) -> None:
        _require(self.temperature > 0, f"temperature must be positive (use greedy for 0), got {self.temperature}")

    def __call__(self, logits: jax.Array, seen: jax.Array) -> jax.Array:
        return logits / self.temperature


@dataclass(frozen=True)
class TopK:
    """Keep exactly the ``k`` most likely tokens (ties broken by token id), drop the rest."""

    k: int

    def __post_init__(self) -> None:
        _require(self.k >= 1, f"top_k must be >= 1, got {self.k}")

    def __call__(self, logits: jax.Array, seen: jax.Array) -> jax.Array:
        _, best = jax.lax.top_k(logits, min(self.k, logits.shape[-1]))  # (B, k) ids
        keep = jnp.put_along_axis(jnp.zeros(logits.shape, bool), best, True, axis=-1, inplace=False)
        return jnp.where(keep, logits, -jnp.inf)


@dataclass(frozen=True)
class TopP:
    """Nucleus sampling (Holtzman et al. 2019, arXiv:1904.09751): keep the smallest set of most
    likely tokens whose probabilities add up to at least ``p``.

    Sort by probability; a token stays if the tokens ranked above it hold less than ``p`` in total.
    """

    p: float

    def __post_init__(self) -> None:
        _require(0 < self.p <= 1, f"top_p must be in (0, 1], got {self.p}")

    def __call__(self, logits: jax.Array, seen: jax.Array) -> jax.Array:
        order = jnp.argsort(-logits, axis=-1)  # (B, V): most likely first
        probs = jax.nn.softmax(jnp.take_along_axis(logits, order, axis=-1), axis=-1)
        mass_above = jnp.cumsum(probs, axis=-1) - probs  # probability held by better-ranked tokens
        keep_sorted = mass_above < self.p
        keep = jnp.put_along_axis(jnp.zeros(logits.shape, bool), order, keep_sorted, axis=-1, inplace=False)
        return jnp.where(keep, logits, -jnp.inf)


@dataclass(frozen=True)
class MinP:
    """Min-p sampling (Nguyen et al. 2024, arXiv:2407.01082): keep tokens whose probability is at
    least ``p`` times the top token's. A confident model keeps few tokens, an unsure one many."""

    p: float

    def __post_init__(self) -> None:
        _require(0 <= self.p <= 1, f"min_p must be in [0, 1], got {self.p}")

    def __call__(self, logits: jax.Array, seen: jax.Array) -> jax.Array:
        probs = jax.nn.softmax(logits, axis=-1)
        keep = probs >= self.p * probs.max(axis=-1, keepdims=True)
        return jnp.where(keep, logits, -jnp.inf)


@dataclass(frozen=True)
class Sampler:
    """Apply ``filters`` in order, then pick the argmax (``greedy``) or draw from softmax(logits).

    Frozen and hashable, so a sampler is a static argument of the compiled loop: changing its
    settings compiles a new loop, reusing a sampler reuses the compiled one.
    """

    filters: tuple[LogitsFilter, ...] = ()
    greedy: bool = False

    def __call__(self, logits: jax.Array, seen: jax.Array, key: jax.Array) -> jax.Array:
        """logits (B, V), seen (B, V) bool, key -> token ids (B,) int32."""
        for f in self.filters:
            logits = f(logits, seen)
        if self.greedy:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


GREEDY = Sampler(greedy=True)


def make_sampler(
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
) -> Sampler:
    """The sampler the usual knobs describe; ``temperature=0`` means greedy.

    Filters run in the order Hugging Face uses: repetition penalty, temperature, top-k, top-p,
    min-p. Greedy ignores top-k/p and min-p (they never remove the most likely token).
    """
    _require(temperature >= 0, f"temperature must be >= 0, got {temperature}")
    penalty = (RepetitionPenalty(repetition_penalty),) if repetition_penalty != 1.0 else ()
    if temperature == 0:
        return Sampler(penalty, greedy=True)
    filters = (
        *penalty,
        *((Temperature(temperature),) if temperature != 1.0 else ()),
        *((TopK(top_k),) if top_k is not None else ()),
        *((TopP(top_p),) if top_p is not None and top_p != 1.0 else ()),
        *((MinP(min_p),) if min_p else ()),
    )
    return Sampler(filters)


# ------------------------------------------------------------------------------------- the KV cache


@jax.tree_util.register_dataclass
@dataclass
class KVCache:
    """Every layer's preallocated keys/values, and how many tokens each row holds.

    layers: one :class:`LayerCache` per layer, k and v (B, max_len, n_kv_heads, head_dim);
    lengths (B,) int32: row b's tokens fill slots 0 .. lengths[b] - 1.
    """

    layers: list[LayerCache]
    lengths: jax.Array


def prefill(model: TransformerLM, prompt: jax.Array, lengths: jax.Array, max_len: int) -> tuple[jax.Array, KVCache]:
    """Run right-padded prompts through the model in one pass, filling a fresh cache of ``max_len`` slots.

    prompt (B, T) int, lengths (B,) -> the next-token logits after each row's last real token
    (B, V), and the cache. Padding slots get keys/values too, but no later query can see them
    before a real token overwrites them.
    """
    B, T = prompt.shape
    positions = jnp.broadcast_to(jnp.arange(T), (B, T))
    hidden, layers = model.hidden_states(prompt, positions, model.init_cache(B, max_len))
    last = hidden[jnp.arange(B), lengths - 1]  # (B, D): only the last position's logits are needed
    return model.logits(last[:, None])[:, 0], KVCache(layers, lengths)


def decode_step(model: TransformerLM, cache: KVCache, tokens: jax.Array) -> tuple[jax.Array, KVCache]:
    """Append one token per row: tokens (B,) go to slot and position ``cache.lengths``.

    -> next-token logits (B, V), and the cache one token longer. The caller makes sure the slot
    exists (``cache.lengths < max_len``).
    """
    positions = cache.lengths[:, None]  # (B, 1)
    logits, layers = model.forward(tokens[:, None], positions, cache.layers)
    return logits[:, 0], KVCache(layers, cache.lengths + 1)


def forward_uncached(model: TransformerLM, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
    """The no-cache reference: recompute the whole context and read the logits after each row's last token.

    tokens (B, S) (slots past a row's length are ignored: the causal mask hides them), lengths (B,)
    -> logits (B, V).
    """
    hidden, _ = model.hidden_states(tokens)
    last = hidden[jnp.arange(tokens.shape[0]), lengths - 1]
    return model.logits(last[:, None])[:, 0]


# ------------------------------------------------------------------------------------- the compiled loop

RUNNING, EOS, STOP_STRING, MAX_NEW_TOKENS, CONTEXT_FULL = range(5)
FINISH_REASONS = ("running", "eos", "stop_string", "max_new_tokens", "context_full")


@jax.tree_util.register_dataclass
@dataclass
class DecodeState:
    """Everything the token loop carries from one step to the next (all on the device).

    tokens (B, S): each row's prompt then its new tokens, slot = position (S = the cache length);
    lengths (B,): tokens held per row; prompt_lengths (B,); cache: the KV cache (None without);
    seen (B, V) bool: tokens present in each row (for the repetition penalty); reason (B,): a
    FINISH_REASONS index, RUNNING until the row stops; key: the PRNG key, split once per step;
    step: tokens appended so far to running rows; max_new, eos_id: the request's limits.
    """

    tokens: jax.Array
    lengths: jax.Array
    prompt_lengths: jax.Array
    cache: KVCache | None
    seen: jax.Array
    reason: jax.Array
    key: jax.Array
    step: jax.Array
    max_new: jax.Array
    eos_id: jax.Array


def _append(state: DecodeState, logits: jax.Array, sampler: Sampler) -> DecodeState:
    """Sample each running row's next token, store it after the row's last token, and stop rows that are done."""
    key, sample_key = jax.random.split(state.key)
    token = sampler(logits, state.seen, sample_key)  # (B,)
    running = state.reason == RUNNING
    rows = jnp.arange(token.shape[0])
    # A finished row also writes, past its end (or off the buffer: dropped); nothing reads it there.
    tokens = state.tokens.at[rows, state.lengths].set(token, mode="drop")
    lengths = state.lengths + running
    new_tokens = lengths - state.prompt_lengths
    reason_now = jnp.select(
        [token == state.eos_id, new_tokens >= state.max_new, lengths >= state.tokens.shape[1]],
        [EOS, MAX_NEW_TOKENS, CONTEXT_FULL],
        RUNNING,
    )
    return replace(
        state,
        tokens=tokens,
        lengths=lengths,
        seen=state.seen.at[rows, token].max(running),
        reason=jnp.where(running, reason_now, state.reason),
        key=key,
        step=state.step + 1,
    )


def _next_logits(model: TransformerLM, state: DecodeState) -> tuple[jax.Array, KVCache | None]:
    """Feed each row's newest token and return the next-token logits (B, V) and the cache."""
    if state.cache is None:
        return forward_uncached(model, state.tokens, state.lengths), None
    newest = state.tokens[jnp.arange(state.tokens.shape[0]), state.lengths - 1]  # sits at slot cache.lengths
    logits, cache = decode_step(model, state.cache, newest)
    # Finished rows ran along (a batch moves together) but keep their length: their slot is reused.
    running = state.reason == RUNNING
    return logits, replace(cache, lengths=jnp.where(running, cache.lengths, state.cache.lengths))


@partial(jax.jit, static_argnames=("graphdef", "sampler", "prompt_len", "use_cache"))
def _start(params, tokens, lengths, max_new, eos_id, key, *, graphdef, sampler, prompt_len, use_cache) -> DecodeState:
    """Prefill the first ``prompt_len`` (the bucket) slots of ``tokens`` (B, S) and sample the first new token."""
    model = nnx.merge(graphdef, params)
    B, S = tokens.shape
    if use_cache:
        logits, cache = prefill(model, tokens[:, :prompt_len], lengths, S)
    else:
        logits, cache = forward_uncached(model, tokens, lengths), None
    is_prompt = jnp.arange(S) < lengths[:, None]  # (B, S): padding is not "seen"
    seen = jnp.zeros((B, model.config.vocab_size), bool).at[jnp.arange(B)[:, None], tokens].max(is_prompt)
    state = DecodeState(
        tokens=tokens, lengths=lengths, prompt_lengths=lengths, cache=cache, seen=seen,
        reason=jnp.full((B,), RUNNING, jnp.int32), key=key, step=jnp.int32(0), max_new=max_new, eos_id=eos_id,
    )
    return _append(state, logits, sampler)


@partial(jax.jit, static_argnames=("graphdef", "sampler"), donate_argnames=("state",))
def _advance(params, state: DecodeState, until, *, graphdef, sampler) -> DecodeState:
    """Run the token loop on the device until every row has stopped or ``step`` reaches ``until``.

    ``until`` is traced, not static: ``generate`` runs to the end in one call, ``stream`` one
    token per call, and both reuse the same compiled loop.
    """
    model = nnx.merge(graphdef, params)

    def keep_going(s: DecodeState) -> jax.Array:
        return (s.step < until) & jnp.any(s.reason == RUNNING)

    def step(s: DecodeState) -> DecodeState:
        logits, cache = _next_logits(model, s)
        return _append(replace(s, cache=cache), logits, sampler)

    return jax.lax.while_loop(keep_going, step, state)


# ------------------------------------------------------------------------------------- host side: one request

MIN_BUCKET = 16
STOP_CHECK_EVERY = 16  # with stop strings, the loop returns to Python every 16 tokens to look for them


def prompt_bucket(length: int, context: int) -> int:
    """The padded prompt length: the next power of two >= ``length``, at least 16, at most ``context``."""
    return min(max(MIN_BUCKET, 1 << (length - 1).bit_length()), context)


def cache_length(bucket: int, max_new_tokens: int, context: int) -> int:
    """Slots the request needs: the prompt's bucket plus the new tokens, capped by the context."""
    return min(bucket + max_new_tokens, context)


def _fit_prompts(prompts: Sequence[Sequence[int]], vocab_size: int, context: int, max_new_tokens: int,
                 truncate_prompt: bool) -> list[list[int]]:
    """Check the prompts against the model; cut over-long ones to their end only if asked."""
    _require(len(prompts) > 0, "no prompts given")
    _require(max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {max_new_tokens}")
    keep = max(1, context - max_new_tokens)  # truncation leaves room for the requested tokens
    fitted = []
    for i, ids in enumerate(prompts):
        ids = [int(t) for t in ids]
        _require(len(ids) > 0, f"prompt {i} is empty: give some text (or encode it with a BOS token)")
        _require(min(ids) >= 0 and max(ids) < vocab_size, f"prompt {i} has token ids outside the model's "
                 f"vocabulary of {vocab_size}; was it encoded with this model's tokenizer?")
        if truncate_prompt and len(ids) > keep:
            ids = ids[-keep:]
        _require(len(ids) < context, f"prompt {i} has {len(ids)} tokens but the model's context is {context}, "
                                     "leaving no room to generate; shorten it, or pass truncate_prompt=True "
                                     "to keep only its end")
        fitted.append(ids)
    return fitted


def _compile(jitted, *args, **statics):
    """Compile ``jitted`` for these arguments -> (executable, seconds). JAX caches the work, so
    asking again for the same shapes and static arguments takes about a millisecond."""
    start = time.perf_counter()
    executable = jitted.lower(*args, **statics).compile()
    return executable, time.perf_counter() - start


def _timed(executable, *args):
    """Run a compiled executable and wait for its result on the device -> (result, seconds)."""
    start = time.perf_counter()
    out = jax.block_until_ready(executable(*args))
    return out, time.perf_counter() - start


class _Request:
    """One generation request on the device: its loop state and its clock.

    Timing: each jitted function is first traced and compiled with ``.lower(...).compile()``
    outside the clock (JAX's caches make this ~1 ms when the shapes were seen before), and the
    returned executable is then timed from the call until ``block_until_ready``. So ``prefill_s``
    and ``decode_s`` never include tracing or compilation; ``compile_s`` says how long that took.
    The first run of a freshly compiled program still pays some one-time setup (tens of ms on
    CPU), so steady-state speed is that of a warm request: one whose shapes were seen before.
    """

    def __init__(self, model: TransformerLM, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                 sampler: Sampler, seed: int, eos_id: int | None, use_cache: bool, truncate_prompt: bool):
        c = model.config
        prompts = _fit_prompts(prompts, c.vocab_size, c.max_seq_len, max_new_tokens, truncate_prompt)
        bucket = prompt_bucket(max(map(len, prompts)), c.max_seq_len)
        tokens = np.zeros((len(prompts), cache_length(bucket, max_new_tokens, c.max_seq_len)), np.int32)
        for row, ids in zip(tokens, prompts):
            row[: len(ids)] = ids
        self.graphdef, self.params = nnx.split(model)
        self.sampler, self.max_new_tokens = sampler, max_new_tokens
        self.prompt_lengths = np.array([len(p) for p in prompts], np.int32)
        args = (self.params, tokens, self.prompt_lengths, np.int32(max_new_tokens),
                np.int32(-1 if eos_id is None else eos_id), jax.random.key(seed))
        start, self.compile_s = _compile(_start, *args, graphdef=self.graphdef, sampler=sampler, prompt_len=bucket,
                                         use_cache=use_cache)
        self.state, self.prefill_s = _timed(start, *args)
        self.loop = None  # the compiled token loop, built on the first call to advance()
        self.decode_s, self.decode_steps, self.decode_tokens = 0.0, 0, 0
        self._read()

    def _read(self) -> None:
        """Copy the small per-row results back to the host."""
        state = self.state  # copies, since the next step reuses (donates) the device buffers
        self.tokens, self.lengths, self.reason = (np.array(x) for x in (state.tokens, state.lengths, state.reason))
        self.step = int(state.step)

    @property
    def running(self) -> bool:
        return bool((self.reason == RUNNING).any())

    def new_ids(self, row: int) -> list[int]:
        return self.tokens[row, self.prompt_lengths[row] : self.lengths[row]].tolist()

    def advance(self, until: int) -> None:
        """Run the compiled loop until every row has stopped or ``until`` tokens were appended."""
        until = np.int32(min(until, self.max_new_tokens))
        if self.loop is None:
            self.loop, seconds = _compile(_advance, self.params, self.state, until, graphdef=self.graphdef,
                                          sampler=self.sampler)
            self.compile_s += seconds
        before_step, before_total = self.step, int(self.lengths.sum())
        self.state, seconds = _timed(self.loop, self.params, self.state, until)
        self._read()
        self.decode_s += seconds
        self.decode_steps += self.step - before_step
        self.decode_tokens += int(self.lengths.sum()) - before_total

    def check_stops(self, stop_check: Callable[[list[int]], int | None] | None) -> None:
        """Stop the rows whose text now contains a stop string, keeping their ids up to the token that completed it."""
        if stop_check is None:
            return
        stopped = False
        for row in np.flatnonzero(self.reason == RUNNING):
            keep = stop_check(self.new_ids(row))
            if keep is not None:
                self.lengths[row] = self.prompt_lengths[row] + keep
                self.reason[row] = STOP_STRING
                stopped = True
        if stopped:
            self.state = replace(self.state, lengths=jnp.asarray(self.lengths), reason=jnp.asarray(self.reason))

    def result(self, texts: list[str] | None = None) -> GenerationResult:
        rows = range(len(self.prompt_lengths))
        return GenerationResult(
            token_ids=[self.new_ids(row) for row in rows],
            finish_reasons=[FINISH_REASONS[self.reason[row]] for row in rows],
            texts=texts,
            prefill_ms=1000 * self.prefill_s,
            decode_ms=1000 * self.decode_s,
            decode_steps=self.decode_steps,
            decode_tokens=self.decode_tokens,
            compile_ms=1000 * self.compile_s,
        )


# ------------------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class GenerationResult:
    """What a request produced, row by row, and how fast.

    token_ids: each row's new tokens (prompt excluded; EOS included when it ended the row; with a
    stop string, up to the token that completed it); texts: their decoded text, cut before the
    stop string (None from :func:`generate_ids`); finish_reasons: "eos", "stop_string",
    "max_new_tokens" or "context_full".

    Timing (compilation excluded, see ``_Request``): ``prefill_ms`` is the prompt pass plus the
    first token; ``decode_ms`` covers the ``decode_steps`` later steps, which produced
    ``decode_tokens`` tokens over all rows. With stop strings a row may compute a few tokens past
    its stop before the host notices; those count as computed.
    """

    token_ids: list[list[int]]
    finish_reasons: list[str]
    texts: list[str] | None
    prefill_ms: float
    decode_ms: float
    decode_steps: int
    decode_tokens: int
    compile_ms: float

    @property
    def new_tokens(self) -> list[int]:
        return [len(ids) for ids in self.token_ids]

    @property
    def tokens_per_s(self) -> float | None:
        """Decode throughput over all rows (None when there was no decode step)."""
        return self.decode_tokens / (self.decode_ms / 1000) if self.decode_steps else None

    @property
    def ms_per_token(self) -> float | None:
        """Time of one decode step: the wait between a row's consecutive tokens."""
        return self.decode_ms / self.decode_steps if self.decode_steps else None

    def summary(self) -> dict:
        """The CLI's JSON: text, new_tokens, finish_reason, prefill_ms, tokens_per_s, ms_per_token.

        ``text``, ``new_tokens`` and ``finish_reason`` are scalars for one prompt, lists for a batch.
        """
        one = len(self.token_ids) == 1
        pick = (lambda xs: xs[0]) if one else list
        return {
            "text": pick(self.texts) if self.texts is not None else None,
            "new_tokens": pick(self.new_tokens),
            "finish_reason": pick(self.finish_reasons),
            "prefill_ms": round(self.prefill_ms, 3),
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 2),
            "ms_per_token": None if self.ms_per_token is None else round(self.ms_per_token, 3),
        }

    def summary_line(self) -> str:
        """One line for humans: ``N tokens · prefill X ms · Y tok/s · Z ms/token``."""
        rate = "n/a" if self.tokens_per_s is None else f"{self.tokens_per_s:.1f}"
        step = "n/a" if self.ms_per_token is None else f"{self.ms_per_token:.2f}"
        return f"{sum(self.new_tokens)} tokens · prefill {self.prefill_ms:.1f} ms · {rate} tok/s · {step} ms/token"


# ------------------------------------------------------------------------------------- public entry points


def generate_ids(
    model: TransformerLM,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 64,
    sampler: Sampler = GREEDY,
    seed: int = 0,
    eos_id: int | None = None,
    use_cache: bool = True,
    truncate_prompt: bool = False,
    stop_check: Callable[[list[int]], int | None] | None = None,
) -> GenerationResult:
    """Generate from token-id prompts (a batch of any lengths) with one compiled loop.

    ``stop_check(new_ids)`` (optional) returns how many of a row's new ids to keep once they
    complete a stop condition, else None; it is called every ``STOP_CHECK_EVERY`` tokens.
    The same ``seed`` gives the same tokens; each step draws from its own split of the key.
    """
    request = _Request(model, prompts, max_new_tokens=max_new_tokens, sampler=sampler, seed=seed, eos_id=eos_id,
                       use_cache=use_cache, truncate_prompt=truncate_prompt)
    chunk = max_new_tokens if stop_check is None else STOP_CHECK_EVERY
    request.check_stops(stop_check)
    while request.running:
        request.advance(request.step + chunk)
        request.check_stops(stop_check)
    return request.result()


def generate(
    model: TransformerLM,
    tokenizer: Tokenizer,
    prompts: str | Sequence[str],
    *,
    max_new_tokens: int = 64,
    sampler: Sampler = GREEDY,
    seed: int = 0,
    stop: Sequence[str] = (),
    bos: bool = False,
    use_cache: bool = True,
    truncate_prompt: bool = False,
) -> GenerationResult:
    """Continue each prompt; stop a row on the tokenizer's EOS, on any of ``stop``, or at a limit.

    ``texts`` hold only the new text, cut before the first stop string. ``bos=True`` starts
    each prompt with the tokenizer's BOS token.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    result = generate_ids(
        model, [tokenizer.encode(p, bos=bos) for p in prompts], max_new_tokens=max_new_tokens, sampler=sampler,
        seed=seed, eos_id=tokenizer.eos_id, use_cache=use_cache, truncate_prompt=truncate_prompt,
        stop_check=_stop_check(tokenizer, stop),
    )
    return replace(result, texts=[_cut(tokenizer.decode(ids), stop) for ids in result.token_ids])


def stream(
    model: TransformerLM,
    tokenizer: Tokenizer,
    prompt: str,
    *,
    max_new_tokens: int = 64,
    sampler: Sampler = GREEDY,
    seed: int = 0,
    stop: Sequence[str] = (),
    bos: bool = False,
    use_cache: bool = True,
    truncate_prompt: bool = False,
) -> TextStream:
    """Like :func:`generate` for one prompt, but hand back the text piece by piece as it is produced.

    The prompt is checked and prefilled right away (so a bad request fails here); iterating
    the returned :class:`TextStream` runs the decode steps.
    """
    request = _Request(model, [tokenizer.encode(prompt, bos=bos)], max_new_tokens=max_new_tokens, sampler=sampler,
                       seed=seed, eos_id=tokenizer.eos_id, use_cache=use_cache, truncate_prompt=truncate_prompt)
    return TextStream(request, tokenizer, stop)


class TextStream:
    """Iterate to get the new text in pieces; afterwards ``result`` holds the :class:`GenerationResult`.

    One compiled step per token (the same compiled loop, asked to stop after one more token).
    After each token the whole new text is decoded again and only what is *final* is emitted:
    a trailing U+FFFD may be half of a multi-byte character whose other bytes are still to come,
    and a trailing piece of text may be the start of a stop string. Both are held back until
    later tokens settle them, so the pieces always join to exactly ``generate``'s text.
    """

    def __init__(self, request: _Request, tokenizer: Tokenizer, stop: Sequence[str]):
        self._request, self._tokenizer, self._stop = request, tokenizer, stop
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        request, stop = self._request, self._stop
        stop_check = _stop_check(self._tokenizer, stop)
        shown = ""
        while True:
            request.check_stops(stop_check)
            text = _cut(self._tokenizer.decode(request.new_ids(0)), stop)
            final = _settled(text, stop) if request.running else text
            if len(final) > len(shown):
                yield final[len(shown):]
                shown = final
            if not request.running:
                self.result = request.result(texts=[text])
                return
            request.advance(request.step + 1)


# ------------------------------------------------------------------------------------- stop strings


def _find_stop(text: str, stop: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in ``text``, or None."""
    return min((i for s in stop if (i := text.find(s)) >= 0), default=None)


def _cut(text: str, stop: Sequence[str]) -> str:
    """``text`` up to (not including) its first stop string."""
    at = _find_stop(text, stop)
    return text if at is None else text[:at]


def _stop_check(tokenizer: Tokenizer, stop: Sequence[str]) -> Callable[[list[int]], int | None] | None:
    """A ``stop_check`` for :func:`generate_ids`: the shortest prefix of ids whose text holds a stop string."""
    if not stop:
        return None

    def check(ids: list[int]) -> int | None:
        if _find_stop(tokenizer.decode(ids), stop) is None:
            return None
        return next(k for k in range(1, len(ids) + 1) if _find_stop(tokenizer.decode(ids[:k]), stop) is not None)

    return check


def _settled(text: str, stop: Sequence[str]) -> str:
    """The part of a growing text that later tokens cannot change.

    Hold back a trailing U+FFFD (maybe an incomplete multi-byte character) and the longest
    ending of the text that is the beginning of a stop string.
    """
    text = text.rstrip("\ufffd")
    held = max((n for s in stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
    return text[: len(text) - held]


__all__ = [
    "Sampler", "GREEDY", "make_sampler", "RepetitionPenalty", "Temperature", "TopK", "TopP", "MinP",
    "KVCache", "prefill", "decode_step", "forward_uncached", "prompt_bucket", "cache_length",
    "generate", "generate_ids", "stream", "TextStream", "GenerationResult", "FINISH_REASONS",
]
