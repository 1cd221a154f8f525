/* AVX-512 kernels (F, DQ, BW, VL + FMA): one zmm register holds one 16-float panel row, tails use lane masks.
 * Only this file is compiled with AVX-512 flags; dispatch.c calls it after checking the CPU and the OS (XCR0).
 * Activation math and its error bound: approx.h. */
#include <immintrin.h>

#include "approx.h"
#include "kernels.h"

#define P LSTMRT_PANEL
#define MR 8 /* rows of x per GEMM tile: 8 rows x 2 panels = 16 zmm accumulators */

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
#else
#define INLINE static inline
#define UNROLL
#endif

static __mmask16 lane_mask(int64_t n)
{
    return n >= P ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* ---- activations (approx.h) ---- */

/* u = expm1(r) and s = 2^n for z = n ln2 + r, n = round(z / ln2) in [-126, 127] (callers clamp z). The shifter
 * constant rounds z / ln2 to an integer held in the low mantissa bits, biased by 127: shifted into the exponent
 * field that is 2^n, no float-int conversion. Estrin's scheme: short dependency chains for small H. */
INLINE __m512 expm1_reduced(__m512 z, __m512 *s)
{
    const __m512 shifter = _mm512_set1_ps(LSTMRT_EXP_SHIFTER);
    const __m512 t = _mm512_fmadd_ps(z, _mm512_set1_ps(LSTMRT_LOG2E), shifter);
    const __m512 n = _mm512_sub_ps(t, shifter);
    *s = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
    const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LSTMRT_LN2), z);
    const __m512 r2 = _mm512_mul_ps(r, r);
    const __m512 a = _mm512_fmadd_ps(_mm512_set1_ps(LSTMRT_EXPM1_P1), r, _mm512_set1_ps(LSTMRT_EXPM1_P0));
    const __m512 b = _mm512_fmadd_ps(_mm512_set1_ps(LSTMRT_EXPM1_P3), r, _mm512_set1_ps(LSTMRT_EXPM1_P2));
    const __m512 p = _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(LSTMRT_EXPM1_P4), r2, b), r2, a);
    return _mm512_fmadd_ps(p, r2, r);
}

/* 1 / d for d >= 1 finite: 14-bit estimate + one Newton step (relative error ~2^-23). */
INLINE __m512 recip(__m512 d)
{
    const __m512 q = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(q, _mm512_fnmadd_ps(d, q, _mm512_set1_ps(2.0f)));
}

INLINE __m512 sigmoid_ps(__m512 x)
{
    /* z = -x clamped; max/min return their second operand when either is NaN: x goes second so NaN flows */
    __m512 z = _mm512_max_ps(_mm512_set1_ps(LSTMRT_SIGMOID_ZLO), _mm512_sub_ps(_mm512_setzero_ps(), x));
    z = _mm512_min_ps(_mm512_set1_ps(LSTMRT_SIGMOID_ZHI), z);
    __m512 s;
    const __m512 u = expm1_reduced(z, &s);
    /* 1 + exp(z) = 1 + s (1 + u) */
    const __m512 q = recip(_mm512_fmadd_ps(s, u, _mm512_add_ps(s, _mm512_set1_ps(1.0f))));
    /* exactly 0 far left (and at -inf); NaN compares unordered, so it is kept */
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(LSTMRT_SIGMOID_ZERO_BELOW), _CMP_NLE_UQ), q);
}

INLINE __m512 tanh_ps(__m512 x)
{
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32((int)0x80000000u));
    const __m512 a = _mm512_min_ps(_mm512_set1_ps(LSTMRT_TANH_CLAMP), _mm512_andnot_ps(sign, x));
    __m512 s;
    const __m512 u = expm1_reduced(_mm512_add_ps(a, a), &s);
    const __m512 e = _mm512_fmadd_ps(s, u, _mm512_sub_ps(s, _mm512_set1_ps(1.0f))); /* expm1(2|x|) */
    /* rcp14 + one Newton step can land one ulp above 1 near the clamp; t second so NaN flows */
    const __m512 t =
        _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(e, recip(_mm512_add_ps(e, _mm512_set1_ps(2.0f)))));
    /* t | (x & sign): the sign of x back on |tanh| (ternary-logic truth table 0xF8 = A | (B & C)) */
    return _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(_mm512_castps_si512(t), _mm512_castps_si512(x), _mm512_castps_si512(sign), 0xF8));
}

/* Eight independent accumulators: enough loads in flight to reach the cache's bandwidth. */
static float f32_sum__avx512(const float *v, int64_t n)
{
    __m512 a[8];
    for (int q = 0; q < 8; q++)
        a[q] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 8 * P <= n; i += 8 * P)
        for (int q = 0; q < 8; q++)
            a[q] = _mm512_add_ps(a[q], _mm512_loadu_ps(v + i + q * P));
    for (; i < n; i += P)
        a[0] = _mm512_add_ps(a[0], _mm512_maskz_loadu_ps(lane_mask(n - i), v + i));
    for (int q = 1; q < 8; q++)
        a[0] = _mm512_add_ps(a[0], a[q]);
    return _mm512_reduce_add_ps(a[0]);
}

static void f32_sigmoid__avx512(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i += P) {
        const __mmask16 m = lane_mask(n - i);
        _mm512_mask_storeu_ps(v + i, m, sigmoid_ps(_mm512_maskz_loadu_ps(m, v + i)));
    }
}

static void f32_tanh__avx512(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i += P) {
        const __mmask16 m = lane_mask(n - i);
        _mm512_mask_storeu_ps(v + i, m, tanh_ps(_mm512_maskz_loadu_ps(m, v + i)));
    }
}

static void f32_lstm_cell__avx512(const float *g, float *c, float *h, int64_t H)
{
    const float *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
    for (int64_t j = 0; j < H; j += P) {
        const __mmask16 m = lane_mask(H - j);
        const __m512 i = sigmoid_ps(_mm512_maskz_loadu_ps(m, gi + j));
        const __m512 f = sigmoid_ps(_mm512_maskz_loadu_ps(m, gf + j));
        const __m512 u = tanh_ps(_mm512_maskz_loadu_ps(m, gg + j));
        const __m512 o = sigmoid_ps(_mm512_maskz_loadu_ps(m, go + j));
        const __m512 cn = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, c + j), _mm512_mul_ps(i, u));
        _mm512_mask_storeu_ps(c + j, m, cn);
        _mm512_mask_storeu_ps(h + j, m, _mm512_mul_ps(o, tanh_ps(cn)));
    }
}

static void f32_gru_cell__avx512(const float *x, const float *hh, float *h, int64_t H)
{
    for (int64_t j = 0; j < H; j += P) {
        const __mmask16 m = lane_mask(H - j);
        const __m512 r = sigmoid_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, hh + j)));
        const __m512 z =
            sigmoid_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, x + H + j), _mm512_maskz_loadu_ps(m, hh + H + j)));
        const __m512 n = tanh_ps(
            _mm512_fmadd_ps(r, _mm512_maskz_loadu_ps(m, hh + 2 * H + j), _mm512_maskz_loadu_ps(m, x + 2 * H + j)));
        const __m512 hv = _mm512_maskz_loadu_ps(m, h + j);
        _mm512_mask_storeu_ps(h + j, m, _mm512_fmadd_ps(z, _mm512_sub_ps(hv, n), n)); /* (1-z) n + z h */
    }
}

/* ---- GEMM on packed panels (layout: kernels.h) ---- */

/* Adds bias and (if accumulate) y to a finished accumulator and stores it under the lane mask. */
INLINE void finish(__m512 acc, const float *bias, int accumulate, float *y, __mmask16 m)
{
    if (bias)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, bias));
    if (accumulate)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, y));
    _mm512_mask_storeu_ps(y, m, acc);
}

/* mr rows (<= MR) x np panels (1 or 2): one register tile over the whole k. w0: first panel; the second
 * follows k * P floats later. */
INLINE void tile(const int mr, const int np, int64_t k, const float *x, int64_t ldx, const float *w0, const float *bias,
                 int accumulate, float *y, int64_t ldy, __mmask16 m0, __mmask16 m1)
{
    __m512 acc[MR][2];
    UNROLL
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const float *w1 = w0 + k * P;
    for (int64_t kk = 0; kk < k; kk++) {
        const __m512 b0 = _mm512_load_ps(w0 + kk * P);
        const __m512 b1 = np > 1 ? _mm512_load_ps(w1 + kk * P) : b0;
        UNROLL
        for (int r = 0; r < MR; r++) {
            if (r < mr) {
                const __m512 a = _mm512_set1_ps(x[r * ldx + kk]);
                acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
                if (np > 1)
                    acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < MR; r++) {
        if (r < mr) {
            finish(acc[r][0], bias, accumulate, y + r * ldy, m0);
            if (np > 1)
                finish(acc[r][1], bias ? bias + P : NULL, accumulate, y + r * ldy + P, m1);
        }
    }
}

#define TILE_CASES(NP)                                                                                                 \
    do {                                                                                                               \
        switch (mr) {                                                                                                  \
        case 8: tile(8, NP, k, x, ldx, w0, bias, accumulate, y, ldy, m0, m1); break;                                   \
        case 7: tile(7, NP, k, x, ldx, w0, bias, accumulate, y, ldy, m0, m1); break;                                   \
        case 6: tile(6, NP, k, x, ldx, w0, bias, accumulate, y, ldy, m0, m1); break;                                   \
        case 5: tile(5, NP, k, x, ldx, w0, bias, accumulate, y, ldy, m0, m1); break;                                   \
        case 4: tile(4, NP, k, x, ldx, w0, bias, accumulate, y, ldy, m0, m1); break;                                   \
        case 3: tile(3, NP, k, x, ldx, w0, bias, accumulate, y, ldy, m0, m1); break;                                   \
        case 2: tile(2, NP, k, x, ldx, w0, bias, accumulate, y, ldy, m0, m1); break;                                   \
        default: tile(1, NP, k, x, ldx, w0, bias, accumulate, y, ldy, m0, m1); break;                                  \
        }                                                                                                              \
    } while (0)

static void tile_2(int64_t mr, int64_t k, const float *x, int64_t ldx, const float *w0, const float *bias,
                   int accumulate, float *y, int64_t ldy, __mmask16 m0, __mmask16 m1)
{
    TILE_CASES(2);
}

static void tile_1(int64_t mr, int64_t k, const float *x, int64_t ldx, const float *w0, const float *bias,
                   int accumulate, float *y, int64_t ldy, __mmask16 m0, __mmask16 m1)
{
    TILE_CASES(1);
}

/* One row (a step's product): bandwidth-bound on the weights. A unit of `panels` panels (ps floats apart) shares each
 * broadcast of x; two accumulators per panel (even/odd k: acc[q], acc[q + 4]) give up to 8 independent FMA chains,
 * enough to hide the FMA latency on cores with two 512-bit FMA pipes. The last panel goes to slot `last` (a GRU
 * keeps the input and recurrent parts of n apart); the others to their own index. Units are visited in either
 * order, each always sums k forwards (x1 then x2): the result does not depend on `reverse`. */
INLINE void panels_part(const float *x, const float *w0, int64_t k, int64_t ps, __m512 acc[8], const int panels,
                        const int last)
{
    int64_t kk = 0;
    for (; kk + 2 <= k; kk += 2) {
        const __m512 x0 = _mm512_set1_ps(x[kk]), x1 = _mm512_set1_ps(x[kk + 1]);
        const float *wk = w0 + kk * P;
        UNROLL
        for (int q = 0; q < panels; q++) {
            const int a = q == panels - 1 ? last : q;
            acc[a] = _mm512_fmadd_ps(x0, _mm512_load_ps(wk + q * ps), acc[a]);
        }
        UNROLL
        for (int q = 0; q < panels; q++) {
            const int a = q == panels - 1 ? last : q;
            acc[a + 4] = _mm512_fmadd_ps(x1, _mm512_load_ps(wk + q * ps + P), acc[a + 4]);
        }
    }
    if (kk < k) {
        const __m512 x0 = _mm512_set1_ps(x[kk]);
        const float *wk = w0 + kk * P;
        UNROLL
        for (int q = 0; q < panels; q++) {
            const int a = q == panels - 1 ? last : q;
            acc[a] = _mm512_fmadd_ps(x0, _mm512_load_ps(wk + q * ps), acc[a]);
        }
    }
}

INLINE void gemv1_part(const float *x, const float *w0, int64_t k, __m512 acc[4])
{
    int64_t kk = 0;
    for (; kk + 4 <= k; kk += 4) {
        const float *wk = w0 + kk * P;
        acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[kk]), _mm512_load_ps(wk), acc[0]);
        acc[1] = _mm512_fmadd_ps(_mm512_set1_ps(x[kk + 1]), _mm512_load_ps(wk + P), acc[1]);
        acc[2] = _mm512_fmadd_ps(_mm512_set1_ps(x[kk + 2]), _mm512_load_ps(wk + 2 * P), acc[2]);
        acc[3] = _mm512_fmadd_ps(_mm512_set1_ps(x[kk + 3]), _mm512_load_ps(wk + 3 * P), acc[3]);
    }
    for (; kk < k; kk++)
        acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[kk]), _mm512_load_ps(w0 + kk * P), acc[0]);
}

static void f32_gemv__avx512(const float *x1, const packed_matrix *w1, const float *x2, const packed_matrix *w2,
                             const float *bias, int accumulate, float *y, int reverse)
{
    const int64_t n = w1->rows, panels = (n + P - 1) / P, quads = panels / 4, units = quads + panels % 4;
    for (int64_t i = 0; i < units; i++) {
        const int64_t u = reverse ? units - 1 - i : i;
        if (u < quads) {
            const int64_t p = 4 * u, j = p * P;
            __m512 acc[8];
            for (int q = 0; q < 8; q++)
                acc[q] = _mm512_setzero_ps();
            panels_part(x1, w1->data + p * w1->cols * P, w1->cols, w1->cols * P, acc, 4, 3);
            if (w2)
                panels_part(x2, w2->data + p * w2->cols * P, w2->cols, w2->cols * P, acc, 4, 3);
            for (int q = 0; q < 4; q++)
                finish(_mm512_add_ps(acc[q], acc[q + 4]), bias ? bias + j + q * P : NULL, accumulate, y + j + q * P,
                       lane_mask(n - j - q * P));
        } else {
            const int64_t p = 4 * quads + (u - quads), j = p * P;
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            gemv1_part(x1, w1->data + p * w1->cols * P, w1->cols, acc);
            if (w2)
                gemv1_part(x2, w2->data + p * w2->cols * P, w2->cols, acc);
            finish(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])), bias ? bias + j : NULL,
                   accumulate, y + j, lane_mask(n - j));
        }
    }
}

/* Hidden block j's products into fresh accumulators: x W_ih^T (if w_ih) then h W_hh^T, over its `panels` gate
 * panels (H rows apart: H * k floats). The last panel's input part goes to slot last_ih, its recurrent part to
 * last_hh: a GRU keeps the two parts of n apart, since the reset gate multiplies only the recurrent one. */
INLINE void block_products(const float *x, const packed_matrix *w_ih, const float *h, const packed_matrix *w_hh,
                           int64_t j, int64_t H, __m512 acc[8], const int panels, const int last_ih, const int last_hh)
{
    for (int q = 0; q < 8; q++)
        acc[q] = _mm512_setzero_ps();
    if (w_ih)
        panels_part(x, w_ih->data + j * w_ih->cols, w_ih->cols, H * w_ih->cols, acc, panels, last_ih);
    panels_part(h, w_hh->data + j * w_hh->cols, w_hh->cols, H * w_hh->cols, acc, panels, last_hh);
}

static void f32_lstm_step__avx512(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias,
                                  const float *h, const packed_matrix *w_hh, float *c, float *h_out, int reverse,
                                  int64_t j0, int64_t j1)
{
    const int64_t H = w_hh->rows / 4, blocks = (j1 - j0) / P;
    for (int64_t i = 0; i < blocks; i++) {
        const int64_t j = j0 + (reverse ? blocks - 1 - i : i) * P;
        __m512 acc[8];
        block_products(x, w_ih, h, w_hh, j, H, acc, 4, 3, 3);
        __m512 pre[4];
        for (int q = 0; q < 4; q++) {
            pre[q] = _mm512_add_ps(acc[q], acc[q + 4]);
            if (gx)
                pre[q] = _mm512_add_ps(pre[q], _mm512_loadu_ps(gx + q * H + j));
            if (bias)
                pre[q] = _mm512_add_ps(pre[q], _mm512_loadu_ps(bias + q * H + j));
        }
        const __m512 cn = _mm512_fmadd_ps(sigmoid_ps(pre[1]), _mm512_loadu_ps(c + j),
                                          _mm512_mul_ps(sigmoid_ps(pre[0]), tanh_ps(pre[2])));
        _mm512_storeu_ps(c + j, cn);
        _mm512_storeu_ps(h_out + j, _mm512_mul_ps(sigmoid_ps(pre[3]), tanh_ps(cn)));
    }
}

/* Slots r, z, n input part, n recurrent part: the reset gate multiplies only the recurrent one. */
static void f32_gru_step__avx512(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias_x,
                                 const float *h, const packed_matrix *w_hh, const float *bias_hn, float *h_out,
                                 int reverse, int64_t j0, int64_t j1)
{
    const int64_t H = w_hh->rows / 3, blocks = (j1 - j0) / P;
    for (int64_t i = 0; i < blocks; i++) {
        const int64_t j = j0 + (reverse ? blocks - 1 - i : i) * P;
        __m512 acc[8];
        block_products(x, w_ih, h, w_hh, j, H, acc, 3, 2, 3);
        __m512 pre[4]; /* r, z (input + recurrent), n input part, n recurrent part */
        for (int q = 0; q < 4; q++)
            pre[q] = _mm512_add_ps(acc[q], acc[q + 4]);
        for (int q = 0; q < 3; q++) {
            if (bias_x)
                pre[q] = _mm512_add_ps(pre[q], _mm512_loadu_ps(bias_x + q * H + j));
            if (gx)
                pre[q] = _mm512_add_ps(pre[q], _mm512_loadu_ps(gx + q * H + j));
            if (bias_hn)
                pre[q == 2 ? 3 : q] = _mm512_add_ps(pre[q == 2 ? 3 : q], _mm512_loadu_ps(bias_hn + q * H + j));
        }
        const __m512 z = sigmoid_ps(pre[1]);
        const __m512 n = tanh_ps(_mm512_fmadd_ps(sigmoid_ps(pre[0]), pre[3], pre[2]));
        _mm512_storeu_ps(h_out + j, _mm512_fmadd_ps(z, _mm512_sub_ps(_mm512_loadu_ps(h + j), n), n));
    }
}

static void f32_gemm__avx512(int64_t m, const float *x, int64_t ldx, const packed_matrix *w, const float *bias,
                             int accumulate, float *y, int64_t ldy)
{
    if (m == 1) {
        f32_gemv__avx512(x, w, NULL, NULL, bias, accumulate, y, 0);
        return;
    }
    /* Rows in chunks whose x block stays in L2 (~128 KB) while every panel pair streams past it. */
    const int64_t n = w->rows, k = w->cols;
    const int64_t chunk = k > 0 && 32768 / k > MR ? 32768 / k / MR * MR : MR;
    for (int64_t r0 = 0; r0 < m; r0 += chunk) {
        const int64_t rows = m - r0 < chunk ? m - r0 : chunk;
        for (int64_t j = 0; j < n; j += 2 * P) {
            const float *w0 = w->data + j * k;
            const float *b = bias ? bias + j : NULL;
            const __mmask16 m0 = lane_mask(n - j), m1 = n - j > P ? lane_mask(n - j - P) : 0;
            for (int64_t r = r0; r < r0 + rows; r += MR) {
                const int64_t mr = r0 + rows - r < MR ? r0 + rows - r : MR;
                if (n - j > P)
                    tile_2(mr, k, x + r * ldx, ldx, w0, b, accumulate, y + r * ldy + j, ldy, m0, m1);
                else
                    tile_1(mr, k, x + r * ldx, ldx, w0, b, accumulate, y + r * ldy + j, ldy, m0, m1);
            }
        }
    }
}

const lstmrt_kernels lstmrt_kernels__avx512 = {
    .name = "avx512",
    .f32_gemm = f32_gemm__avx512,
    .f32_gemv = f32_gemv__avx512,
    .f32_lstm_step = f32_lstm_step__avx512,
    .f32_gru_step = f32_gru_step__avx512,
    .f32_sum = f32_sum__avx512,
    .f32_sigmoid = f32_sigmoid__avx512,
    .f32_tanh = f32_tanh__avx512,
    .f32_lstm_cell = f32_lstm_cell__avx512,
    .f32_gru_cell = f32_gru_cell__avx512,
};
