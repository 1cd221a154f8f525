/* Helpers shared by the recurrent cell drivers (lstm.c, gru.c, rnn.c) and the pools over time (pool.c,
 * attention.c). */
#ifndef LSTMRT_RECURRENT_H
#define LSTMRT_RECURRENT_H

#include <math.h>
#include <string.h>

#include "internal.h"

static inline float *seq_row(seq_view v, int64_t b, int64_t t)
{
    return v.data + b * v.batch_stride + t * v.time_stride;
}

static inline int row_active(const uint8_t *active, int64_t stride, int64_t b, int64_t t)
{
    return active == NULL || active[b * stride + t] != 0;
}

/* A running mean kept as two floats, *mean + *low (the part below float32 precision), moved `fraction` of the way
 * to v, in double: late in a long sequence a step moves the mean by less than half a float32 ulp, which one float
 * alone would round away. A non-finite mean or v takes the sum's rule (inf + finite = inf, inf - inf = NaN). */
static inline void move_mean(float v, double fraction, float *mean, float *low)
{
    const double m = (double)*mean + (double)*low;
    const double next = fraction == 1.0 ? v : isfinite(m) && isfinite(v) ? m + ((double)v - m) * fraction : m + v;
    *mean = (float)next;
    *low = isfinite(next) ? (float)(next - (double)*mean) : 0.0f;
}

/* A skipped step keeps the state and outputs 0, or repeats the previous output (= the carried h). */
static inline void write_skipped_output(const layer *L, const float *h, float *y, int64_t n)
{
    if (L->hold_masked_output)
        memcpy(y, h, (size_t)n * sizeof(float));
    else
        memset(y, 0, (size_t)n * sizeof(float));
}

/* Weights a step reads up to this size stay in L1 (x86 cores have 32-48 KB): alternating sweeps gain nothing there,
 * and a forward-only sweep lets a step start on the first blocks of h while the previous step's last cell is still
 * in flight (predict at I=8, H=32: -5% per step; docs/kernels.md). */
#define LSTMRT_L1_RESIDENT_BYTES ((int64_t)24 * 1024)

static inline int64_t packed_bytes(const packed_matrix *w)
{
    return packed_floats(w->rows, w->cols) * (int64_t)sizeof(float);
}

/* The one-row kernels' visiting order for step s of this call, whose products read W_hh (and W_ih too when
 * with_input: a stream step), each of `members` threads of a team a share of them: forwards while a share fits in
 * L1, otherwise alternating from step to step (see workspace.sweep). */
static inline int sweep_reverse_share(const workspace *ws, int64_t s, const packed_direction *d, int with_input,
                                      int members)
{
    const int64_t weight_bytes = packed_bytes(&d->w_hh) + (with_input ? packed_bytes(&d->w_ih) : 0);
    if (weight_bytes <= LSTMRT_L1_RESIDENT_BYTES * members) /* no division: this sits before every step */
        return 0;
    return (int)((*ws->sweep + (uint64_t)s) & 1u);
}

static inline int sweep_reverse(const workspace *ws, int64_t s, const packed_direction *d, int with_input)
{
    return sweep_reverse_share(ws, s, d, with_input, 1);
}

#endif
