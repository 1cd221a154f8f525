/* AVX2 + FMA kernels: a 16-float panel row is two ymm registers; tails go through lane masks (maskload /
 * maskstore). Only this file is compiled with AVX2 flags; dispatch.c calls it after checking the CPU and the OS
 * (XCR0). Activation math and its error bound: approx.h. */
#include <immintrin.h>

#include "approx.h"
#include "kernels.h"

#define P LSTMRT_PANEL
#define MR 6 /* rows of x per GEMM tile: 6 rows x 16 columns = 12 ymm accumulators (of 16 registers) */

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
#else
#define INLINE static inline
#define UNROLL
#endif

/* Lanes j < n of 8 as an integer mask vector (all ones = active). */
INLINE __m256i lane_mask(int64_t n)
{
    const int c = n <= 0 ? 0 : (n >= 8 ? 8 : (int)n);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ---- activations (approx.h) ---- */

/* u = expm1(r) and s = 2^n for z = n ln2 + r, n = round(z / ln2) in [-126, 127] (callers clamp z). The shifter
 * constant rounds z / ln2 to an integer held in the low mantissa bits, biased by 127: shifted into the exponent
 * field that is 2^n, no float-int conversion. Estrin's scheme: short dependency chains for small H. */
INLINE __m256 expm1_reduced(__m256 z, __m256 *s)
{
    const __m256 shifter = _mm256_set1_ps(LSTMRT_EXP_SHIFTER);
    const __m256 t = _mm256_fmadd_ps(z, _mm256_set1_ps(LSTMRT_LOG2E), shifter);
    const __m256 n = _mm256_sub_ps(t, shifter);
    *s = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LSTMRT_LN2), z);
    const __m256 r2 = _mm256_mul_ps(r, r);
    const __m256 a = _mm256_fmadd_ps(_mm256_set1_ps(LSTMRT_EXPM1_P1), r, _mm256_set1_ps(LSTMRT_EXPM1_P0));
    const __m256 b = _mm256_fmadd_ps(_mm256_set1_ps(LSTMRT_EXPM1_P3), r, _mm256_set1_ps(LSTMRT_EXPM1_P2));
    const __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(LSTMRT_EXPM1_P4), r2, b), r2, a);
    return _mm256_fmadd_ps(p, r2, r);
}

/* 1 / d, correctly rounded: the 12-bit estimate of rcp_ps (less on some cores) plus one Newton step leaves ~2
 * ulp, which would miss the exact limits sigmoid(+inf) = 1 and tanh(+-inf) = +-1. */
INLINE __m256 recip(__m256 d)
{
    return _mm256_div_ps(_mm256_set1_ps(1.0f), d);
}

INLINE __m256 sigmoid_ps(__m256 x)
{
    /* max/min return their second operand when either is NaN: x goes second so NaN flows through */
    __m256 z = _mm256_max_ps(_mm256_set1_ps(LSTMRT_SIGMOID_ZLO), _mm256_sub_ps(_mm256_setzero_ps(), x));
    z = _mm256_min_ps(_mm256_set1_ps(LSTMRT_SIGMOID_ZHI), z);
    __m256 s;
    const __m256 u = expm1_reduced(z, &s);
    /* 1 + exp(z) = 1 + s (1 + u) */
    const __m256 q = recip(_mm256_fmadd_ps(s, u, _mm256_add_ps(s, _mm256_set1_ps(1.0f))));
    /* exactly 0 far left (and at -inf); NaN compares unordered, so it is kept */
    return _mm256_and_ps(q, _mm256_cmp_ps(x, _mm256_set1_ps(LSTMRT_SIGMOID_ZERO_BELOW), _CMP_NLE_UQ));
}

INLINE __m256 tanh_ps(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_min_ps(_mm256_set1_ps(LSTMRT_TANH_CLAMP), _mm256_andnot_ps(sign, x));
    __m256 s;
    const __m256 u = expm1_reduced(_mm256_add_ps(a, a), &s);
    const __m256 e = _mm256_fmadd_ps(s, u, _mm256_sub_ps(s, _mm256_set1_ps(1.0f))); /* expm1(2|x|) */
    const __m256 t = _mm256_mul_ps(e, recip(_mm256_add_ps(e, _mm256_set1_ps(2.0f))));
    return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

#define LOADM(p, m) _mm256_maskload_ps((p), (m))

/* Eight independent accumulators: enough loads in flight to reach the cache's bandwidth. */
static float f32_sum__avx2(const float *v, int64_t n)
{
    __m256 a[8];
    for (int q = 0; q < 8; q++)
        a[q] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int q = 0; q < 8; q++)
            a[q] = _mm256_add_ps(a[q], _mm256_loadu_ps(v + i + 8 * q));
    for (; i < n; i += 8)
        a[0] = _mm256_add_ps(a[0], _mm256_maskload_ps(v + i, lane_mask(n - i)));
    for (int q = 1; q < 8; q++)
        a[0] = _mm256_add_ps(a[0], a[q]);
    float t[8];
    _mm256_storeu_ps(t, a[0]);
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

static void f32_sigmoid__avx2(float *v, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(v + i, sigmoid_ps(_mm256_loadu_ps(v + i)));
    if (i < n) {
        const __m256i m = lane_mask(n - i);
        _mm256_maskstore_ps(v + i, m, sigmoid_ps(LOADM(v + i, m)));
    }
}

static void f32_tanh__avx2(float *v, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(v + i, tanh_ps(_mm256_loadu_ps(v + i)));
    if (i < n) {
        const __m256i m = lane_mask(n - i);
        _mm256_maskstore_ps(v + i, m, tanh_ps(LOADM(v + i, m)));
    }
}

INLINE void lstm8(const float *gi, const float *gf, const float *gg, const float *go, float *c, float *h, __m256i m)
{
    const __m256 i = sigmoid_ps(LOADM(gi, m));
    const __m256 f = sigmoid_ps(LOADM(gf, m));
    const __m256 u = tanh_ps(LOADM(gg, m));
    const __m256 o = sigmoid_ps(LOADM(go, m));
    const __m256 cn = _mm256_fmadd_ps(f, LOADM(c, m), _mm256_mul_ps(i, u));
    _mm256_maskstore_ps(c, m, cn);
    _mm256_maskstore_ps(h, m, _mm256_mul_ps(o, tanh_ps(cn)));
}

static void f32_lstm_cell__avx2(const float *g, float *c, float *h, int64_t H)
{
    const float *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t j = 0;
    for (; j + 8 <= H; j += 8)
        lstm8(gi + j, gf + j, gg + j, go + j, c + j, h + j, all);
    if (j < H)
        lstm8(gi + j, gf + j, gg + j, go + j, c + j, h + j, lane_mask(H - j));
}

INLINE void gru8(const float *x, const float *hh, float *h, int64_t H, __m256i m)
{
    const __m256 r = sigmoid_ps(_mm256_add_ps(LOADM(x, m), LOADM(hh, m)));
    const __m256 z = sigmoid_ps(_mm256_add_ps(LOADM(x + H, m), LOADM(hh + H, m)));
    const __m256 n = tanh_ps(_mm256_fmadd_ps(r, LOADM(hh + 2 * H, m), LOADM(x + 2 * H, m)));
    _mm256_maskstore_ps(h, m, _mm256_fmadd_ps(z, _mm256_sub_ps(LOADM(h, m), n), n)); /* (1-z) n + z h */
}

static void f32_gru_cell__avx2(const float *x, const float *hh, float *h, int64_t H)
{
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t j = 0;
    for (; j + 8 <= H; j += 8)
        gru8(x + j, hh + j, h + j, H, all);
    if (j < H)
        gru8(x + j, hh + j, h + j, H, lane_mask(H - j));
}

/* ---- GEMM on packed panels (layout: kernels.h) ---- */

/* Adds bias and (if accumulate) y to a finished accumulator (8 lanes) and stores the active lanes. */
INLINE void finish(__m256 acc, const float *bias, int accumulate, float *y, __m256i m)
{
    if (bias)
        acc = _mm256_add_ps(acc, LOADM(bias, m));
    if (accumulate)
        acc = _mm256_add_ps(acc, LOADM(y, m));
    _mm256_maskstore_ps(y, m, acc);
}

/* mr rows (<= MR) x one panel (two ymm halves) over the whole k. */
INLINE void tile(const int mr, int64_t k, const float *x, int64_t ldx, const float *w, const float *bias,
                 int accumulate, float *y, int64_t ldy, __m256i m0, __m256i m1)
{
    __m256 lo[MR], hi[MR];
    UNROLL
    for (int r = 0; r < MR; r++)
        lo[r] = hi[r] = _mm256_setzero_ps();
    for (int64_t kk = 0; kk < k; kk++) {
        const __m256 b0 = _mm256_load_ps(w + kk * P), b1 = _mm256_load_ps(w + kk * P + 8);
        UNROLL
        for (int r = 0; r < MR; r++) {
            if (r < mr) {
                const __m256 a = _mm256_broadcast_ss(x + r * ldx + kk);
                lo[r] = _mm256_fmadd_ps(a, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(a, b1, hi[r]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < MR; r++) {
        if (r < mr) {
            finish(lo[r], bias, accumulate, y + r * ldy, m0);
            finish(hi[r], bias ? bias + 8 : NULL, accumulate, y + r * ldy + 8, m1);
        }
    }
}

static void tile_any(int64_t mr, int64_t k, const float *x, int64_t ldx, const float *w, const float *bias,
                     int accumulate, float *y, int64_t ldy, __m256i m0, __m256i m1)
{
    switch (mr) {
    case 6: tile(6, k, x, ldx, w, bias, accumulate, y, ldy, m0, m1); break;
    case 5: tile(5, k, x, ldx, w, bias, accumulate, y, ldy, m0, m1); break;
    case 4: tile(4, k, x, ldx, w, bias, accumulate, y, ldy, m0, m1); break;
    case 3: tile(3, k, x, ldx, w, bias, accumulate, y, ldy, m0, m1); break;
    case 2: tile(2, k, x, ldx, w, bias, accumulate, y, ldy, m0, m1); break;
    default: tile(1, k, x, ldx, w, bias, accumulate, y, ldy, m0, m1); break;
    }
}

/* One row (a step's product): bandwidth-bound on the weights. A unit of two panels (4 ymm) shares each broadcast
 * of x; two accumulators per register (even/odd k) give 8 independent FMA chains. Units are visited in either
 * order, each always sums k forwards (x1 then x2): the result does not depend on `reverse`. */
INLINE void gemv2_part(const float *x, const float *w0, int64_t k, __m256 acc[8])
{
    const int64_t ps = k * P;
    int64_t kk = 0;
    for (; kk + 2 <= k; kk += 2) {
        const __m256 x0 = _mm256_broadcast_ss(x + kk), x1 = _mm256_broadcast_ss(x + kk + 1);
        const float *wk = w0 + kk * P;
        acc[0] = _mm256_fmadd_ps(x0, _mm256_load_ps(wk), acc[0]);
        acc[1] = _mm256_fmadd_ps(x0, _mm256_load_ps(wk + 8), acc[1]);
        acc[2] = _mm256_fmadd_ps(x0, _mm256_load_ps(wk + ps), acc[2]);
        acc[3] = _mm256_fmadd_ps(x0, _mm256_load_ps(wk + ps + 8), acc[3]);
        acc[4] = _mm256_fmadd_ps(x1, _mm256_load_ps(wk + P), acc[4]);
        acc[5] = _mm256_fmadd_ps(x1, _mm256_load_ps(wk + P + 8), acc[5]);
        acc[6] = _mm256_fmadd_ps(x1, _mm256_load_ps(wk + ps + P), acc[6]);
        acc[7] = _mm256_fmadd_ps(x1, _mm256_load_ps(wk + ps + P + 8), acc[7]);
    }
    if (kk < k) {
        const __m256 x0 = _mm256_broadcast_ss(x + kk);
        const float *wk = w0 + kk * P;
        acc[0] = _mm256_fmadd_ps(x0, _mm256_load_ps(wk), acc[0]);
        acc[1] = _mm256_fmadd_ps(x0, _mm256_load_ps(wk + 8), acc[1]);
        acc[2] = _mm256_fmadd_ps(x0, _mm256_load_ps(wk + ps), acc[2]);
        acc[3] = _mm256_fmadd_ps(x0, _mm256_load_ps(wk + ps + 8), acc[3]);
    }
}

INLINE void gemv1_part(const float *x, const float *w0, int64_t k, __m256 acc[8])
{
    int64_t kk = 0;
    for (; kk + 4 <= k; kk += 4) {
        const float *wk = w0 + kk * P;
        for (int f = 0; f < 4; f++) {
            const __m256 xv = _mm256_broadcast_ss(x + kk + f);
            acc[2 * f] = _mm256_fmadd_ps(xv, _mm256_load_ps(wk + f * P), acc[2 * f]);
            acc[2 * f + 1] = _mm256_fmadd_ps(xv, _mm256_load_ps(wk + f * P + 8), acc[2 * f + 1]);
        }
    }
    for (; kk < k; kk++) {
        const __m256 xv = _mm256_broadcast_ss(x + kk);
        acc[0] = _mm256_fmadd_ps(xv, _mm256_load_ps(w0 + kk * P), acc[0]);
        acc[1] = _mm256_fmadd_ps(xv, _mm256_load_ps(w0 + kk * P + 8), acc[1]);
    }
}

static void f32_gemv__avx2(const float *x1, const packed_matrix *w1, const float *x2, const packed_matrix *w2,
                           const float *bias, int accumulate, float *y, int reverse)
{
    const int64_t n = w1->rows, panels = (n + P - 1) / P, pairs = panels / 2, units = pairs + panels % 2;
    for (int64_t i = 0; i < units; i++) {
        const int64_t u = reverse ? units - 1 - i : i;
        __m256 acc[8];
        for (int q = 0; q < 8; q++)
            acc[q] = _mm256_setzero_ps();
        if (u < pairs) {
            const int64_t p = 2 * u, j = p * P;
            gemv2_part(x1, w1->data + p * w1->cols * P, w1->cols, acc);
            if (w2)
                gemv2_part(x2, w2->data + p * w2->cols * P, w2->cols, acc);
            for (int q = 0; q < 4; q++)
                finish(_mm256_add_ps(acc[q], acc[q + 4]), bias ? bias + j + 8 * q : NULL, accumulate, y + j + 8 * q,
                       lane_mask(n - j - 8 * q));
        } else {
            const int64_t p = 2 * pairs, j = p * P;
            gemv1_part(x1, w1->data + p * w1->cols * P, w1->cols, acc);
            if (w2)
                gemv1_part(x2, w2->data + p * w2->cols * P, w2->cols, acc);
            const __m256 lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[4], acc[6]));
            const __m256 hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[3]), _mm256_add_ps(acc[5], acc[7]));
            finish(lo, bias ? bias + j : NULL, accumulate, y + j, lane_mask(n - j));
            finish(hi, bias ? bias + j + 8 : NULL, accumulate, y + j + 8, lane_mask(n - j - 8));
        }
    }
}

/* The gate panels of hidden block j are H rows apart (gs = H * k floats): 4 panels x 2 halves = 8 FMA chains. Panel q
 * goes to slots (2q, 2q + 1), the last one to (last, last + 1): a GRU keeps the input and recurrent parts of n
 * apart, since the reset gate multiplies only the recurrent one. */
INLINE void gates_part(const float *x, const float *w0, int64_t k, int64_t gs, __m256 acc[8], const int panels,
                       const int last)
{
    for (int64_t kk = 0; kk < k; kk++) {
        const __m256 xv = _mm256_broadcast_ss(x + kk);
        const float *wk = w0 + kk * P;
        for (int q = 0; q < panels; q++) {
            const int a = q == panels - 1 ? last : 2 * q;
            acc[a] = _mm256_fmadd_ps(xv, _mm256_load_ps(wk + q * gs), acc[a]);
            acc[a + 1] = _mm256_fmadd_ps(xv, _mm256_load_ps(wk + q * gs + 8), acc[a + 1]);
        }
    }
}

/* Hidden block j's products into fresh accumulators: x W_ih^T (if w_ih) then h W_hh^T (gates_part's slots). */
INLINE void block_products(const float *x, const packed_matrix *w_ih, const float *h, const packed_matrix *w_hh,
                           int64_t j, int64_t H, __m256 acc[8], const int panels, const int last_ih, const int last_hh)
{
    for (int q = 0; q < 8; q++)
        acc[q] = _mm256_setzero_ps();
    if (w_ih)
        gates_part(x, w_ih->data + j * w_ih->cols, w_ih->cols, H * w_ih->cols, acc, panels, last_ih);
    gates_part(h, w_hh->data + j * w_hh->cols, w_hh->cols, H * w_hh->cols, acc, panels, last_hh);
}

static void f32_lstm_step__avx2(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias,
                                const float *h, const packed_matrix *w_hh, float *c, float *h_out, int reverse,
                                int64_t j0, int64_t j1)
{
    const int64_t H = w_hh->rows / 4, blocks = (j1 - j0) / P;
    for (int64_t i = 0; i < blocks; i++) {
        const int64_t j = j0 + (reverse ? blocks - 1 - i : i) * P;
        __m256 acc[8];
        block_products(x, w_ih, h, w_hh, j, H, acc, 4, 6, 6);
        for (int half = 0; half < 2; half++) {
            const int64_t jj = j + 8 * half;
            __m256 pre[4];
            for (int q = 0; q < 4; q++) {
                pre[q] = acc[2 * q + half];
                if (gx)
                    pre[q] = _mm256_add_ps(pre[q], _mm256_loadu_ps(gx + q * H + jj));
                if (bias)
                    pre[q] = _mm256_add_ps(pre[q], _mm256_loadu_ps(bias + q * H + jj));
            }
            const __m256 cn = _mm256_fmadd_ps(sigmoid_ps(pre[1]), _mm256_loadu_ps(c + jj),
                                              _mm256_mul_ps(sigmoid_ps(pre[0]), tanh_ps(pre[2])));
            _mm256_storeu_ps(c + jj, cn);
            _mm256_storeu_ps(h_out + jj, _mm256_mul_ps(sigmoid_ps(pre[3]), tanh_ps(cn)));
        }
    }
}

static void f32_gru_step__avx2(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias_x,
                               const float *h, const packed_matrix *w_hh, const float *bias_hn, float *h_out,
                               int reverse, int64_t j0, int64_t j1)
{
    const int64_t H = w_hh->rows / 3, blocks = (j1 - j0) / P;
    for (int64_t i = 0; i < blocks; i++) {
        const int64_t j = j0 + (reverse ? blocks - 1 - i : i) * P;
        __m256 acc[8];
        block_products(x, w_ih, h, w_hh, j, H, acc, 3, 4, 6);
        for (int half = 0; half < 2; half++) {
            const int64_t jj = j + 8 * half;
            __m256 pre[4]; /* r, z (input + recurrent), n input part, n recurrent part */
            for (int q = 0; q < 4; q++)
                pre[q] = acc[2 * q + half];
            for (int q = 0; q < 3; q++) {
                if (bias_x)
                    pre[q] = _mm256_add_ps(pre[q], _mm256_loadu_ps(bias_x + q * H + jj));
                if (gx)
                    pre[q] = _mm256_add_ps(pre[q], _mm256_loadu_ps(gx + q * H + jj));
                if (bias_hn)
                    pre[q == 2 ? 3 : q] = _mm256_add_ps(pre[q == 2 ? 3 : q], _mm256_loadu_ps(bias_hn + q * H + jj));
            }
            const __m256 z = sigmoid_ps(pre[1]);
            const __m256 n = tanh_ps(_mm256_fmadd_ps(sigmoid_ps(pre[0]), pre[3], pre[2]));
            _mm256_storeu_ps(h_out + jj, _mm256_fmadd_ps(z, _mm256_sub_ps(_mm256_loadu_ps(h + jj), n), n));
        }
    }
}

static void f32_gemm__avx2(int64_t m, const float *x, int64_t ldx, const packed_matrix *w, const float *bias,
                           int accumulate, float *y, int64_t ldy)
{
    if (m == 1) {
        f32_gemv__avx2(x, w, NULL, NULL, bias, accumulate, y, 0);
        return;
    }
    /* Rows in chunks whose x block stays in L2 (~128 KB) while every panel streams past it. */
    const int64_t n = w->rows, k = w->cols;
    const int64_t chunk = k > 0 && 32768 / k > MR ? 32768 / k / MR * MR : MR;
    for (int64_t r0 = 0; r0 < m; r0 += chunk) {
        const int64_t rows = m - r0 < chunk ? m - r0 : chunk;
        for (int64_t j = 0; j < n; j += P) {
            const float *wp = w->data + j * k;
            const float *b = bias ? bias + j : NULL;
            const __m256i m0 = lane_mask(n - j), m1 = lane_mask(n - j - 8);
            for (int64_t r = r0; r < r0 + rows; r += MR)
                tile_any(r0 + rows - r < MR ? r0 + rows - r : MR, k, x + r * ldx, ldx, wp, b, accumulate,
                         y + r * ldy + j, ldy, m0, m1);
        }
    }
}

const lstmrt_kernels lstmrt_kernels__avx2 = {
    .name = "avx2",
    .f32_gemm = f32_gemm__avx2,
    .f32_gemv = f32_gemv__avx2,
    .f32_lstm_step = f32_lstm_step__avx2,
    .f32_gru_step = f32_gru_step__avx2,
    .f32_sum = f32_sum__avx2,
    .f32_sigmoid = f32_sigmoid__avx2,
    .f32_tanh = f32_tanh__avx2,
    .f32_lstm_cell = f32_lstm_cell__avx2,
    .f32_gru_cell = f32_gru_cell__avx2,
};
