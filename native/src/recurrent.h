/* Helpers shared by the recurrent cell drivers (lstm.c, gru.c, rnn.c). */
#ifndef LSTMRT_RECURRENT_H
#define LSTMRT_RECURRENT_H

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

/* A skipped step keeps the state and outputs 0, or repeats the previous output (= the carried h). */
static inline void write_skipped_output(const layer *L, const float *h, float *y, int64_t n)
{
    if (L->hold_masked_output)
        memcpy(y, h, (size_t)n * sizeof(float));
    else
        memset(y, 0, (size_t)n * sizeof(float));
}

/* f32_gemv's visiting order for step s of this call: alternate from step to step (see workspace.sweep). */
static inline int sweep_reverse(const workspace *ws, int64_t s)
{
    return (int)((*ws->sweep + (uint64_t)s) & 1u);
}

#endif
