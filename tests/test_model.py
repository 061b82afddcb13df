"""The model against naive NumPy references, written loop by loop from the papers' equations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tinyslm.config import ModelConfig, RopeScaling
from tinyslm.model import attention as attention_module
from tinyslm.model import cpu_kernels
from tinyslm.model import (
    TransformerLM,
    apply_rope,
    blocked_attention,
    causal_attention,
    count_params,
    fused_attention,
    layer_norm,
    param_count,
    rms_norm,
    rope_frequencies,
)
from tinyslm.model.linear import matmul

RNG = np.random.default_rng(0)


def tiny(preset: str, **overrides) -> ModelConfig:
    base = dict(vocab_size=37, d_model=24, n_layers=2, n_heads=4, max_seq_len=16)
    return ModelConfig(preset=preset, **{**base, **overrides})


# ----------------------------------------------------------------------------- NumPy references


def np_attention(q, k, v):
    """Loop over batch and heads; query head h uses KV head h // (H / Hkv); causal triangle."""
    B, T, H, D = q.shape
    group = H // k.shape[2]
    out = np.zeros_like(q)
    for b in range(B):
        for h in range(H):
            scores = q[b, :, h] @ k[b, :, h // group].T / math.sqrt(D)
            scores[np.triu_indices(T, 1)] = -np.inf
            w = np.exp(scores - scores.max(-1, keepdims=True))
            out[b, :, h] = (w / w.sum(-1, keepdims=True)) @ v[b, :, h // group]
    return out


def np_rope(x, positions, theta, scaling=None):
    """Rotate pair (i, i + D/2) by position * freq_i, with Llama 3 scaling done per frequency."""
    D = x.shape[-1]
    out = np.empty_like(x)
    for i in range(D // 2):
        freq = theta ** (-2 * i / D)
        if scaling is not None:
            wavelen = 2 * math.pi / freq
            lo = scaling.original_max_seq_len / scaling.low_freq_factor
            hi = scaling.original_max_seq_len / scaling.high_freq_factor
            if wavelen > lo:
                freq = freq / scaling.factor
            elif wavelen >= hi:
                s = (scaling.original_max_seq_len / wavelen - scaling.low_freq_factor) / (
                    scaling.high_freq_factor - scaling.low_freq_factor)
                freq = (1 - s) * freq / scaling.factor + s * freq
        angle = positions[:, :, None] * freq
        a, b = x[..., i], x[..., i + D // 2]
        out[..., i] = a * np.cos(angle) - b * np.sin(angle)
        out[..., i + D // 2] = b * np.cos(angle) + a * np.sin(angle)
    return out


def np_layer_norm(x, g, b, eps):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * g + b


def np_rms_norm(x, g, eps):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * g


def np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def np_forward(model: TransformerLM, tokens: np.ndarray) -> np.ndarray:
    """The whole LM in NumPy from the model's parameters (no tinyslm function is reused)."""
    c = model.config
    P = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    lin = lambda x, p: x @ p["kernel"] + (p["bias"] if "bias" in p else 0)
    norm = (lambda x, p: np_layer_norm(x, p["scale"], p.get("bias", 0), c.norm_eps)) if c.norm == "layernorm" \
        else (lambda x, p: np_rms_norm(x, p["scale"], c.norm_eps))
    B, T = tokens.shape
    pos = np.broadcast_to(np.arange(T), (B, T)).astype(np.float64)
    x = P["embed"]["weight"][tokens]
    if c.positions == "learned":
        x = x + P["pos_embed"]["weight"][:T]
    for blk in P["blocks"].values():
        h = norm(x, blk["attn_norm"])
        a = blk["attn"]
        q = lin(h, a["q"]).reshape(B, T, c.n_heads, c.head_dim)
        k = lin(h, a["k"]).reshape(B, T, c.n_kv_heads, c.head_dim)
        v = lin(h, a["v"]).reshape(B, T, c.n_kv_heads, c.head_dim)
        if c.positions == "rope":
            q, k = np_rope(q, pos, c.rope_theta, c.rope_scaling), np_rope(k, pos, c.rope_theta, c.rope_scaling)
        x = x + lin(np_attention(q, k, v).reshape(B, T, -1), a["o"])
        h = norm(x, blk["mlp_norm"])
        m = blk["mlp"]
        if c.mlp == "swiglu":
            g = lin(h, m["gate"])
            inner = g / (1 + np.exp(-g)) * lin(h, m["up"])
        else:
            inner = np_gelu_tanh(lin(h, m["up"]))
        x = x + lin(inner, m["down"])
    x = norm(x, P["final_norm"])
    return x @ (P["embed"]["weight"].T if c.tie_embeddings else P["head"]["kernel"])


# ----------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("n_heads,n_kv_heads", [(4, 4), (6, 2), (5, 1), (3, 3)])
def test_attention_matches_naive_loops(n_heads, n_kv_heads):
    B, T, D = 2, 7, 5  # odd sizes on purpose
    q = RNG.standard_normal((B, T, n_heads, D)).astype(np.float32)
    k = RNG.standard_normal((B, T, n_kv_heads, D)).astype(np.float32)
    v = RNG.standard_normal((B, T, n_kv_heads, D)).astype(np.float32)
    pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    expected = np_attention(q, k, v)
    for attend in (causal_attention, blocked_attention, fused_attention):
        np.testing.assert_allclose(attend(q, k, v, pos, pos), expected, atol=1e-5)
        np.testing.assert_allclose(attend(q, k, v, pos, jnp.array(pos)), expected, atol=1e-5)  # explicit mask


@pytest.mark.parametrize("T,block", [(7, 3), (9, 3), (150, 32)])  # a short last block, exact blocks, the default
def test_blocked_attention_matches_naive_values_and_gradients(monkeypatch, T, block):
    monkeypatch.setattr(attention_module, "QUERY_BLOCK", block)
    B, H, Hkv, D = 2, 4, 2, 8
    q, k, v, probe = (jnp.asarray(RNG.standard_normal((B, T, h, D)), jnp.float32) for h in (H, Hkv, Hkv, H))
    pos = jnp.broadcast_to(jnp.arange(T), (B, T))

    def value_and_grads(attend):  # the keys are the queries' own tokens: the same positions array
        loss = lambda q, k, v: jnp.sum(attend(q, k, v, pos, pos) * probe)
        return jax.jit(lambda q, k, v: (attend(q, k, v, pos, pos), jax.grad(loss, argnums=(0, 1, 2))(q, k, v)))(q, k, v)

    (blocked, blocked_grads), (naive, naive_grads) = value_and_grads(blocked_attention), value_and_grads(causal_attention)
    np.testing.assert_allclose(blocked, np_attention(*map(np.asarray, (q, k, v))), atol=1e-5)
    for got, want in zip(blocked_grads, naive_grads):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_fused_cpu_kernel_builds_wherever_a_compiler_exists():
    x = jnp.zeros((1, 1, 1, 16))
    assert cpu_kernels.available(x, x) == (cpu_kernels._compiler() is not None)


def test_without_a_compiler_attention_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "_compiler", lambda: None)
    cpu_kernels._load.cache_clear()
    x = jnp.zeros((1, 1, 1, 16))
    try:
        with pytest.warns(UserWarning, match="no C.. compiler found"):
            assert not cpu_kernels.available(x, x)
    finally:
        cpu_kernels._load.cache_clear()  # the next caller loads the real kernel again


@pytest.mark.parametrize("B,T,H,Hkv,D", [(2, 150, 4, 2, 16), (3, 64, 3, 3, 32), (1, 1, 2, 1, 64), (1, 129, 2, 2, 48)])
def test_fused_cpu_kernel_matches_naive_values_and_gradients(B, T, H, Hkv, D):
    """Tiles of 64: a short last tile, exactly one tile, a single token, a tile of one row; GQA."""
    q, k, v, probe = (jnp.asarray(RNG.standard_normal((B, T, h, D)), jnp.float32) for h in (H, Hkv, Hkv, H))
    if not cpu_kernels.available(q, k):
        pytest.skip("no C++ compiler: tinyslm uses the pure-JAX path")
    pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    fused = jax.jit(cpu_kernels.flash_attention)(q, k, v)
    np.testing.assert_allclose(fused, np_attention(*map(np.asarray, (q, k, v))), atol=1e-5)
    loss = lambda attend: lambda q, k, v: jnp.sum(attend(q, k, v) * probe)
    fused_grads = jax.jit(jax.grad(loss(cpu_kernels.flash_attention), argnums=(0, 1, 2)))(q, k, v)
    naive_grads = jax.grad(loss(lambda q, k, v: causal_attention(q, k, v, pos, pos)), argnums=(0, 1, 2))(q, k, v)
    for got, want in zip(fused_grads, naive_grads):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_blocked_attention_takes_the_fused_kernel_on_cpu_unless_turned_off(monkeypatch):
    q = jnp.asarray(RNG.standard_normal((2, 70, 2, 16)), jnp.float32)
    pos = jnp.broadcast_to(jnp.arange(70), (2, 70))
    if not cpu_kernels.available(q, q):
        pytest.skip("no C++ compiler: tinyslm uses the pure-JAX path")
    trace = lambda: str(jax.make_jaxpr(lambda x: blocked_attention(x, x, x, pos, pos))(q))
    with_kernel, value = trace(), blocked_attention(q, q, q, pos, pos)
    monkeypatch.setenv("TINYSLM_CPU_KERNELS", "0")
    assert "tinyslm_flash_forward" in with_kernel and "tinyslm_flash_forward" not in trace()
    np.testing.assert_allclose(blocked_attention(q, q, q, pos, pos), value, atol=1e-5)


def test_attention_weights_are_a_scaled_softmax_over_visible_keys_in_float32():
    scores = RNG.standard_normal((2, 1, 1, 3, 5)).astype(np.float32)  # (B, Hkv, G, T, S)
    visible = RNG.random((2, 3, 5)) < 0.6
    visible[..., 0] = True  # every query sees at least one key
    weights = attention_module.attention_weights(jnp.asarray(scores, jnp.bfloat16), visible, head_dim=16)
    assert weights.dtype == jnp.float32
    scaled = np.asarray(jnp.asarray(scores, jnp.bfloat16), np.float32) / 4.0
    expected = np.where(visible[:, None, None], np.exp(scaled), 0.0)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    assert np.all(np.asarray(weights)[~np.broadcast_to(visible[:, None, None], weights.shape)] == 0.0)


def test_gqa_with_repeated_kv_heads_equals_mha():
    B, T, H, Hkv, D = 1, 6, 6, 2, 4
    q = RNG.standard_normal((B, T, H, D)).astype(np.float32)
    k = RNG.standard_normal((B, T, Hkv, D)).astype(np.float32)
    v = RNG.standard_normal((B, T, Hkv, D)).astype(np.float32)
    pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    gqa = causal_attention(q, k, v, pos, pos)
    mha = causal_attention(q, np.repeat(k, H // Hkv, axis=2), np.repeat(v, H // Hkv, axis=2), pos, pos)
    np.testing.assert_allclose(gqa, mha, atol=1e-6)


@pytest.mark.parametrize("scaling", [None, RopeScaling(factor=8.0, original_max_seq_len=64)])
def test_rope_matches_naive_rotation(scaling):
    x = RNG.standard_normal((2, 9, 3, 16)).astype(np.float32)
    pos = RNG.integers(0, 500, (2, 9))
    got = apply_rope(jnp.asarray(x), jnp.asarray(pos), rope_frequencies(16, 10000.0, scaling))
    np.testing.assert_allclose(got, np_rope(x, pos, 10000.0, scaling), atol=2e-4, rtol=1e-4)


def test_rope_gradient_is_the_inverse_rotation():
    """A rotation's transpose is the rotation back, so the gradient of RoPE at position p is RoPE at -p."""
    inv_freq = rope_frequencies(16, 10000.0)
    x, g = (jnp.asarray(RNG.standard_normal((2, 5, 3, 16)), jnp.float32) for _ in range(2))
    pos = jnp.asarray(RNG.integers(0, 500, (2, 5)))
    _, pullback = jax.vjp(lambda x: apply_rope(x, pos, inv_freq), x)
    np.testing.assert_allclose(pullback(g)[0], apply_rope(g, -pos, inv_freq), atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    inv_freq = rope_frequencies(8, 10000.0)
    q = jnp.asarray(RNG.standard_normal((1, 1, 1, 8)), jnp.float32)
    k = jnp.asarray(RNG.standard_normal((1, 1, 1, 8)), jnp.float32)
    dot = lambda m, n: float(jnp.sum(apply_rope(q, jnp.array([[m]]), inv_freq) * apply_rope(k, jnp.array([[n]]), inv_freq)))
    assert dot(5, 2) == pytest.approx(dot(103, 100), abs=1e-4)
    assert dot(5, 2) != pytest.approx(dot(5, 4), abs=1e-3)


def test_norms_match_numpy():
    x = RNG.standard_normal((3, 5, 12)).astype(np.float32) * 3 + 1
    g, b = RNG.standard_normal(12).astype(np.float32), RNG.standard_normal(12).astype(np.float32)
    np.testing.assert_allclose(layer_norm(x, g, b, 1e-5), np_layer_norm(x, g, b, 1e-5), atol=1e-5)
    np.testing.assert_allclose(rms_norm(x, g, 1e-6), np_rms_norm(x, g, 1e-6), atol=1e-5)


@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm_gradients_equal_autodiff_of_the_formula(with_bias):
    def formula(x, g, b):  # LayerNorm as written in the paper, differentiated by JAX
        y = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5) * g
        return y if b is None else y + b

    x = jnp.asarray(RNG.standard_normal((2, 5, 12)).astype(np.float32) * 3 + 1)
    g, b = (jnp.asarray(RNG.standard_normal(12).astype(np.float32)) for _ in range(2))
    b = b if with_bias else None
    dy = jnp.asarray(RNG.standard_normal((2, 5, 12)).astype(np.float32))
    y, pullback = jax.vjp(lambda *a: layer_norm(*a, 1e-5), x, g, b)
    y_ref, pullback_ref = jax.vjp(formula, x, g, b)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    for grad, ref in zip(pullback(dy), pullback_ref(dy)):
        assert (grad is None) == (ref is None)
        if ref is not None:
            np.testing.assert_allclose(grad, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("d_in,d_out", [(24, 6), (6, 24), (8, 8)])
def test_matmul_gradients_equal_the_plain_products(d_in, d_out, transposed):
    # d_in > d_out (d_out > d_in when transposed) takes the reordered weight gradient on CPU
    x, dy = RNG.standard_normal((10, d_in)).astype(np.float32), RNG.standard_normal((10, d_out)).astype(np.float32)
    w = RNG.standard_normal((d_in, d_out)).astype(np.float32)
    kernel = w.T if transposed else w  # transposed: stored (d_out, d_in), as a tied head's table
    y, pullback = jax.vjp(jax.jit(lambda a, b: matmul(a, b, transposed)), jnp.asarray(x), jnp.asarray(kernel))
    dx, dkernel = jax.jit(pullback)(jnp.asarray(dy))
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dy @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dkernel, (x.T @ dy).T if transposed else x.T @ dy, rtol=1e-5, atol=1e-5)
    assert dkernel.shape == kernel.shape


# ----------------------------------------------------------------------------- the whole model


@pytest.mark.parametrize("preset,extra", [
    ("gpt", {}),
    ("gpt", {"tie_embeddings": False}),
    ("llama", {"n_kv_heads": 2}),
    ("llama", {"n_kv_heads": 1, "qkv_bias": True, "tie_embeddings": False}),
    ("llama", {"rope_scaling": RopeScaling(factor=4.0, original_max_seq_len=8)}),
])
def test_model_matches_numpy_forward(preset, extra):
    model = TransformerLM(tiny(preset, **extra), rngs=nnx.Rngs(1))
    # Move every parameter off its init so that a wrong layout cannot hide behind 0.02 weights.
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    nnx.update(model, jax.tree.unflatten(treedef, [
        leaf + 0.3 * jax.random.normal(key, leaf.shape) for leaf, key in zip(leaves, keys)]))
    tokens = RNG.integers(0, 37, (2, 11))
    np.testing.assert_allclose(model(jnp.asarray(tokens)), np_forward(model, tokens), atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("attention", ["blocked", "fused"])
def test_attention_implementations_give_the_naive_model(attention):
    cfg = tiny("llama", n_kv_heads=2)
    naive = TransformerLM(ModelConfig(**{**cfg.__dict__, "attention": "naive"}), rngs=nnx.Rngs(0))
    other = TransformerLM(ModelConfig(**{**cfg.__dict__, "attention": attention}), rngs=nnx.Rngs(0))
    tokens = jnp.asarray(RNG.integers(0, 37, (2, 13)))
    np.testing.assert_allclose(naive(tokens), other(tokens), atol=1e-5)


@pytest.mark.parametrize("preset", ["gpt", "llama"])
def test_causality(preset):
    model = TransformerLM(tiny(preset, n_kv_heads=2), rngs=nnx.Rngs(0))
    tokens = RNG.integers(0, 37, (1, 12))
    changed = tokens.copy()
    changed[0, 7:] = (changed[0, 7:] + 1) % 37
    a, b = model(jnp.asarray(tokens)), model(jnp.asarray(changed))
    np.testing.assert_allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert np.abs(np.asarray(a[:, 7:] - b[:, 7:])).max() > 1e-4


@pytest.mark.parametrize("preset", ["gpt", "llama"])
def test_cached_forward_in_pieces_equals_full_forward(preset):
    model = TransformerLM(tiny(preset, n_kv_heads=2), rngs=nnx.Rngs(0))
    tokens = jnp.asarray(RNG.integers(0, 37, (2, 10)))
    full = model(tokens)
    cache = model.init_cache(batch=2, max_len=16)
    pieces = []
    for start, stop in [(0, 6), (6, 7), (7, 10)]:
        pos = jnp.broadcast_to(jnp.arange(start, stop), (2, stop - start))
        logits, cache = model.forward(tokens[:, start:stop], pos, cache)
        pieces.append(logits)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=1e-5)


def test_mqa_and_odd_shapes_run():
    cfg = tiny("llama", d_model=30, n_heads=5, n_kv_heads=1, d_ff=17, vocab_size=11)
    logits = TransformerLM(cfg, rngs=nnx.Rngs(0))(jnp.zeros((3, 7), jnp.int32))
    assert logits.shape == (3, 7, 11) and logits.dtype == jnp.float32


def test_dropout_uses_its_key_only():
    model = TransformerLM(tiny("gpt", dropout=0.5), rngs=nnx.Rngs(0))
    tokens = jnp.asarray(RNG.integers(0, 37, (2, 8)))
    k1, k2 = jax.random.key(1), jax.random.key(2)
    np.testing.assert_array_equal(model(tokens), model(tokens))  # no key: deterministic, no dropout
    np.testing.assert_array_equal(model(tokens, dropout_key=k1), model(tokens, dropout_key=k1))
    assert not np.allclose(model(tokens, dropout_key=k1), model(tokens, dropout_key=k2))


def test_gpt2_init_scales_residual_projections():
    cfg = ModelConfig(preset="gpt", vocab_size=64, d_model=256, n_layers=8, n_heads=4, max_seq_len=16)
    model = TransformerLM(cfg, rngs=nnx.Rngs(0))
    block = model.blocks[0]
    assert float(jnp.std(block.attn.q.kernel[...])) == pytest.approx(0.02, rel=0.05)
    assert float(jnp.std(block.attn.o.kernel[...])) == pytest.approx(0.02 / 4, rel=0.05)
    assert float(jnp.std(block.mlp.down.kernel[...])) == pytest.approx(0.02 / 4, rel=0.05)


# ----------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("cfg", [
    tiny("gpt"), tiny("gpt", tie_embeddings=False), tiny("gpt", bias=False),
    tiny("llama"), tiny("llama", n_kv_heads=1, qkv_bias=True), tiny("llama", tie_embeddings=False, d_ff=40),
    tiny("llama", norm="layernorm", mlp="gelu", bias=True),
])
def test_param_count_matches_created_parameters(cfg):
    assert param_count(cfg) == count_params(TransformerLM(cfg, rngs=nnx.Rngs(0)))


def test_param_count_of_known_models():
    gpt2_small = ModelConfig(preset="gpt", vocab_size=50257, d_model=768, n_layers=12, n_heads=12, max_seq_len=1024)
    smollm2_135m = ModelConfig(preset="llama", vocab_size=49152, d_model=576, n_layers=30, n_heads=9,
                               n_kv_heads=3, d_ff=1536, max_seq_len=2048)
    assert param_count(gpt2_small) == 124_439_808
    assert param_count(smollm2_135m) == 134_515_008
