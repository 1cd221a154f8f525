/* Reference (reference.h): float64, one sequence at a time, straight from the equations (docs/math.md, lstmrt.h). */
#include "reference.h"

/* clip(v, lo, hi) by comparisons, which let NaN through (fmin/fmax would swallow it, and NaN must propagate) */
static double clip(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Element-wise activations, `alpha` the parameter of those that take one: docs/math.md section 7's table in double.
 * Where a form of the table overflows or cancels even in double (softplus, mish and log_sigmoid at large |x|,
 * squareplus at large negative x), it is split on the sign. */
static double ref_act(lstmrt_activation a, double alpha, double v)
{
    static const double selu_alpha = 1.6732632423543772848, selu_scale = 1.0507009873554804934;
    switch (a) {
    case LSTMRT_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case LSTMRT_ACT_TANH: return tanh(v);
    case LSTMRT_ACT_RELU: return v < 0.0 ? 0.0 : v;
    case LSTMRT_ACT_LINEAR: return v;
    case LSTMRT_ACT_HARD_SIGMOID: return clip(0.2 * v + 0.5, 0.0, 1.0);
    case LSTMRT_ACT_HARD_SIGMOID_V3: return clip(v + 3.0, 0.0, 6.0) / 6.0;
    case LSTMRT_ACT_ELU: return v > 0.0 ? v : expm1(v);
    case LSTMRT_ACT_SOFTSIGN: return isinf(v) ? copysign(1.0, v) : v / (1.0 + fabs(v)); /* inf / inf */
    case LSTMRT_ACT_SOFTPLUS: return v > 0.0 ? v + log1p(exp(-v)) : log1p(exp(v));
    case LSTMRT_ACT_SELU: return selu_scale * (v > 0.0 ? v : selu_alpha * expm1(v));
    case LSTMRT_ACT_EXPONENTIAL: return exp(v);
    case LSTMRT_ACT_RELU6: return clip(v, 0.0, 6.0);
    case LSTMRT_ACT_SILU: return v * (1.0 / (1.0 + exp(-v)));
    case LSTMRT_ACT_GELU: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case LSTMRT_ACT_GELU_TANH:
        return 0.5 * v * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
    case LSTMRT_ACT_HARD_SILU: return v * clip(v + 3.0, 0.0, 6.0) / 6.0;
    case LSTMRT_ACT_MISH: return v * tanh(v > 0.0 ? v + log1p(exp(-v)) : log1p(exp(v)));
    case LSTMRT_ACT_LEAKY_RELU: return v >= 0.0 ? v : alpha * v;
    case LSTMRT_ACT_CELU: return v > 0.0 ? v : alpha * expm1(v / alpha);
    case LSTMRT_ACT_HARD_SHRINK: return fabs(v) > alpha || isnan(v) ? v : 0.0;
    case LSTMRT_ACT_SOFT_SHRINK: return v > alpha ? v - alpha : v < -alpha ? v + alpha : isnan(v) ? v : 0.0;
    case LSTMRT_ACT_SQUAREPLUS: {
        /* hypot: x^2 + b without overflow; below 0 the rationalised b / (2 (s - x)): x + s would cancel to 0 for
           large |x|, and be NaN at -inf, where the limit is 0 */
        const double s = hypot(v, sqrt(alpha));
        return v >= 0.0 ? 0.5 * (v + s) : 0.5 * alpha / (s - v);
    }
    case LSTMRT_ACT_HARD_TANH: return clip(v, -1.0, 1.0);
    case LSTMRT_ACT_TANH_SHRINK: return v - tanh(v);
    case LSTMRT_ACT_LOG_SIGMOID: return v >= 0.0 ? -log1p(exp(-v)) : v - log1p(exp(v));
    case LSTMRT_ACT_SPARSE_PLUS: return v <= -1.0 ? 0.0 : v < 1.0 ? (v + 1.0) * (v + 1.0) / 4.0 : v;
    case LSTMRT_ACT_SPARSE_SIGMOID: return v <= -1.0 ? 0.0 : v >= 1.0 ? 1.0 : (v + 1.0) / 2.0;
    case LSTMRT_ACT_CLIP_MIN: return v < alpha ? alpha : v;
    case LSTMRT_ACT_CLIP_MAX: return v > alpha ? alpha : v;
    default: return NAN; /* softmax variants are row-wise (ref_act_row); unknown: fails the comparison loudly */
    }
}

static void ref_act_row(lstmrt_activation a, double alpha, double *v, int n)
{
    if (a == LSTMRT_ACT_SOFTMAX || a == LSTMRT_ACT_LOG_SOFTMAX) {
        double mx = v[0], sum = 0.0;
        for (int i = 1; i < n; i++)
            mx = v[i] > mx ? v[i] : mx;
        for (int i = 0; i < n; i++)
            sum += exp(v[i] - mx);
        for (int i = 0; i < n; i++)
            v[i] = a == LSTMRT_ACT_SOFTMAX ? exp(v[i] - mx) / sum : v[i] - mx - log(sum);
        return;
    }
    for (int i = 0; i < n; i++)
        v[i] = ref_act(a, alpha, v[i]);
}

static double dot(const float *w, const double *x, int n)
{
    double s = 0.0;
    for (int k = 0; k < n; k++)
        s += (double)w[k] * x[k];
    return s;
}
static double bias_at(const float *b, int j)
{
    return b ? (double)b[j] : 0.0;
}
static double clipped(double v, double clip)
{
    return clip > 0.0 ? fmax(-clip, fmin(clip, v)) : v;
}

/* One direction over one sequence: x (T x I), y (T x Hr). Inactive steps carry the state. The sequence's own
 * steps are the first `end` (its length; the rest is padding). */
static void ref_direction(const lstmrt_layer_desc *d, int dir, int reverse, int T, int end, const double *x,
                          const uint8_t *active, double *y)
{
    const lstmrt_direction_weights *w = &d->weights[dir];
    const int I = d->input_size, H = d->hidden_size, P = d->proj_size, Hr = state_h(d);
    const int G = gate_count(d->kind) * H;
    const double clip = d->cell_clip;
    double *h = new_doubles(Hr), *c = new_doubles(H), *g = new_doubles(G), *gh = new_doubles(G);
    double *m = new_doubles(H), *rh = new_doubles(H);
    for (int s = 0; s < T; s++) {
        const int t = reverse ? T - 1 - s : s;
        double *yt = y + (int64_t)t * Hr;
        if (!active[t]) {
            for (int j = 0; j < Hr; j++)
                yt[j] = d->hold_masked_output ? h[j] : 0.0;
            continue;
        }
        for (int j = 0; j < G; j++) {
            g[j] = dot(w->weight_ih + (int64_t)j * I, x + (int64_t)t * I, I) + bias_at(w->bias_ih, j);
            gh[j] = dot(w->weight_hh + (int64_t)j * Hr, h, Hr) + bias_at(w->bias_hh, j);
        }
        if (d->kind == LSTMRT_LAYER_LSTM) {
            const float *pp = w->weight_peephole;
            for (int j = 0; j < H; j++) {
                double gi = g[j] + gh[j], gf = g[H + j] + gh[H + j], gg = g[2 * H + j] + gh[2 * H + j];
                double go = g[3 * H + j] + gh[3 * H + j];
                if (pp) {
                    gi += pp[j] * c[j];
                    gf += pp[H + j] * c[j];
                }
                gi = ref_act(d->activations[0], d->activation_alpha[0], clipped(gi, clip));
                gf = ref_act(d->activations[0], d->activation_alpha[0], clipped(gf, clip));
                gg = ref_act(d->activations[1], d->activation_alpha[1], clipped(gg, clip));
                c[j] = gf * c[j] + gi * gg;
                if (pp)
                    go += pp[2 * H + j] * c[j];
                go = ref_act(d->activations[0], d->activation_alpha[0], clipped(go, clip));
                m[j] = go * ref_act(d->activations[2], d->activation_alpha[2], c[j]);
            }
            for (int j = 0; j < Hr; j++)
                h[j] = P ? dot(w->weight_proj + (int64_t)j * H, m, H) : m[j];
        } else if (d->kind == LSTMRT_LAYER_GRU) {
            /* g: r z n input parts; gh: r z n recurrent parts (gh_n = W_hn h + b_hn) */
            for (int j = 0; j < 2 * H; j++)
                g[j] = ref_act(d->activations[0], d->activation_alpha[0], g[j] + gh[j]); /* r, z */
            for (int j = 0; j < H; j++)
                rh[j] = g[j] * h[j];
            for (int j = 0; j < H; j++) {
                const float *w_hn = w->weight_hh + (int64_t)(2 * H + j) * H;
                const double hn =
                    d->linear_before_reset ? g[j] * gh[2 * H + j] : dot(w_hn, rh, H) + bias_at(w->bias_hh, 2 * H + j);
                m[j] = ref_act(d->activations[1], d->activation_alpha[1], g[2 * H + j] + hn);
            }
            for (int j = 0; j < H; j++)
                h[j] = (1.0 - g[H + j]) * m[j] + g[H + j] * h[j];
        } else {
            for (int j = 0; j < H; j++)
                h[j] = ref_act(d->activations[0], d->activation_alpha[0], g[j] + gh[j]);
        }
        memcpy(yt, h, (size_t)Hr * sizeof(double));
    }
    if (d->final_only) { /* Keras's last_output: the output of the last step run (masked: 0 or the held h) */
        double *last = new_doubles(Hr);
        memcpy(last, end == 0 ? h : y + (int64_t)(reverse ? 0 : end - 1) * Hr, (size_t)Hr * sizeof(double));
        for (int t = 0; t < T; t++)
            memcpy(y + (int64_t)t * Hr, last, (size_t)Hr * sizeof(double));
    }
}

/* LSTMRT_LAYER_NORM, as its header comment states each mode. */
static void ref_norm(const lstmrt_layer_desc *d, const double *x, double *y)
{
    const int n = d->input_size;
    const lstmrt_direction_weights *w = &d->weights[0];
    double mean = 0.0, var = 0.0, square = 0.0;
    for (int j = 0; j < n; j++)
        mean += x[j] / n;
    for (int j = 0; j < n; j++) {
        var += (x[j] - mean) * (x[j] - mean) / n;
        square += x[j] * x[j] / n;
    }
    const double stat = d->norm_mode == LSTMRT_NORM_RMS ? square : var;
    const double center = d->norm_mode == LSTMRT_NORM_LAYER ? mean : 0.0;
    for (int j = 0; j < n; j++)
        y[j] =
            (x[j] - center) / sqrt(stat + d->epsilon) * (w->weight_ih ? w->weight_ih[j] : 1.0) + bias_at(w->bias_ih, j);
}

/* LSTMRT_LAYER_GLOBAL_POOL: step t outputs the mean of the active steps up to t (NaN before the first, 0 / 0), or
 * the max of every step up to t. */
static void ref_pool(const lstmrt_layer_desc *d, int T, const double *x, const uint8_t *active, double *y)
{
    const int n = d->input_size;
    double *acc = new_doubles(n);
    int count = 0;
    for (int t = 0; t < T; t++) {
        const double *xt = x + (int64_t)t * n;
        if (d->pool_mode == LSTMRT_POOL_MAX || active[t]) {
            count++;
            for (int j = 0; j < n; j++)
                acc[j] = d->pool_mode == LSTMRT_POOL_AVERAGE ? acc[j] + xt[j]
                         : count == 1                        ? xt[j]
                                                             : fmax(acc[j], xt[j]);
        }
        for (int j = 0; j < n; j++)
            y[(int64_t)t * n + j] = d->pool_mode == LSTMRT_POOL_MAX ? acc[j] : acc[j] / count;
    }
}

/* One layer over one sequence: x (T x I), y (T x O). */
static void ref_layer(const lstmrt_layer_desc *d, int T, int end, const double *x, const uint8_t *active, double *y)
{
    const int I = d->input_size, O = layer_out(d);
    const lstmrt_direction_weights *w = &d->weights[0];
    switch (d->kind) {
    case LSTMRT_LAYER_DENSE:
        for (int t = 0; t < T; t++) {
            for (int j = 0; j < O; j++)
                y[t * O + j] = dot(w->weight_ih + (int64_t)j * I, x + (int64_t)t * I, I) + bias_at(w->bias_ih, j);
            ref_act_row(d->activations[0], d->activation_alpha[0], y + (int64_t)t * O, O);
        }
        return;
    case LSTMRT_LAYER_ACTIVATION:
        for (int t = 0; t < T; t++) {
            memcpy(y + (int64_t)t * O, x + (int64_t)t * I, (size_t)O * sizeof(double));
            ref_act_row(d->activations[0], d->activation_alpha[0], y + (int64_t)t * O, O);
        }
        return;
    case LSTMRT_LAYER_AFFINE:
        for (int t = 0; t < T; t++)
            for (int j = 0; j < O; j++)
                y[t * O + j] = x[t * I + j] * w->weight_ih[j] + w->bias_ih[j];
        return;
    case LSTMRT_LAYER_PRELU:
        for (int t = 0; t < T; t++)
            for (int j = 0; j < O; j++) {
                const double v = x[t * I + j];
                y[t * O + j] = v >= 0.0 ? v : w->weight_ih[j] * v;
            }
        return;
    case LSTMRT_LAYER_NORM:
        for (int t = 0; t < T; t++)
            ref_norm(d, x + (int64_t)t * I, y + (int64_t)t * O);
        return;
    case LSTMRT_LAYER_EMBEDDING:
        for (int t = 0; t < T; t++)
            for (int j = 0; j < O; j++)
                y[t * O + j] = w->weight_ih[(int64_t)x[t] * O + j];
        return;
    case LSTMRT_LAYER_GLOBAL_POOL: ref_pool(d, T, x, active, y); return;
    case LSTMRT_LAYER_ADD:
    case LSTMRT_LAYER_ATTENTION_POOL: return; /* ref_predict computes these: it holds the earlier outputs */
    default: break;
    }
    const int Hr = state_h(d);
    if (d->num_directions == 1) {
        ref_direction(d, 0, d->go_backwards, T, end, x, active, y);
        return;
    }
    double *fw = new_doubles((int64_t)T * Hr), *bw = new_doubles((int64_t)T * Hr);
    ref_direction(d, 0, 0, T, end, x, active, fw);
    ref_direction(d, 1, 1, T, end, x, active, bw);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < Hr; j++) {
            const double f = fw[t * Hr + j], b = bw[t * Hr + j];
            switch (d->merge_mode) {
            case LSTMRT_MERGE_CONCAT:
                y[t * O + j] = f;
                y[t * O + Hr + j] = b;
                break;
            case LSTMRT_MERGE_SUM: y[t * O + j] = f + b; break;
            case LSTMRT_MERGE_MUL: y[t * O + j] = f * b; break;
            default: y[t * O + j] = 0.5 * (f + b); break;
            }
        }
}

/* LSTMRT_LAYER_ATTENTION_POOL over one sequence, from scratch at every step: y(t) = the softmax over the active steps
 * up to t of the scores e (T x C), weighting the values v (T x width, the features from offset); NaN before the first
 * active step, and from a score of NaN or +inf on. */
static void ref_attention(const lstmrt_layer_desc *d, int T, const double *e, const double *v, int width,
                          const uint8_t *active, double *y)
{
    const int F = d->hidden_size, C = d->input_size;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < F; j++) {
            const int c = C == 1 ? 0 : j;
            double top = -INFINITY, bad = 0.0, num = 0.0, den = 0.0;
            for (int u = 0; u <= t; u++)
                if (active[u]) {
                    const double s = e[(int64_t)u * C + c];
                    bad += isnan(s) || s == INFINITY;
                    top = s > top ? s : top;
                }
            for (int u = 0; u <= t && !bad; u++)
                if (active[u] && top > -INFINITY) {
                    const double w = exp(e[(int64_t)u * C + c] - top);
                    num += w * v[(int64_t)u * width + d->add_offset + j];
                    den += w;
                }
            y[(int64_t)t * F + j] = bad || den == 0.0 ? NAN : num / den;
        }
}

/* The model over (batch, steps): y (batch, steps, O) in double. */
void ref_predict(const spec *s, const float *x, int batch, int steps, const int32_t *lengths, const uint8_t *mask,
                 double *y)
{
    const int I = spec_in(s), O = spec_out(s);
    uint8_t *active = arena_alloc((size_t)steps);
    for (int b = 0; b < batch; b++) {
        for (int t = 0; t < steps; t++)
            active[t] = (!lengths || t < lengths[b]) && (!mask || mask[(int64_t)b * steps + t]);
        double *in = new_doubles((int64_t)steps * I);
        for (int64_t i = 0; i < (int64_t)steps * I; i++)
            in[i] = x[(int64_t)b * steps * I + i];
        double *points[MAX_LAYERS + 1] = {in}; /* the model input, then each layer's output */
        for (int l = 0; l < s->n; l++) {
            const lstmrt_layer_desc *d = &s->layers[l];
            const int O = layer_out(d);
            double *out = new_doubles((int64_t)steps * O);
            ref_layer(d, steps, lengths ? lengths[b] : steps, in, active, out);
            if (d->kind == LSTMRT_LAYER_ADD) {
                const int from = point_width(s, d->add_from);
                for (int t = 0; t < steps; t++)
                    for (int j = 0; j < O; j++)
                        out[t * O + j] = in[t * O + j] + points[d->add_from][(int64_t)t * from + d->add_offset + j];
            }
            if (d->kind == LSTMRT_LAYER_ATTENTION_POOL)
                ref_attention(d, steps, in, points[d->add_from], point_width(s, d->add_from), active, out);
            points[l + 1] = in = out;
        }
        for (int t = 0; t < steps; t++)
            for (int j = 0; j < O; j++)
                y[((int64_t)b * steps + t) * O + j] = (lengths && t >= lengths[b]) ? 0.0 : in[(int64_t)t * O + j];
    }
}

double max_err_ref(const float *got, const double *want, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = isnan(got[i]) && isnan(want[i]) ? 0.0 : fabs((double)got[i] - want[i]); /* NaN where due */
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}
