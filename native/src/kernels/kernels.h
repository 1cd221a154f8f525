/* The kernel table: every hot loop of the runtime, one implementation per ISA (docs/kernels.md).
 * Naming: <dtype>_<op>__<isa>. scalar.c is the portable oracle every other ISA must match. */
#ifndef LSTMRT_KERNELS_H
#define LSTMRT_KERNELS_H

#include <stdint.h>

/* Weight panels: a (rows x cols) row-major matrix W stored as ceil(rows / LSTMRT_PANEL) panels, panel p holding
 * W[p*PANEL + j][k] at data[(p * cols + k) * PANEL + j], rows past the end zero. A GEMM micro-kernel then reads
 * one contiguous PANEL-wide vector per k. 16 floats = one AVX-512 register, two AVX2, four NEON registers. */
#define LSTMRT_PANEL 16

typedef struct packed_matrix {
    int64_t rows;
    int64_t cols;
    float *data; /* 64-byte aligned, panels * cols * PANEL floats */
} packed_matrix;

typedef struct lstmrt_kernels {
    const char *name;
    /* y(m x n) = x(m x k) W^T (+ bias (n) if not NULL) (+ y if accumulate). Rows of x are ldx apart,
     * rows of y ldy apart; n = w->rows, k = w->cols. */
    void (*f32_gemm)(int64_t m, const float *x, int64_t ldx, const packed_matrix *w, const float *bias, int accumulate,
                     float *y, int64_t ldy);
    /* The one-row product of a step: y = x1 W1^T (+ x2 W2^T if w2) (+ bias if not NULL) (+ y if accumulate);
     * W1 and W2 have the same rows (n = w1->rows), k1 = w1->cols, k2 = w2->cols. `reverse` visits the panels
     * last to first: the result is bit-identical (each output sums its terms in the same order), but the weights
     * the previous step read last are read first, while still in L1/L2 (docs/kernels.md). */
    void (*f32_gemv)(const float *x1, const packed_matrix *w1, const float *x2, const packed_matrix *w2,
                     const float *bias, int accumulate, float *y, int reverse);
    /* One LSTM step of one row, standard cell, with the cell inside the product: for each block of PANEL hidden
     * units, its four gate panels (i, f, g, o rows of W) are multiplied and the cell applied at once, so the cell
     * math overlaps the weight stream and no gate vector is stored. Pre-activations = (x W_ih^T if w_ih) +
     * h W_hh^T (+ gx, the input part already computed, if not NULL) (+ bias if not NULL). Requires
     * H = w_hh->rows / 4 to be a multiple of PANEL. c (H) updated in place; h_out (H) must not alias h.
     * reverse: as f32_gemv (blocks last to first, bit-identical result). Only hidden units [j0, j1) are computed
     * (multiples of PANEL; 0, H for all): threads of a team split a step's blocks, each reading the whole h. */
    void (*f32_lstm_step)(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias, const float *h,
                          const packed_matrix *w_hh, float *c, float *h_out, int reverse, int64_t j0, int64_t j1);
    /* One GRU step of one row (linear_before_reset, sigmoid/tanh), the cell inside the product like f32_lstm_step:
     * per block of PANEL hidden units, its r, z, n panels (rows 0, H, 2H of each W) are multiplied and the cell
     * applied at once. Input parts a = (x W_ih^T if w_ih) (+ bias_x if not NULL) (+ gx, already computed, if not NULL);
     * recurrent parts b = h W_hh^T (+ bias_hn, 3H, if not NULL). r = sigmoid(a_r + b_r), z = sigmoid(a_z + b_z),
     * n = tanh(a_n + r * b_n), h_out = (1 - z) n + z h. H = w_hh->rows / 3 a multiple of PANEL; h_out must not
     * alias h. reverse, j0, j1: as f32_lstm_step. */
    void (*f32_gru_step)(const float *gx, const float *x, const packed_matrix *w_ih, const float *bias_x,
                         const float *h, const packed_matrix *w_hh, const float *bias_hn, float *h_out, int reverse,
                         int64_t j0, int64_t j1);
    /* Sum of n floats, any order: a pure read stream (probe.c measures the cache bandwidth with it). */
    float (*f32_sum)(const float *v, int64_t n);
    /* In-place element-wise logistic sigmoid and tanh of n floats. */
    void (*f32_sigmoid)(float *v, int64_t n);
    void (*f32_tanh)(float *v, int64_t n);
    /* Fused LSTM cell, standard activations: g = [i f g o] pre-activations (4H); c updated in place;
     * h = sigmoid(o) * tanh(c). */
    void (*f32_lstm_cell)(const float *g, float *c, float *h, int64_t H);
    /* Fused GRU cell, linear_before_reset: x = [r z n] input part (3H, biased), hh = [r z n] recurrent part
     * (3H, n biased); h updated in place: h = (1 - z) * n + z * h. */
    void (*f32_gru_cell)(const float *x, const float *hh, float *h, int64_t H);
} lstmrt_kernels;

extern const lstmrt_kernels lstmrt_kernels__scalar;
#if defined(LSTMRT_HAVE_X86_KERNELS)
extern const lstmrt_kernels lstmrt_kernels__avx2;
extern const lstmrt_kernels lstmrt_kernels__avx512;
#endif
#if defined(LSTMRT_HAVE_NEON_KERNELS)
extern const lstmrt_kernels lstmrt_kernels__neon;
#endif

/* dispatch.c: the tables this CPU and OS can run, scalar first (ignores LSTMRT_ISA; for tests). Returns how
 * many were written (at most max). */
int lstmrt__supported_kernels(const lstmrt_kernels **tables, int max);

#endif
