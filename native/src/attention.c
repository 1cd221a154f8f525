/* LSTMRT_LAYER_ATTENTION_POOL: softmax attention pooling over the steps so far, y(t) = sum over tau <= t of
 * softmax(e)(tau) v(tau), as torch's `w = softmax(self.score(out), dim=1); (w * out).sum(1)` computes over a whole
 * sequence. Kept as state (an online softmax), so a stream's step returns the attention pool of its sequence so far
 * and predict's step t that of steps 0..t; the model then reads each sequence's last step.
 *
 * Per score column (one score shared by every feature, or one per feature) the state holds the largest score seen,
 * best, and the sum of exp(e - best) over the steps, sum; per feature the weighted mean, which a larger score does
 * not change (it rescales every weight alike, so only the sum is rescaled). A step of weight w = exp(e - best) moves
 * the mean by (v - mean) * w / sum, in double, as a global pool's mean: kept as two floats, the mean and its part
 * below float32 precision. Keeping the mean rather than the weighted sum keeps it bounded on an endless stream; the
 * weight sum stops at 2^24 (from there a step of weight 1 moves the mean by 2^-24 of the way, an average over
 * roughly the last 2^24 steps of the largest score).
 *
 * Non-finite scores follow softmax: NaN or +inf at any step makes every later output NaN (torch: NaN weights);
 * -inf is a weight of 0; before any step of non-zero weight the output is NaN (0 / 0, as softmax of no finite
 * score). A non-finite value takes the weighted sum's rule (inf + finite = inf, inf - inf = NaN); unlike torch, a
 * step of weight 0 (a score of -inf, or exp underflowing) leaves the mean alone where torch's 0 * inf gives NaN. */
#include <math.h>

#include "recurrent.h"

#define MAX_WEIGHT_SUM 16777216.0f /* 2^24 */

/* The fraction of the way to v that one step moves the mean of a score column (0: none; 1: to v itself), after
 * updating that column's best score and weight sum for score e. */
static double column_step(float e, float *best, float *sum)
{
    if (isnan(*best))
        return 0.0; /* poisoned by an earlier NaN or +inf score: the output stays NaN */
    if (isnan(e) || e == INFINITY) {
        *best = NAN;
        return 0.0;
    }
    if (e == -INFINITY)
        return 0.0;
    if (*sum == 0.0f) { /* the first step of weight > 0 (a set_state may have left anything in best) */
        *best = e;
        *sum = 1.0f;
        return 1.0;
    }
    double weight = 1.0;
    if (e > *best) { /* every earlier weight shrinks by exp(best - e); the mean does not change */
        *sum = (float)((double)*sum * exp((double)*best - (double)e));
        *best = e;
    } else {
        weight = exp((double)e - (double)*best);
        if ((float)weight == 0.0f)
            return 0.0;
    }
    const double next = (double)*sum + weight;
    *sum = next < MAX_WEIGHT_SUM ? (float)next : MAX_WEIGHT_SUM;
    return weight / (double)*sum;
}

void attention_steps(const layer *L, int64_t batch, int64_t steps, seq_view e, seq_view v, const uint8_t *active,
                     int64_t active_stride, float *state, seq_view y)
{
    const int64_t F = L->output_size, C = L->input_size, per_column = C == 1 ? F : 1;
    for (int64_t b = 0; b < batch; b++) {
        float *mean = state + b * F, *low = state + (batch + b) * F;
        float *best = state + 2 * batch * F + b * C, *sum = state + 2 * batch * F + (batch + b) * C;
        for (int64_t t = 0; t < steps; t++) {
            const float *er = seq_row(e, b, t), *vr = seq_row(v, b, t) + L->add_offset;
            float *yr = seq_row(y, b, t);
            const int counted = row_active(active, active_stride, b, t); /* a masked step is not attended */
            for (int64_t c = 0; c < C; c++) {
                const int64_t j0 = c * per_column, j1 = j0 + per_column;
                const double fraction = counted ? column_step(er[c], &best[c], &sum[c]) : 0.0;
                if (fraction > 0.0)
                    for (int64_t j = j0; j < j1; j++)
                        move_mean(vr[j], fraction, &mean[j], &low[j]);
                const int defined = !isnan(best[c]) && sum[c] > 0.0f;
                for (int64_t j = j0; j < j1; j++)
                    yr[j] = defined ? mean[j] : NAN;
            }
        }
    }
}
