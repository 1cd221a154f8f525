/* LSTMRT_LAYER_GLOBAL_POOL: the mean or max over the steps so far, kept as state so that a stream's step returns
 * the pool of its sequence so far and predict's step t the pool of steps 0..t (the model then reads each
 * sequence's last step, as Keras's GlobalAveragePooling1D / GlobalMaxPooling1D and torch's out.mean(1) return).
 *
 * The mean is kept, not the sum: it stays bounded on an endless stream, and once the count stops at 2^24 (float32
 * counts exactly that far) it becomes an average over roughly the last 2^24 steps instead of drifting. It is kept
 * as two floats, the mean and the part of it below float32's precision: late in a long sequence a step moves the
 * mean by less than half a float32 ulp, which one float alone would round away (values near 1e3 with a spread of
 * 1 drift by ~1e-5 relative within 2e5 steps). A non-finite input or mean takes the sum's rule (inf + finite = inf,
 * inf - inf = NaN), which is what sum / count gives. Unlike the frameworks' float32 sum, the mean of finite values
 * near FLT_MAX does not overflow (Keras gives inf for the mean of [3e38, 3e38]; lstmrt 3e38). */
#include <math.h>

#include "recurrent.h"

#define MAX_COUNT 16777216.0f /* 2^24 */

/* value: the mean or max; low: the mean's part below float32 precision (average only); count: steps pooled. */
static void pool_row(const layer *L, const float *x, int counted, float *value, float *low, float *count)
{
    const int64_t n = L->input_size;
    if (!counted)
        return;
    if (*count < MAX_COUNT)
        *count += 1.0f;
    if (*count == 1.0f) { /* the first step pooled: whatever a set_state left in value and low is not a pool */
        memcpy(value, x, (size_t)n * sizeof(float));
        if (L->pool_mode == LSTMRT_POOL_AVERAGE)
            memset(low, 0, (size_t)n * sizeof(float));
        return;
    }
    if (L->pool_mode == LSTMRT_POOL_MAX) {
        for (int64_t j = 0; j < n; j++)
            if (isnan(x[j]) || (x[j] > value[j] && !isnan(value[j])))
                value[j] = x[j];
        return;
    }
    const double inv = 1.0 / (double)*count; /* < 1: the first step pooled was copied above */
    for (int64_t j = 0; j < n; j++)
        move_mean(x[j], inv, &value[j], &low[j]);
}

void pool_steps(const layer *L, int64_t batch, int64_t steps, seq_view x, const uint8_t *active, int64_t active_stride,
                float *state, seq_view y)
{
    const int64_t n = L->input_size, lows = L->pool_mode == LSTMRT_POOL_AVERAGE ? batch * n : 0;
    for (int64_t b = 0; b < batch; b++) {
        float *value = state + b * n, *low = state + batch * n + b * n, *count = state + batch * n + lows + b;
        for (int64_t t = 0; t < steps; t++) {
            /* A masked step is not averaged; the max takes every step, as Keras's pooling layers do. */
            const int counted = L->pool_mode == LSTMRT_POOL_MAX || row_active(active, active_stride, b, t);
            pool_row(L, seq_row(x, b, t), counted, value, low, count);
            float *yr = seq_row(y, b, t);
            if (*count == 0.0f)
                for (int64_t j = 0; j < n; j++)
                    yr[j] = NAN; /* the mean of no step: Keras's 0 / 0 */
            else
                memcpy(yr, value, (size_t)n * sizeof(float));
        }
    }
}

int64_t pool_bad_state(const lstmrt_model_t *m, int64_t batch, const float *state)
{
    int64_t offset = 0;
    for (int32_t l = 0; l < m->num_layers; l++) {
        const layer *L = &m->layers[l];
        offset += batch * L->state_floats; /* the counts are the layer's last `batch` floats */
        if (L->kind == LSTMRT_LAYER_GLOBAL_POOL)
            for (int64_t i = offset - batch; i < offset; i++)
                if (!(state[i] >= 0.0f && state[i] <= MAX_COUNT && state[i] == floorf(state[i])))
                    return i;
        if (L->kind == LSTMRT_LAYER_ATTENTION_POOL) /* the weight sums are the layer's last batch * C floats */
            for (int64_t i = offset - batch * L->input_size; i < offset; i++)
                if (!(state[i] >= 0.0f && state[i] <= MAX_COUNT))
                    return i;
    }
    return -1;
}
