/* Portable kernels: the C-side oracle. Plain loops over full PANEL-wide rows so a compiler can vectorize them
 * with whatever baseline ISA it targets; libm for the transcendental functions (correctly rounded enough to be
 * the reference the SIMD approximations are tested against). */
#include <math.h>
#include <string.h>

#include "kernels.h"

#define P LSTMRT_PANEL
#define ROWS 4 /* rows of x per micro-tile: 4 x 16 accumulators */

static void store_tile(float *restrict y, int64_t ldy, const float (*acc)[P], int64_t mr, int64_t nr, int accumulate)
{
    for (int64_t r = 0; r < mr; r++)
        for (int64_t j = 0; j < nr; j++)
            y[r * ldy + j] = accumulate ? y[r * ldy + j] + acc[r][j] : acc[r][j];
}

static void f32_gemm__scalar(int64_t m, const float *x, int64_t ldx, const packed_matrix *w, const float *bias,
                             int accumulate, float *y, int64_t ldy)
{
    const int64_t n = w->rows, k = w->cols;
    for (int64_t p0 = 0; p0 < n; p0 += P) {
        const float *restrict panel = w->data + p0 * k;
        const int64_t nr = n - p0 < P ? n - p0 : P;
        for (int64_t r0 = 0; r0 < m; r0 += ROWS) {
            const int64_t mr = m - r0 < ROWS ? m - r0 : ROWS;
            float acc[ROWS][P];
            for (int64_t r = 0; r < ROWS; r++)
                for (int64_t j = 0; j < P; j++)
                    acc[r][j] = (bias && j < nr) ? bias[p0 + j] : 0.0f;
            for (int64_t kk = 0; kk < k; kk++) {
                const float *restrict wk = panel + kk * P;
                for (int64_t r = 0; r < mr; r++) {
                    const float xv = x[(r0 + r) * ldx + kk];
                    for (int64_t j = 0; j < P; j++)
                        acc[r][j] += xv * wk[j];
                }
            }
            store_tile(y + r0 * ldy + p0, ldy, (const float (*)[P])acc, mr, nr, accumulate);
        }
    }
}

/* Per output: x1 terms, then x2 terms, in k order; then bias, then y. `reverse` changes nothing here. */
static void f32_gemv__scalar(const float *x1, const packed_matrix *w1, const float *x2, const packed_matrix *w2,
                             const float *bias, int accumulate, float *y, int reverse)
{
    (void)reverse;
    const int64_t n = w1->rows;
    for (int64_t p0 = 0; p0 < n; p0 += P) {
        const int64_t nr = n - p0 < P ? n - p0 : P;
        float acc[P] = {0};
        for (int part = 0; part < 2; part++) {
            const packed_matrix *w = part ? w2 : w1;
            const float *x = part ? x2 : x1;
            if (!w)
                continue;
            const float *restrict panel = w->data + p0 * w->cols;
            for (int64_t kk = 0; kk < w->cols; kk++)
                for (int64_t j = 0; j < P; j++)
                    acc[j] += x[kk] * panel[kk * P + j];
        }
        for (int64_t j = 0; j < nr; j++) {
            const float v = bias ? acc[j] + bias[p0 + j] : acc[j];
            y[p0 + j] = accumulate ? y[p0 + j] + v : v;
        }
    }
}

static float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

static float f32_sum__scalar(const float *v, int64_t n)
{
    float acc[P] = {0};
    int64_t i = 0;
    for (; i + P <= n; i += P)
        for (int j = 0; j < P; j++)
            acc[j] += v[i + j];
    for (; i < n; i++)
        acc[0] += v[i];
    float total = 0.0f;
    for (int j = 0; j < P; j++)
        total += acc[j];
    return total;
}

static void f32_sigmoid__scalar(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = sigmoidf(v[i]);
}

static void f32_tanh__scalar(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = tanhf(v[i]);
}

static void f32_lstm_cell__scalar(const float *g, float *c, float *h, int64_t H)
{
    const float *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
    for (int64_t j = 0; j < H; j++) {
        const float cn = sigmoidf(gf[j]) * c[j] + sigmoidf(gi[j]) * tanhf(gg[j]);
        c[j] = cn;
        h[j] = sigmoidf(go[j]) * tanhf(cn);
    }
}

/* Gate rows read straight from the panels (row r: panel r / P, lane r % P); any H. */
static float panel_dot(const packed_matrix *w, int64_t row, const float *v)
{
    const float *restrict panel = w->data + (row / P) * w->cols * P;
    const int64_t lane = row % P;
    float acc = 0.0f;
    for (int64_t kk = 0; kk < w->cols; kk++)
        acc += v[kk] * panel[kk * P + lane];
    return acc;
}

static void f32_lstm_step__scalar(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias,
                                  const float *h, const packed_matrix *w_hh, float *c, float *h_out, int reverse,
                                  int64_t j0, int64_t j1)
{
    (void)reverse;
    const int64_t H = w_hh->rows / 4;
    for (int64_t j = j0; j < j1; j++) {
        float pre[4];
        for (int q = 0; q < 4; q++) {
            const int64_t row = q * H + j;
            float acc = (w_ih ? panel_dot(w_ih, row, x) : 0.0f) + panel_dot(w_hh, row, h);
            if (gx)
                acc += gx[row];
            if (bias)
                acc += bias[row];
            pre[q] = acc;
        }
        const float cn = sigmoidf(pre[1]) * c[j] + sigmoidf(pre[0]) * tanhf(pre[2]);
        c[j] = cn;
        h_out[j] = sigmoidf(pre[3]) * tanhf(cn);
    }
}

static void f32_gru_step__scalar(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias_x,
                                 const float *h, const packed_matrix *w_hh, const float *bias_hn, float *h_out,
                                 int reverse, int64_t j0, int64_t j1)
{
    (void)reverse;
    const int64_t H = w_hh->rows / 3;
    for (int64_t j = j0; j < j1; j++) {
        float a[3], b[3];
        for (int q = 0; q < 3; q++) {
            const int64_t row = q * H + j;
            a[q] = (w_ih ? panel_dot(w_ih, row, x) : 0.0f) + (bias_x ? bias_x[row] : 0.0f) + (gx ? gx[row] : 0.0f);
            b[q] = panel_dot(w_hh, row, h) + (bias_hn ? bias_hn[row] : 0.0f);
        }
        const float r = sigmoidf(a[0] + b[0]);
        const float z = sigmoidf(a[1] + b[1]);
        const float nn = tanhf(a[2] + r * b[2]);
        h_out[j] = (1.0f - z) * nn + z * h[j];
    }
}

static void f32_gru_cell__scalar(const float *x, const float *hh, float *h, int64_t H)
{
    for (int64_t j = 0; j < H; j++) {
        const float r = sigmoidf(x[j] + hh[j]);
        const float z = sigmoidf(x[H + j] + hh[H + j]);
        const float nn = tanhf(x[2 * H + j] + r * hh[2 * H + j]);
        h[j] = (1.0f - z) * nn + z * h[j];
    }
}

const lstmrt_kernels lstmrt_kernels__scalar = {
    .name = "scalar",
    .f32_gemm = f32_gemm__scalar,
    .f32_gemv = f32_gemv__scalar,
    .f32_lstm_step = f32_lstm_step__scalar,
    .f32_gru_step = f32_gru_step__scalar,
    .f32_sum = f32_sum__scalar,
    .f32_sigmoid = f32_sigmoid__scalar,
    .f32_tanh = f32_tanh__scalar,
    .f32_lstm_cell = f32_lstm_cell__scalar,
    .f32_gru_cell = f32_gru_cell__scalar,
};
