#include <math.h>
#include <stdio.h>

#include "run.h"

int64_t block_steps(int64_t batch)
{
    const int64_t target_rows = 256;
    return batch >= target_rows ? 1 : target_rows / batch;
}

void run_blocks(const lstmrt_model_t *m, const workspace *ws, int64_t block, int64_t batch, int64_t steps, seq_view x,
                const uint8_t *active, int64_t active_stride, float *state, seq_view y, int whole_sequence,
                const int32_t *lengths)
{
    for (int64_t t0 = 0; t0 < steps; t0 += block) {
        const int64_t n = steps - t0 < block ? steps - t0 : block;
        seq_view xb = {x.data + t0 * x.time_stride, x.batch_stride, x.time_stride};
        seq_view yb = {y.data + t0 * y.time_stride, y.batch_stride, y.time_stride};
        forward_layers(m, ws, batch, n, xb, active ? active + t0 : NULL, active_stride, state, yb, whole_sequence,
                       lengths);
    }
}

lstmrt_status check_tokens(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps)
{
    if (m->layers[0].kind != LSTMRT_LAYER_EMBEDDING)
        return LSTMRT_STATUS_OK;
    const float v = (float)m->layers[0].num_embeddings;
    for (int64_t r = 0; r < batch * steps; r++) {
        if (x[r] >= 0.0f && x[r] < v && x[r] == floorf(x[r]))
            continue;
        /* An integral float prints exactly (%g would show 2^40 as 1.09951e+12); others with float32 precision. */
        const int integral = x[r] == floorf(x[r]);
        char id[48]; /* FLT_MAX has 39 digits */
        snprintf(id, sizeof id, integral ? "%.0f" : "%.9g", (double)x[r]);
        return lstmrt__fail(LSTMRT_STATUS_INVALID_ARGUMENT, "token id %s at row %lld, step %lld %s [0, %d]", id,
                            (long long)(r / steps), (long long)(r % steps),
                            integral ? "is outside" : "is not an integer in", m->layers[0].num_embeddings - 1);
    }
    return LSTMRT_STATUS_OK;
}
