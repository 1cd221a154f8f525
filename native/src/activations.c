/* Element-wise activations (definitions in docs/math.md). Sigmoid and tanh go through the kernel table, the
 * rest are plain libm loops: they appear in unusual configurations, where correctness matters more than speed.
 * Comparisons are written so that NaN falls through unchanged (fminf/fmaxf would swallow it). */
#include <float.h>
#include <math.h>

#include "internal.h"

static float clamp01(float v)
{
    return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}
static float relu6f(float v)
{
    return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
}
static float softplusf(float v)
{
    return (v > 0.0f ? v : 0.0f) + log1pf(expf(-fabsf(v)));
}

/* (x + sqrt(x^2 + b)) / 2 in double, where x^2 cannot overflow; for x < 0 as b / (2 (sqrt(x^2 + b) - x)), the same
 * value without the cancellation of x + sqrt(x^2 + b), so that it tends to 0 (not NaN at -inf) */
static float squareplusf(float v, float b)
{
    const double x = v, s = sqrt(x * x + b);
    return (float)(x >= 0.0 ? 0.5 * (x + s) : 0.5 * b / (s - x));
}

static float activate(activation a, float v)
{
    static const float selu_alpha = 1.6732632423543772848f, selu_scale = 1.0507009873554804934f;
    const float alpha = a.alpha;
    switch (a.kind) {
    case LSTMRT_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case LSTMRT_ACT_TANH: return tanhf(v);
    case LSTMRT_ACT_RELU: return v < 0.0f ? 0.0f : v;
    case LSTMRT_ACT_LINEAR: return v;
    case LSTMRT_ACT_HARD_SIGMOID: return clamp01(0.2f * v + 0.5f);
    case LSTMRT_ACT_HARD_SIGMOID_V3: return relu6f(v + 3.0f) / 6.0f;
    case LSTMRT_ACT_ELU: return v > 0.0f ? v : expm1f(v);
    case LSTMRT_ACT_SOFTSIGN: return isinf(v) ? copysignf(1.0f, v) : v / (1.0f + fabsf(v));
    case LSTMRT_ACT_SOFTPLUS: return softplusf(v);
    case LSTMRT_ACT_SELU: return selu_scale * (v > 0.0f ? v : selu_alpha * expm1f(v));
    case LSTMRT_ACT_EXPONENTIAL: return expf(v);
    case LSTMRT_ACT_RELU6: return relu6f(v);
    case LSTMRT_ACT_SILU: return v / (1.0f + expf(-v));
    case LSTMRT_ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case LSTMRT_ACT_GELU_TANH: return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case LSTMRT_ACT_HARD_SILU: return v * (relu6f(v + 3.0f) / 6.0f); /* v * 6 would overflow near FLT_MAX */
    case LSTMRT_ACT_MISH: return v * tanhf(softplusf(v));
    case LSTMRT_ACT_LEAKY_RELU: return v < 0.0f ? alpha * v : v;
    case LSTMRT_ACT_CELU: return v > 0.0f ? v : alpha * expm1f(v / alpha);
    case LSTMRT_ACT_HARD_SHRINK: return v >= -alpha && v <= alpha ? 0.0f : v;
    case LSTMRT_ACT_SOFT_SHRINK: return v > alpha ? v - alpha : (v < -alpha ? v + alpha : (v == v ? 0.0f : v));
    case LSTMRT_ACT_SQUAREPLUS: return squareplusf(v, alpha);
    case LSTMRT_ACT_HARD_TANH: return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
    case LSTMRT_ACT_TANH_SHRINK: return v - tanhf(v);
    case LSTMRT_ACT_LOG_SIGMOID: return (v < 0.0f ? v : 0.0f) - log1pf(expf(-fabsf(v)));
    case LSTMRT_ACT_SPARSE_PLUS: return v <= -1.0f ? 0.0f : (v < 1.0f ? 0.25f * (v + 1.0f) * (v + 1.0f) : v);
    case LSTMRT_ACT_SPARSE_SIGMOID: return v <= -1.0f ? 0.0f : (v >= 1.0f ? 1.0f : 0.5f * (v + 1.0f));
    case LSTMRT_ACT_CLIP_MIN: return v < alpha ? alpha : v;
    case LSTMRT_ACT_CLIP_MAX: return v > alpha ? alpha : v;
    default: return v; /* softmax variants are row-wise, handled by the caller; validated at creation */
    }
}

static void softmax_row(float *v, int64_t n, int log_form)
{
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        mx = v[i] > mx || isnan(v[i]) ? v[i] : mx;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += exp((double)(v[i] - mx));
    if (log_form) {
        /* (v - mx) first: for large logits, mx + log(sum) would round to the spacing of mx */
        const float log_sum = (float)log(sum);
        for (int64_t i = 0; i < n; i++)
            v[i] = (v[i] - mx) - log_sum;
    } else {
        for (int64_t i = 0; i < n; i++)
            v[i] = (float)(exp((double)(v[i] - mx)) / sum);
    }
}

void apply_activation(const lstmrt_kernels *k, activation a, float *v, int64_t rows, int64_t n, int64_t row_stride)
{
    if (a.kind == LSTMRT_ACT_LINEAR)
        return;
    for (int64_t r = 0; r < rows; r++) {
        float *row = v + r * row_stride;
        switch (a.kind) {
        case LSTMRT_ACT_SIGMOID: k->f32_sigmoid(row, n); break;
        case LSTMRT_ACT_TANH: k->f32_tanh(row, n); break;
        case LSTMRT_ACT_SOFTMAX: softmax_row(row, n, 0); break;
        case LSTMRT_ACT_LOG_SOFTMAX: softmax_row(row, n, 1); break;
        default:
            for (int64_t i = 0; i < n; i++)
                row[i] = activate(a, row[i]);
        }
    }
}

int activation_alpha_ok(lstmrt_activation kind, float alpha)
{
    switch (kind) {
    case LSTMRT_ACT_LEAKY_RELU:
    case LSTMRT_ACT_CLIP_MIN:
    case LSTMRT_ACT_CLIP_MAX: return isfinite(alpha);
    case LSTMRT_ACT_CELU: return isfinite(alpha) && alpha != 0.0f;
    case LSTMRT_ACT_HARD_SHRINK:
    case LSTMRT_ACT_SOFT_SHRINK:
    case LSTMRT_ACT_SQUAREPLUS: return alpha >= 0.0f && alpha <= FLT_MAX;
    default: return alpha == 0.0f;
    }
}
