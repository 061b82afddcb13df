// Fused causal attention for XLA:CPU: FlashAttention's tiling, forward and backward.
//
// Dao et al. 2022, "FlashAttention" (arXiv:2205.14135) and Dao 2023, "FlashAttention-2"
// (arXiv:2307.08691). Queries and keys are cut into 64 x 64 tiles. The forward pass keeps a
// running maximum and sum per query row ("online softmax", Milakov & Gimelshein 2018,
// arXiv:1805.02867), so a tile's scores are made, exponentiated and mixed into the output while
// they sit in the L1/L2 cache, and only the output and each row's log-sum-exp reach memory. The
// backward pass recomputes each tile's weights from that log-sum-exp instead of storing them.
// Tiles above the causal diagonal are never computed.
//
// XLA:CPU cannot express this: it runs every batched product, mask and softmax as separate ops
// over whole score tensors in memory. tinyslm/model/cpu_kernels.py compiles this file with the
// system's C++ compiler on first use and registers it through JAX's foreign function interface.
//
// Layouts are the model's own, so no transposes are needed around the call:
//   q, o, dq, do: (B, T, H, D) float32;  k, v, dk, dv: (B, T, Hkv, D);  lse: (B, H, T).
// Query head h reads key/value head h / (H / Hkv) (grouped-query attention). Query t sees keys
// s <= t. D must be a multiple of 16 (cpu_kernels.py checks it).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t TILE = 64;  // query rows and key columns per tile
constexpr int LANES = 8;
typedef float vec __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t ivec __attribute__((vector_size(LANES * sizeof(int32_t))));

// Tells the compiler to keep two vectors in registers (x86's "x" constraint) rather than fold their
// loads into every FMA that reads them. On other CPUs it is left to the compiler.
#if defined(__x86_64__) || defined(__i386__)
#define KEEP_IN_REGISTERS(a, b) asm("" : "+x"(a), "+x"(b))
#else
#define KEEP_IN_REGISTERS(a, b)
#endif

inline vec load(const float* p) { vec v; std::memcpy(&v, p, sizeof v); return v; }
inline void store(float* p, vec v) { std::memcpy(p, &v, sizeof v); }

// e^x, 8 lanes at a time: x = n ln2 + r with |r| <= ln2/2, e^r by its degree-6 Taylor
// polynomial (relative error ~1e-7), 2^n built in the exponent bits. Inputs below -87 give ~1e-38.
inline vec exp_vec(vec x) {
  const vec lo = vec{} - 87.0f, hi = vec{} + 88.0f;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  vec n = (x * 1.44269504f + magic) - magic;
  vec r = x - n * 0.693145752f - n * 1.42860677e-6f;  // ln 2 split in two for an exact product
  vec p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
  ivec bits = (__builtin_convertvector(n, ivec) + 127) << 23;
  return p * (vec)bits;
}

// C (M x N) = [C +] A @ B, all row-major with leading dimensions lda, ldb, ldc, where A is M x K or,
// when TransposedA, A^T is stored (K x M: A's columns are contiguous, as for P^T in the backward).
// M % 4 == 0 and N % 16 == 0: each step keeps a 4 x 16 block of C in registers.
template <bool TransposedA = false>
void matmul(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
            float* C, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < M; i += 4) {
    for (int64_t j = 0; j < N; j += 2 * LANES) {
      vec c[4][2];
      for (int r = 0; r < 4; ++r)
        for (int h = 0; h < 2; ++h) c[r][h] = accumulate ? load(C + (i + r) * ldc + j + h * LANES) : vec{};
      for (int64_t k = 0; k < K; ++k) {
        vec b0 = load(B + k * ldb + j), b1 = load(B + k * ldb + j + LANES);
        KEEP_IN_REGISTERS(b0, b1);  // the row of B stays in registers: 6 loads per 8 FMAs, not 12
        for (int r = 0; r < 4; ++r) {
          float a = TransposedA ? A[k * lda + i + r] : A[(i + r) * lda + k];
          c[r][0] += a * b0;
          c[r][1] += a * b1;
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int h = 0; h < 2; ++h) store(C + (i + r) * ldc + j + h * LANES, c[r][h]);
    }
  }
}

// out (cols x rows) = in (rows x cols)^T, row-major.
void transpose(int64_t rows, int64_t cols, const float* in, int64_t ld_in, float* out, int64_t ld_out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c * ld_out + r] = in[r * ld_in + c];
}

// Copy `rows` rows of D floats, `stride` apart in src, times `scale`, into a TILE x D tile;
// rows past `rows` are zero.
void load_rows(const float* src, int64_t stride, int64_t rows, int64_t D, float scale, float* tile) {
  for (int64_t r = 0; r < TILE; ++r)
    for (int64_t d = 0; d < D; ++d) tile[r * D + d] = r < rows ? src[r * stride + d] * scale : 0.0f;
}

// max(s[0..n-1]), 8 lanes at a time over the whole vectors, one by one after them.
float row_max(const float* s, int64_t n) {
  vec lanes = vec{} - std::numeric_limits<float>::infinity();
  int64_t c = 0;
  for (; c + LANES <= n; c += LANES) {
    vec x = load(s + c);
    lanes = x > lanes ? x : lanes;
  }
  float m = lanes[0];
  for (int l = 1; l < LANES; ++l) m = std::max(m, lanes[l]);
  for (; c < n; ++c) m = std::max(m, s[c]);
  return m;
}

// p[c] = exp(s[c] - shift) for c < visible, 0 after; returns the sum.
float exp_row(const float* s, float shift, int64_t visible, float* p) {
  vec total{};
  for (int64_t c = 0; c < TILE; c += LANES) store(p + c, exp_vec(load(s + c) - shift));
  for (int64_t c = visible; c < TILE; ++c) p[c] = 0.0f;
  for (int64_t c = 0; c < TILE; c += LANES) total += load(p + c);
  float sum = 0.0f;
  for (int l = 0; l < LANES; ++l) sum += total[l];
  return sum;
}

// Run task(0..n-1) on `threads` threads, each with its own scratch memory.
template <class Task>
void parallel_for(int64_t n, int64_t threads, size_t scratch_floats, Task task) {
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    std::vector<float> scratch(scratch_floats);
    for (int64_t i; (i = next.fetch_add(1)) < n;) task(i, scratch.data());
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < std::min(threads, n); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

struct Shape {
  int64_t B, T, H, Hkv, D;
  int64_t group() const { return H / Hkv; }
};

Shape shape_of(const ffi::Buffer<ffi::F32>& q, const ffi::Buffer<ffi::F32>& k) {
  auto qd = q.dimensions(), kd = k.dimensions();
  return Shape{qd[0], qd[1], qd[2], kd[2], qd[3]};
}

// One (batch row, query head): the output rows and their log-sum-exp.
void forward_head(const Shape& s, int64_t b, int64_t h, const float* q, const float* k, const float* v,
                  float* o, float* lse, float* scratch) {
  const int64_t D = s.D, kh = h / s.group();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  float *Q = scratch, *V = Q + TILE * D, *S = V + TILE * D, *P = S + TILE * TILE, *O = P + TILE * TILE,
        *m = O + TILE * D, *l = m + TILE, *Kt = l + TILE;
  const int64_t q_stride = s.H * D, kv_stride = s.Hkv * D;
  for (int64_t s0 = 0; s0 < s.T; s0 += TILE) {  // every key tile of this head, transposed once: D x TILE each
    load_rows(k + ((b * s.T + s0) * s.Hkv + kh) * D, kv_stride, std::min(TILE, s.T - s0), D, 1.0f, V);
    transpose(TILE, D, V, D, Kt + s0 * D, TILE);
  }
  for (int64_t t0 = 0; t0 < s.T; t0 += TILE) {
    const int64_t rows = std::min(TILE, s.T - t0);
    load_rows(q + ((b * s.T + t0) * s.H + h) * D, q_stride, rows, D, scale, Q);
    std::fill(O, O + TILE * D, 0.0f);
    std::fill(m, m + TILE, -std::numeric_limits<float>::infinity());
    std::fill(l, l + TILE, 0.0f);
    for (int64_t s0 = 0; s0 < t0 + rows; s0 += TILE) {  // key tiles up to the diagonal
      const int64_t cols = std::min(TILE, s.T - s0);
      load_rows(v + ((b * s.T + s0) * s.Hkv + kh) * D, kv_stride, cols, D, 1.0f, V);
      matmul(TILE, TILE, D, Q, D, Kt + s0 * D, TILE, S, TILE, false);
      for (int64_t r = 0; r < TILE; ++r) {
        const int64_t visible = r < rows ? std::min(cols, t0 + r - s0 + 1) : 0;
        if (visible <= 0) { std::fill(P + r * TILE, P + (r + 1) * TILE, 0.0f); continue; }
        const float m_new = std::max(m[r], row_max(S + r * TILE, visible));
        const float rescale = std::exp(m[r] - m_new);  // 0 on the first tile (m = -inf)
        l[r] = l[r] * rescale + exp_row(S + r * TILE, m_new, visible, P + r * TILE);
        for (int64_t d = 0; d < D; ++d) O[r * D + d] *= rescale;
        m[r] = m_new;
      }
      matmul(TILE, D, TILE, P, TILE, V, D, O, D, true);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* out = o + ((b * s.T + t0 + r) * s.H + h) * D;
      for (int64_t d = 0; d < D; ++d) out[d] = O[r * D + d] / l[r];
      lse[(b * s.H + h) * s.T + t0 + r] = m[r] + std::log(l[r]);
    }
  }
}

// One (batch row, key/value head): dk and dv of its keys, dq of the query heads that share it.
void backward_kv_head(const Shape& s, int64_t b, int64_t kh, const float* q, const float* k, const float* v,
                      const float* o, const float* lse, const float* dout, float* dq, float* dk, float* dv,
                      float* scratch) {
  const int64_t D = s.D, G = s.group(), T_pad = (s.T + TILE - 1) / TILE * TILE;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t q_stride = s.H * D, kv_stride = s.Hkv * D;
  float *K = scratch, *Ks = K + TILE * D, *Kt = Ks + TILE * D, *Vt = Kt + D * TILE, *Q = Vt + D * TILE,
        *dO = Q + TILE * D, *S = dO + TILE * D, *P = S + TILE * TILE, *dP = P + TILE * TILE,
        *dK = dP + TILE * TILE, *dV = dK + TILE * D, *delta = dV + TILE * D,
        *dQ = delta + G * T_pad;
  std::fill(dQ, dQ + G * T_pad * D, 0.0f);
  for (int64_t g = 0; g < G; ++g) {  // delta_t = dO_t . O_t, the softmax's correction term
    const int64_t h = kh * G + g;
    for (int64_t t = 0; t < s.T; ++t) {
      const float *a = dout + ((b * s.T + t) * s.H + h) * D, *c = o + ((b * s.T + t) * s.H + h) * D;
      float sum = 0.0f;
      for (int64_t d = 0; d < D; ++d) sum += a[d] * c[d];
      delta[g * T_pad + t] = sum;
    }
  }
  for (int64_t s0 = 0; s0 < s.T; s0 += TILE) {
    const int64_t cols = std::min(TILE, s.T - s0);
    load_rows(k + ((b * s.T + s0) * s.Hkv + kh) * D, kv_stride, cols, D, 1.0f, K);
    load_rows(k + ((b * s.T + s0) * s.Hkv + kh) * D, kv_stride, cols, D, scale, Ks);
    transpose(TILE, D, K, D, Kt, TILE);
    load_rows(v + ((b * s.T + s0) * s.Hkv + kh) * D, kv_stride, cols, D, 1.0f, dV);
    transpose(TILE, D, dV, D, Vt, TILE);
    std::fill(dK, dK + TILE * D, 0.0f);
    std::fill(dV, dV + TILE * D, 0.0f);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t h = kh * G + g;
      for (int64_t t0 = s0; t0 < s.T; t0 += TILE) {  // query tiles on or below the diagonal
        const int64_t rows = std::min(TILE, s.T - t0);
        load_rows(q + ((b * s.T + t0) * s.H + h) * D, q_stride, rows, D, scale, Q);
        load_rows(dout + ((b * s.T + t0) * s.H + h) * D, q_stride, rows, D, 1.0f, dO);
        matmul(TILE, TILE, D, Q, D, Kt, TILE, S, TILE, false);
        for (int64_t r = 0; r < TILE; ++r) {  // P: the forward pass's weights, recomputed
          const int64_t visible = r < rows ? std::min(cols, t0 + r - s0 + 1) : 0;
          const float shift = r < rows ? lse[(b * s.H + h) * s.T + t0 + r] : 0.0f;
          if (visible <= 0) std::fill(P + r * TILE, P + (r + 1) * TILE, 0.0f);
          else exp_row(S + r * TILE, shift, visible, P + r * TILE);
        }
        matmul<true>(TILE, D, TILE, P, TILE, dO, D, dV, D, true);  // dV += P^T dO
        matmul(TILE, TILE, D, dO, D, Vt, TILE, dP, TILE, false);  // dP = dO V^T
        const float* dl = delta + g * T_pad + t0;
        for (int64_t r = 0; r < TILE; ++r)  // dS = P * (dP - delta): the softmax's backward
          for (int64_t c = 0; c < TILE; ++c) S[r * TILE + c] = P[r * TILE + c] * (dP[r * TILE + c] - (r < rows ? dl[r] : 0.0f));
        matmul(TILE, D, TILE, S, TILE, Ks, D, dQ + (g * T_pad + t0) * D, D, true);  // dQ += dS K / sqrt(D)
        matmul<true>(TILE, D, TILE, S, TILE, Q, D, dK, D, true);  // dK += dS^T Q / sqrt(D)
      }
    }
    for (int64_t c = 0; c < cols; ++c) {
      std::memcpy(dk + ((b * s.T + s0 + c) * s.Hkv + kh) * D, dK + c * D, D * sizeof(float));
      std::memcpy(dv + ((b * s.T + s0 + c) * s.Hkv + kh) * D, dV + c * D, D * sizeof(float));
    }
  }
  for (int64_t g = 0; g < G; ++g)
    for (int64_t t = 0; t < s.T; ++t)
      std::memcpy(dq + ((b * s.T + t) * s.H + kh * G + g) * D, dQ + (g * T_pad + t) * D, D * sizeof(float));
}

ffi::Error forward(ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> v, int64_t threads,
                   ffi::ResultBuffer<ffi::F32> o, ffi::ResultBuffer<ffi::F32> lse) {
  const Shape s = shape_of(q, k);
  const int64_t T_pad = (s.T + TILE - 1) / TILE * TILE;
  const size_t scratch = 3 * TILE * s.D + 2 * TILE * TILE + 2 * TILE + s.D * T_pad;
  parallel_for(s.B * s.H, threads, scratch, [&](int64_t task, float* buf) {
    forward_head(s, task / s.H, task % s.H, q.typed_data(), k.typed_data(), v.typed_data(), o->typed_data(),
                 lse->typed_data(), buf);
  });
  return ffi::Error::Success();
}

ffi::Error backward(ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> v,
                    ffi::Buffer<ffi::F32> o, ffi::Buffer<ffi::F32> lse, ffi::Buffer<ffi::F32> dout, int64_t threads,
                    ffi::ResultBuffer<ffi::F32> dq, ffi::ResultBuffer<ffi::F32> dk, ffi::ResultBuffer<ffi::F32> dv) {
  const Shape s = shape_of(q, k);
  const int64_t T_pad = (s.T + TILE - 1) / TILE * TILE;
  const size_t scratch = 8 * TILE * s.D + 3 * TILE * TILE + s.group() * T_pad * (s.D + 1);
  parallel_for(s.B * s.Hkv, threads, scratch, [&](int64_t task, float* buf) {
    backward_kv_head(s, task / s.Hkv, task % s.Hkv, q.typed_data(), k.typed_data(), v.typed_data(), o.typed_data(),
                     lse.typed_data(), dout.typed_data(), dq->typed_data(), dk->typed_data(), dv->typed_data(), buf);
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(TinyslmFlashForward, forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("threads")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(TinyslmFlashBackward, backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("threads")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
