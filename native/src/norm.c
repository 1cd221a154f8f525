/* Normalisation over the features of one step (LSTMRT_LAYER_NORM). The statistics are summed in double, two
 * passes (mean, then squared deviations), so a row with a large mean loses nothing to cancellation; the frameworks
 * compute them in float32, which is what the tests' tolerance allows for. O(features) per step: no SIMD kernel. */
#include <math.h>

#include "internal.h"

void norm_row(const layer *L, const float *x, float *y)
{
    const int64_t n = L->input_size;
    double mean = 0.0;
    for (int64_t j = 0; j < n; j++)
        mean += x[j];
    mean /= (double)n;
    double spread = 0.0; /* mean((x - mean)^2), or mean(x^2) for RMS */
    const double center = L->norm_mode == LSTMRT_NORM_RMS ? 0.0 : mean;
    for (int64_t j = 0; j < n; j++) {
        const double e = x[j] - center;
        spread += e * e;
    }
    spread /= (double)n;
    const double inv = 1.0 / sqrt(spread + (double)L->epsilon);
    const double shift_mean = L->norm_mode == LSTMRT_NORM_LAYER ? mean : 0.0; /* only LayerNorm subtracts it */
    for (int64_t j = 0; j < n; j++)
        y[j] = (float)((x[j] - shift_mean) * inv * L->vec_a[j] + L->vec_b[j]);
}
