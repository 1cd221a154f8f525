/* AArch64 Advanced SIMD (NEON) kernels: a 16-float panel row is four q registers. Advanced SIMD is part of the
 * AArch64 baseline, so this file needs no extra flags and no run-time check. Tails (fewer than 4 floats, or a
 * partial last panel) go through small stack buffers. Activation math and its error bound: approx.h. */
#include <arm_neon.h>
#include <string.h>

#include "approx.h"
#include "kernels.h"

#define P LSTMRT_PANEL
#define MR 6 /* rows of x per GEMM tile: 6 rows x 16 columns = 24 q accumulators (of 32 registers) */

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")
#else
#define INLINE static inline
#define UNROLL
#endif

/* ---- activations (approx.h) ---- */

/* u = expm1(r) and s = 2^n for z = n ln2 + r, n in [-126, 127] (callers clamp z); see avx512.c. */
INLINE float32x4_t expm1_reduced(float32x4_t z, float32x4_t *s)
{
    const float32x4_t shifter = vdupq_n_f32(LSTMRT_EXP_SHIFTER);
    const float32x4_t t = vfmaq_f32(shifter, z, vdupq_n_f32(LSTMRT_LOG2E));
    const float32x4_t n = vsubq_f32(t, shifter);
    *s = vreinterpretq_f32_s32(vshlq_n_s32(vreinterpretq_s32_f32(t), 23));
    const float32x4_t r = vfmsq_f32(z, n, vdupq_n_f32(LSTMRT_LN2));
    const float32x4_t r2 = vmulq_f32(r, r);
    const float32x4_t a = vfmaq_f32(vdupq_n_f32(LSTMRT_EXPM1_P0), vdupq_n_f32(LSTMRT_EXPM1_P1), r);
    const float32x4_t b = vfmaq_f32(vdupq_n_f32(LSTMRT_EXPM1_P2), vdupq_n_f32(LSTMRT_EXPM1_P3), r);
    const float32x4_t p = vfmaq_f32(a, vfmaq_f32(b, vdupq_n_f32(LSTMRT_EXPM1_P4), r2), r2);
    return vfmaq_f32(r, p, r2);
}

/* True division: the 8-bit reciprocal estimate would need two Newton steps and still miss the exact limits. */
INLINE float32x4_t sigmoid_q(float32x4_t x)
{
    /* FMAX/FMIN return NaN if either operand is NaN: NaN flows through the clamp */
    float32x4_t z = vmaxq_f32(vdupq_n_f32(LSTMRT_SIGMOID_ZLO), vnegq_f32(x));
    z = vminq_f32(vdupq_n_f32(LSTMRT_SIGMOID_ZHI), z);
    float32x4_t s;
    const float32x4_t u = expm1_reduced(z, &s);
    const float32x4_t q = vdivq_f32(vdupq_n_f32(1.0f), vfmaq_f32(vaddq_f32(s, vdupq_n_f32(1.0f)), s, u));
    /* exactly 0 far left (and at -inf); x <= ZERO_BELOW is false for NaN, so NaN is kept */
    const uint32x4_t zero = vcleq_f32(x, vdupq_n_f32(LSTMRT_SIGMOID_ZERO_BELOW));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(q), zero));
}

INLINE float32x4_t tanh_q(float32x4_t x)
{
    const float32x4_t a = vminq_f32(vdupq_n_f32(LSTMRT_TANH_CLAMP), vabsq_f32(x));
    float32x4_t s;
    const float32x4_t u = expm1_reduced(vaddq_f32(a, a), &s);
    const float32x4_t e = vfmaq_f32(vsubq_f32(s, vdupq_n_f32(1.0f)), s, u); /* expm1(2|x|) */
    const float32x4_t t = vdivq_f32(e, vaddq_f32(e, vdupq_n_f32(2.0f)));
    return vbslq_f32(vdupq_n_u32(0x80000000u), x, t); /* the sign of x on |tanh| */
}

/* Eight independent accumulators: enough loads in flight to reach the cache's bandwidth. */
static float f32_sum__neon(const float *v, int64_t n)
{
    float32x4_t a[8];
    for (int q = 0; q < 8; q++)
        a[q] = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int q = 0; q < 8; q++)
            a[q] = vaddq_f32(a[q], vld1q_f32(v + i + 4 * q));
    float tail = 0.0f;
    for (; i < n; i++)
        tail += v[i];
    for (int q = 1; q < 8; q++)
        a[0] = vaddq_f32(a[0], a[q]);
    return vaddvq_f32(a[0]) + tail;
}

static void f32_sigmoid__neon(float *v, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(v + i, sigmoid_q(vld1q_f32(v + i)));
    if (i < n) {
        float t[4] = {0, 0, 0, 0};
        memcpy(t, v + i, (size_t)(n - i) * sizeof(float));
        vst1q_f32(t, sigmoid_q(vld1q_f32(t)));
        memcpy(v + i, t, (size_t)(n - i) * sizeof(float));
    }
}

static void f32_tanh__neon(float *v, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(v + i, tanh_q(vld1q_f32(v + i)));
    if (i < n) {
        float t[4] = {0, 0, 0, 0};
        memcpy(t, v + i, (size_t)(n - i) * sizeof(float));
        vst1q_f32(t, tanh_q(vld1q_f32(t)));
        memcpy(v + i, t, (size_t)(n - i) * sizeof(float));
    }
}

INLINE void lstm4(const float *gi, const float *gf, const float *gg, const float *go, float *c, float *h)
{
    const float32x4_t i = sigmoid_q(vld1q_f32(gi)), f = sigmoid_q(vld1q_f32(gf));
    const float32x4_t u = tanh_q(vld1q_f32(gg)), o = sigmoid_q(vld1q_f32(go));
    const float32x4_t cn = vfmaq_f32(vmulq_f32(i, u), f, vld1q_f32(c));
    vst1q_f32(c, cn);
    vst1q_f32(h, vmulq_f32(o, tanh_q(cn)));
}

static void f32_lstm_cell__neon(const float *g, float *c, float *h, int64_t H)
{
    const float *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
    int64_t j = 0;
    for (; j + 4 <= H; j += 4)
        lstm4(gi + j, gf + j, gg + j, go + j, c + j, h + j);
    if (j < H) {
        const size_t r = (size_t)(H - j) * sizeof(float);
        float t[6][4];
        memset(t, 0, sizeof t);
        memcpy(t[0], gi + j, r), memcpy(t[1], gf + j, r), memcpy(t[2], gg + j, r), memcpy(t[3], go + j, r);
        memcpy(t[4], c + j, r);
        lstm4(t[0], t[1], t[2], t[3], t[4], t[5]);
        memcpy(c + j, t[4], r), memcpy(h + j, t[5], r);
    }
}

INLINE void gru4(const float *xr, const float *xz, const float *xn, const float *hr, const float *hz, const float *hn,
                 float *h)
{
    const float32x4_t r = sigmoid_q(vaddq_f32(vld1q_f32(xr), vld1q_f32(hr)));
    const float32x4_t z = sigmoid_q(vaddq_f32(vld1q_f32(xz), vld1q_f32(hz)));
    const float32x4_t n = tanh_q(vfmaq_f32(vld1q_f32(xn), r, vld1q_f32(hn)));
    vst1q_f32(h, vfmaq_f32(n, z, vsubq_f32(vld1q_f32(h), n))); /* (1-z) n + z h */
}

static void f32_gru_cell__neon(const float *x, const float *hh, float *h, int64_t H)
{
    int64_t j = 0;
    for (; j + 4 <= H; j += 4)
        gru4(x + j, x + H + j, x + 2 * H + j, hh + j, hh + H + j, hh + 2 * H + j, h + j);
    if (j < H) {
        const size_t r = (size_t)(H - j) * sizeof(float);
        float t[7][4];
        memset(t, 0, sizeof t);
        memcpy(t[0], x + j, r), memcpy(t[1], x + H + j, r), memcpy(t[2], x + 2 * H + j, r);
        memcpy(t[3], hh + j, r), memcpy(t[4], hh + H + j, r), memcpy(t[5], hh + 2 * H + j, r);
        memcpy(t[6], h + j, r);
        gru4(t[0], t[1], t[2], t[3], t[4], t[5], t[6]);
        memcpy(h + j, t[6], r);
    }
}

/* ---- GEMM on packed panels (layout: kernels.h) ---- */

/* Stores one finished 16-wide row (acc[0..3]) to y: + bias, + y if accumulate, only the nr valid columns. */
INLINE void finish_row(const float32x4_t acc[4], const float *bias, int accumulate, float *y, int64_t nr)
{
    float t[P];
    for (int q = 0; q < 4; q++)
        vst1q_f32(t + 4 * q, acc[q]);
    if (nr == P) {
        for (int q = 0; q < 4; q++) {
            float32x4_t v = acc[q];
            if (bias)
                v = vaddq_f32(v, vld1q_f32(bias + 4 * q));
            if (accumulate)
                v = vaddq_f32(v, vld1q_f32(y + 4 * q));
            vst1q_f32(y + 4 * q, v);
        }
        return;
    }
    for (int64_t j = 0; j < nr; j++)
        y[j] = (accumulate ? y[j] : 0.0f) + (bias ? t[j] + bias[j] : t[j]);
}

INLINE void tile(const int mr, int64_t k, const float *x, int64_t ldx, const float *w, const float *bias,
                 int accumulate, float *y, int64_t ldy, int64_t nr)
{
    float32x4_t acc[MR][4];
    UNROLL
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = vdupq_n_f32(0.0f);
    for (int64_t kk = 0; kk < k; kk++) {
        const float *wk = w + kk * P;
        const float32x4_t b0 = vld1q_f32(wk), b1 = vld1q_f32(wk + 4), b2 = vld1q_f32(wk + 8), b3 = vld1q_f32(wk + 12);
        UNROLL
        for (int r = 0; r < MR; r++) {
            if (r < mr) {
                const float a = x[r * ldx + kk];
                acc[r][0] = vfmaq_n_f32(acc[r][0], b0, a);
                acc[r][1] = vfmaq_n_f32(acc[r][1], b1, a);
                acc[r][2] = vfmaq_n_f32(acc[r][2], b2, a);
                acc[r][3] = vfmaq_n_f32(acc[r][3], b3, a);
            }
        }
    }
    UNROLL
    for (int r = 0; r < MR; r++)
        if (r < mr)
            finish_row(acc[r], bias, accumulate, y + r * ldy, nr);
}

static void tile_any(int64_t mr, int64_t k, const float *x, int64_t ldx, const float *w, const float *bias,
                     int accumulate, float *y, int64_t ldy, int64_t nr)
{
    switch (mr) {
    case 6: tile(6, k, x, ldx, w, bias, accumulate, y, ldy, nr); break;
    case 5: tile(5, k, x, ldx, w, bias, accumulate, y, ldy, nr); break;
    case 4: tile(4, k, x, ldx, w, bias, accumulate, y, ldy, nr); break;
    case 3: tile(3, k, x, ldx, w, bias, accumulate, y, ldy, nr); break;
    case 2: tile(2, k, x, ldx, w, bias, accumulate, y, ldy, nr); break;
    default: tile(1, k, x, ldx, w, bias, accumulate, y, ldy, nr); break;
    }
}

/* One row (a step's product): one panel at a time, 4 k-phases x 4 registers = 16 independent FMA chains (enough
 * for cores with four FMA pipes). Panels are visited in either order, each always sums k forwards (x1 then x2):
 * the result does not depend on `reverse`. */
#define GEMV_PHASE(f)                                                                                                  \
    do {                                                                                                               \
        const float *wk = w0 + (kk + f) * P;                                                                           \
        a[f][0] = vfmaq_laneq_f32(a[f][0], vld1q_f32(wk), xv, f);                                                      \
        a[f][1] = vfmaq_laneq_f32(a[f][1], vld1q_f32(wk + 4), xv, f);                                                  \
        a[f][2] = vfmaq_laneq_f32(a[f][2], vld1q_f32(wk + 8), xv, f);                                                  \
        a[f][3] = vfmaq_laneq_f32(a[f][3], vld1q_f32(wk + 12), xv, f);                                                 \
    } while (0)

INLINE void gemv_part(const float *x, const float *w0, int64_t k, float32x4_t a[4][4])
{
    int64_t kk = 0;
    for (; kk + 4 <= k; kk += 4) {
        const float32x4_t xv = vld1q_f32(x + kk);
        GEMV_PHASE(0);
        GEMV_PHASE(1);
        GEMV_PHASE(2);
        GEMV_PHASE(3);
    }
    for (; kk < k; kk++) {
        const float *wk = w0 + kk * P;
        for (int q = 0; q < 4; q++)
            a[0][q] = vfmaq_n_f32(a[0][q], vld1q_f32(wk + 4 * q), x[kk]);
    }
}

static void f32_gemv__neon(const float *x1, const packed_matrix *w1, const float *x2, const packed_matrix *w2,
                           const float *bias, int accumulate, float *y, int reverse)
{
    const int64_t n = w1->rows, panels = (n + P - 1) / P;
    for (int64_t i = 0; i < panels; i++) {
        const int64_t p = reverse ? panels - 1 - i : i, j = p * P;
        float32x4_t a[4][4];
        for (int f = 0; f < 4; f++)
            a[f][0] = a[f][1] = a[f][2] = a[f][3] = vdupq_n_f32(0.0f);
        gemv_part(x1, w1->data + p * w1->cols * P, w1->cols, a);
        if (w2)
            gemv_part(x2, w2->data + p * w2->cols * P, w2->cols, a);
        float32x4_t acc[4];
        for (int q = 0; q < 4; q++)
            acc[q] = vaddq_f32(vaddq_f32(a[0][q], a[1][q]), vaddq_f32(a[2][q], a[3][q]));
        finish_row(acc, bias ? bias + j : NULL, accumulate, y + j, n - j < P ? n - j : P);
    }
}

/* The gate panels of hidden block j are H rows apart (gs = H * k floats): 4 panels x 4 registers = 16 chains. Panel
 * q goes to acc[q], the last one to acc[last]: a GRU keeps the input and recurrent parts of n apart, since the reset
 * gate multiplies only the recurrent one. */
INLINE void gates_part(const float *x, const float *w0, int64_t k, int64_t gs, float32x4_t acc[4][4], const int panels,
                       const int last)
{
    for (int64_t kk = 0; kk < k; kk++) {
        const float xv = x[kk];
        const float *wk = w0 + kk * P;
        for (int q = 0; q < panels; q++) {
            const int a = q == panels - 1 ? last : q;
            for (int r = 0; r < 4; r++)
                acc[a][r] = vfmaq_n_f32(acc[a][r], vld1q_f32(wk + q * gs + 4 * r), xv);
        }
    }
}

/* Hidden block j's products into fresh accumulators: x W_ih^T (if w_ih) then h W_hh^T (gates_part's slots). */
INLINE void block_products(const float *x, const packed_matrix *w_ih, const float *h, const packed_matrix *w_hh,
                           int64_t j, int64_t H, float32x4_t acc[4][4], const int panels, const int last_ih,
                           const int last_hh)
{
    for (int q = 0; q < 4; q++)
        acc[q][0] = acc[q][1] = acc[q][2] = acc[q][3] = vdupq_n_f32(0.0f);
    if (w_ih)
        gates_part(x, w_ih->data + j * w_ih->cols, w_ih->cols, H * w_ih->cols, acc, panels, last_ih);
    gates_part(h, w_hh->data + j * w_hh->cols, w_hh->cols, H * w_hh->cols, acc, panels, last_hh);
}

static void f32_lstm_step__neon(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias,
                                const float *h, const packed_matrix *w_hh, float *c, float *h_out, int reverse,
                                int64_t j0, int64_t j1)
{
    const int64_t H = w_hh->rows / 4, blocks = (j1 - j0) / P;
    for (int64_t i = 0; i < blocks; i++) {
        const int64_t j = j0 + (reverse ? blocks - 1 - i : i) * P;
        float32x4_t acc[4][4];
        block_products(x, w_ih, h, w_hh, j, H, acc, 4, 3, 3);
        for (int r = 0; r < 4; r++) {
            const int64_t jj = j + 4 * r;
            float32x4_t pre[4];
            for (int q = 0; q < 4; q++) {
                pre[q] = acc[q][r];
                if (gx)
                    pre[q] = vaddq_f32(pre[q], vld1q_f32(gx + q * H + jj));
                if (bias)
                    pre[q] = vaddq_f32(pre[q], vld1q_f32(bias + q * H + jj));
            }
            const float32x4_t cn =
                vfmaq_f32(vmulq_f32(sigmoid_q(pre[0]), tanh_q(pre[2])), sigmoid_q(pre[1]), vld1q_f32(c + jj));
            vst1q_f32(c + jj, cn);
            vst1q_f32(h_out + jj, vmulq_f32(sigmoid_q(pre[3]), tanh_q(cn)));
        }
    }
}

static void f32_gru_step__neon(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias_x,
                               const float *h, const packed_matrix *w_hh, const float *bias_hn, float *h_out,
                               int reverse, int64_t j0, int64_t j1)
{
    const int64_t H = w_hh->rows / 3, blocks = (j1 - j0) / P;
    for (int64_t i = 0; i < blocks; i++) {
        const int64_t j = j0 + (reverse ? blocks - 1 - i : i) * P;
        float32x4_t acc[4][4];
        block_products(x, w_ih, h, w_hh, j, H, acc, 3, 2, 3);
        for (int r = 0; r < 4; r++) {
            const int64_t jj = j + 4 * r;
            float32x4_t pre[4]; /* r, z (input + recurrent), n input part, n recurrent part */
            for (int q = 0; q < 4; q++)
                pre[q] = acc[q][r];
            for (int q = 0; q < 3; q++) {
                if (bias_x)
                    pre[q] = vaddq_f32(pre[q], vld1q_f32(bias_x + q * H + jj));
                if (gx)
                    pre[q] = vaddq_f32(pre[q], vld1q_f32(gx + q * H + jj));
                if (bias_hn)
                    pre[q == 2 ? 3 : q] = vaddq_f32(pre[q == 2 ? 3 : q], vld1q_f32(bias_hn + q * H + jj));
            }
            const float32x4_t z = sigmoid_q(pre[1]);
            const float32x4_t n = tanh_q(vfmaq_f32(pre[2], sigmoid_q(pre[0]), pre[3]));
            vst1q_f32(h_out + jj, vfmaq_f32(n, z, vsubq_f32(vld1q_f32(h + jj), n)));
        }
    }
}

static void f32_gemm__neon(int64_t m, const float *x, int64_t ldx, const packed_matrix *w, const float *bias,
                           int accumulate, float *y, int64_t ldy)
{
    if (m == 1) {
        f32_gemv__neon(x, w, NULL, NULL, bias, accumulate, y, 0);
        return;
    }
    const int64_t n = w->rows, k = w->cols;
    const int64_t chunk = k > 0 && 32768 / k > MR ? 32768 / k / MR * MR : MR;
    for (int64_t r0 = 0; r0 < m; r0 += chunk) {
        const int64_t rows = m - r0 < chunk ? m - r0 : chunk;
        for (int64_t j = 0; j < n; j += P) {
            const float *wp = w->data + j * k;
            const float *b = bias ? bias + j : NULL;
            const int64_t nr = n - j < P ? n - j : P;
            for (int64_t r = r0; r < r0 + rows; r += MR)
                tile_any(r0 + rows - r < MR ? r0 + rows - r : MR, k, x + r * ldx, ldx, wp, b, accumulate,
                         y + r * ldy + j, ldy, nr);
        }
    }
}

const lstmrt_kernels lstmrt_kernels__neon = {
    .name = "neon",
    .f32_gemm = f32_gemm__neon,
    .f32_gemv = f32_gemv__neon,
    .f32_lstm_step = f32_lstm_step__neon,
    .f32_gru_step = f32_gru_step__neon,
    .f32_sum = f32_sum__neon,
    .f32_sigmoid = f32_sigmoid__neon,
    .f32_tanh = f32_tanh__neon,
    .f32_lstm_cell = f32_lstm_cell__neon,
    .f32_gru_cell = f32_gru_cell__neon,
};
