/* predict on every model kind: properties, against the float64 reference, a wide batch, lengths, final_only
 * over long sequences, special values, and every activation and PReLU at special values. */
#include <float.h>

#include "cases.h"
#include "reference.h"

void test_model_properties(void)
{
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        lstmrt_model_t *m = open_spec(which, &s);
        if (m) {
            int64_t state = 0;
            int bidi = 0;
            for (int l = 0; l < s.n; l++) {
                const lstmrt_layer_desc *d = &s.layers[l];
                int sizes[4];
                for (int k = state_parts(d, sizes) - 1; k >= 0; k--)
                    state += sizes[k];
                bidi |= is_recurrent(d->kind) && (d->num_directions == 2 || d->go_backwards);
            }
            CHECK(lstmrt_model_input_size(m) == spec_in(&s));
            CHECK(lstmrt_model_output_size(m) == spec_out(&s));
            CHECK(lstmrt_model_state_size(m) == state);
            CHECK(lstmrt_model_is_bidirectional(m) == bidi);
            CHECK(lstmrt_model_weight_bytes(m) > 0 || s.layers[0].kind == LSTMRT_LAYER_ACTIVATION);
            CHECK(lstmrt_last_error()[0] == '\0');
        }
        lstmrt_model_free(m);
        arena_reset();
    }
}

/* Every model kind against the reference: plain, with lengths (including 0), with lengths and a mask. */
void test_predict_vs_reference(void)
{
    static const int32_t lengths_a[PB] = {PT, 41, 0}, lengths_b[PB] = {73, PT, 1};
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        make_spec(which, &s);
        lstmrt_model_t *m = create_model(&s);
        if (!m)
            continue;
        const int O = spec_out(&s);
        const int64_t ny = (int64_t)PB * PT * O;
        float *x = make_inputs(&s, PB, PT), *y = new_floats(ny), *y0 = new_floats(ny);
        uint8_t *mask = arena_alloc(PB * PT);
        for (int i = 0; i < PB * PT; i++)
            mask[i] = rng_unit() > 0.15;
        double *want = new_doubles(ny);
        for (int variant = 0; variant < 3; variant++) {
            const int32_t *lengths = variant == 0 ? NULL : variant == 1 ? lengths_a : lengths_b;
            const uint8_t *mk = variant == 2 ? mask : NULL;
            snprintf(context, sizeof context, "%s, %s", s.name,
                     variant == 0   ? "plain"
                     : variant == 1 ? "lengths"
                                    : "lengths+mask");
            CHECK(lstmrt_model_predict(m, x, PB, PT, lengths, mk, y) == LSTMRT_STATUS_OK);
            ref_predict(&s, x, PB, PT, lengths, mk, want);
            const double err = max_err_ref(y, want, ny);
            if (!CHECK(err <= REF_TOL))
                printf("  max abs error %.3g\n", err);
            if (lengths)
                for (int b = 0; b < PB; b++)
                    for (int64_t i = ((int64_t)b * PT + lengths[b]) * O; i < (int64_t)(b + 1) * PT * O; i++)
                        if (!CHECK(y[i] == 0.0f))
                            break;
            if (variant == 0)
                memcpy(y0, y, (size_t)ny * sizeof(float));
        }
        /* The model owns copies of its weights: scribbling over the caller's arrays changes nothing. */
        snprintf(context, sizeof context, "%s, weights copied", s.name);
        for (int l = 0; l < s.n; l++)
            for (int dir = 0; dir < s.layers[l].num_directions; dir++) {
                const lstmrt_direction_weights *w = &s.layers[l].weights[dir];
                const float *all[6] = {w->weight_ih, w->weight_hh,       w->bias_ih,
                                       w->bias_hh,   w->weight_peephole, w->weight_proj};
                for (int k = 0; k < 6; k++)
                    if (all[k]) /* arena memory: ours to overwrite */
                        memset((void *)(uintptr_t)all[k], 0x7f, sizeof(float));
            }
        CHECK(lstmrt_model_predict(m, x, PB, PT, NULL, NULL, y) == LSTMRT_STATUS_OK);
        CHECK(same_bits(y, y0, ny));
        /* Zero steps: nothing to do, nothing written. */
        y[0] = 42.0f;
        CHECK(lstmrt_model_predict(m, x, PB, 0, NULL, NULL, y) == LSTMRT_STATUS_OK && y[0] == 42.0f);
        lstmrt_model_free(m);
        arena_reset();
    }
}

/* A wide batch (>= 256 rows) makes predict and streams work one step per block: the other blocking path. */
void test_wide_batch(void)
{
    enum { B = 300, T = 5 };
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        make_spec(which, &s);
        snprintf(context, sizeof context, "%s, batch %d", s.name, B);
        for (int l = 0; l < s.n; l++)
            s.layers[l].final_only = 0;
        lstmrt_model_t *m = create_model(&s);
        lstmrt_stream_t *st = NULL;
        if (m && !lstmrt_model_is_bidirectional(m) && CHECK(lstmrt_stream_create(m, B, &st) == LSTMRT_STATUS_OK)) {
            const int I = spec_in(&s), O = spec_out(&s);
            float *x = make_inputs(&s, B, T), *want = new_floats((int64_t)B * T * O);
            float *got = new_floats((int64_t)B * T * O), *xt = new_floats((int64_t)B * I);
            float *yt = new_floats((int64_t)B * O);
            double *ref = new_doubles((int64_t)B * T * O);
            CHECK(lstmrt_model_predict(m, x, B, T, NULL, NULL, want) == LSTMRT_STATUS_OK);
            /* rows split over threads: the serial result up to summation order (slices block steps differently) */
            CHECK(lstmrt_model_predict_threads(m, x, B, T, NULL, NULL, got, 4) == LSTMRT_STATUS_OK);
            CHECK(max_abs_diff(got, want, (int64_t)B * T * O) <= SAME_TOL);
            ref_predict(&s, x, B, T, NULL, NULL, ref);
            CHECK(max_err_ref(want, ref, (int64_t)B * T * O) <= REF_TOL);
            CHECK(lstmrt_stream_run(st, x, T, got) == LSTMRT_STATUS_OK);
            CHECK(max_abs_diff(got, want, (int64_t)B * T * O) <= SAME_TOL);
            lstmrt_stream_reset(st);
            for (int t = 0; t < T; t++) {
                for (int b = 0; b < B; b++)
                    memcpy(xt + (int64_t)b * I, x + ((int64_t)b * T + t) * I, (size_t)I * sizeof(float));
                CHECK(lstmrt_stream_step(st, xt, NULL, yt) == LSTMRT_STATUS_OK);
                for (int b = 0; b < B; b++)
                    memcpy(got + ((int64_t)b * T + t) * O, yt + (int64_t)b * O, (size_t)O * sizeof(float));
            }
            CHECK(max_abs_diff(got, want, (int64_t)B * T * O) <= SAME_TOL);
        }
        lstmrt_stream_free(st);
        lstmrt_model_free(m);
        arena_reset();
    }
}

/* lengths: padding outputs are zero and the backward direction starts at each sequence's own last step, so a
 * padded sequence predicts exactly as the same sequence alone, unpadded. */
void test_lengths_match_unpadded(void)
{
    static const int models[] = {0, 5, 12, 13, 14, 18, 20};
    enum { T = 50 };
    static const int32_t lengths[3] = {T, 23, 1};
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        spec s;
        lstmrt_model_t *m = open_spec(models[k], &s);
        if (!m)
            continue;
        const int I = spec_in(&s), O = spec_out(&s);
        float *x = make_inputs(&s, 3, T), *y = new_floats(3 * T * O), *alone = new_floats(T * O);
        CHECK(lstmrt_model_predict(m, x, 3, T, lengths, NULL, y) == LSTMRT_STATUS_OK);
        for (int b = 0; b < 3; b++) {
            const int L = lengths[b];
            CHECK(lstmrt_model_predict(m, x + (int64_t)b * T * I, 1, L, NULL, NULL, alone) == LSTMRT_STATUS_OK);
            CHECK(max_abs_diff(y + (int64_t)b * T * O, alone, (int64_t)L * O) <= SAME_TOL);
            int zero = 1;
            for (int64_t i = (int64_t)L * O; i < (int64_t)T * O; i++)
                zero &= y[(int64_t)b * T * O + i] == 0.0f;
            CHECK(zero);
        }
        lstmrt_model_free(m);
        arena_reset();
    }
}

/* final_only: every step carries the layer's final output, however long the sequence (causal models run
 * predict in blocks). */
void test_final_only_long_sequence(void)
{
    spec s;
    start_spec(&s, 77, "lstm 4-5 final only");
    push(&s, LSTMRT_LAYER_LSTM, 4, 5)->final_only = 1;
    add_weights(&s);
    lstmrt_model_t *m = create_model(&s);
    lstmrt_stream_t *st = NULL;
    enum { T = 600, B = 2 };
    if (m && CHECK(lstmrt_stream_create(m, 1, &st) == LSTMRT_STATUS_OK)) {
        float *x = make_inputs(&s, B, T), *y = new_floats(B * T * 5), *ys = new_floats(T * 5), h[5];
        CHECK(lstmrt_model_predict(m, x, B, T, NULL, NULL, y) == LSTMRT_STATUS_OK);
        for (int b = 0; b < B; b++) {
            lstmrt_stream_reset(st);
            CHECK(lstmrt_stream_run(st, x + (int64_t)b * T * 4, T, ys) == LSTMRT_STATUS_OK);
            memcpy(h, ys + (T - 1) * 5, sizeof h); /* the stream ignores final_only: its last output is final h */
            for (int t = 0; t < T; t++)
                if (!CHECK(max_abs_diff(y + ((int64_t)b * T + t) * 5, h, 5) <= SAME_TOL)) {
                    printf("  sequence %d, first wrong step %d of %d\n", b, t, T);
                    break;
                }
        }
    }
    lstmrt_stream_free(st);
    lstmrt_model_free(m);
    arena_reset();
}

/* NaN in one sequence stays in that sequence; huge inputs saturate instead of overflowing. */
void test_special_values(void)
{
    static const int models[] = {0, 1, 3, 5, 6, 9, 17};
    enum { B = 3, T = 20 };
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        spec s;
        lstmrt_model_t *m = open_spec(models[k], &s);
        if (!m)
            continue;
        const int I = spec_in(&s), O = spec_out(&s);
        float *x = make_inputs(&s, B, T), *clean = new_floats(B * T * O), *y = new_floats(B * T * O);
        CHECK(lstmrt_model_predict(m, x, B, T, NULL, NULL, clean) == LSTMRT_STATUS_OK);
        x[(5 * I) + I - 1] = NAN; /* sequence 0, step 5 */
        CHECK(lstmrt_model_predict(m, x, B, T, NULL, NULL, y) == LSTMRT_STATUS_OK);
        CHECK(same_bits(y, clean, 5 * O));                           /* before the NaN */
        CHECK(isnan(y[5 * O]) && isnan(y[(T - 1) * O + O - 1]));     /* it reaches the rest of sequence 0 */
        CHECK(same_bits(y + T * O, clean + T * O, (B - 1) * T * O)); /* and nothing else */
        for (int64_t i = 0; i < (int64_t)B * T * I; i++)
            x[i] = (i % 3 == 0 ? -1e30f : i % 3 == 1 ? 1e30f : -0.0f);
        CHECK(lstmrt_model_predict(m, x, B, T, NULL, NULL, y) == LSTMRT_STATUS_OK);
        int bounded = 1;
        const int last_recurrent = is_recurrent(s.layers[s.n - 1].kind) && !s.layers[s.n - 1].proj_size;
        for (int64_t i = 0; i < (int64_t)B * T * O; i++)
            bounded &= isfinite(y[i]) && (!last_recurrent || fabsf(y[i]) <= 1.0f);
        CHECK(bounded);
        lstmrt_model_free(m);
        arena_reset();
    }
}

/* float32 output vs the float64 reference: NaN where due, else the reference rounded to float, or within a few ulps
 * (relative) or 1e-7 (absolute, for results that cancel near 0 in float, as x - tanh x does) */
static int act_matches(float got, double want)
{
    if (isnan(want))
        return isnan(got);
    const double err = fabs((double)got - want);
    return got == (float)want || err <= 1e-6 * fabs(want) || err <= 1e-7;
}

/* Every element-wise activation through an activation layer, at the values where formulas break: ±0, ±inf, NaN,
 * large |x| (where x^2 overflows float: squareplus), tiny and subnormal x, the kinks of the piecewise ones (±0.7 is
 * a shrink's lambda, ±1 sparse_plus's and hard_tanh's) and the ends of exp's range. The activations with a parameter
 * at their catalogue values, Keras's default and the edges validation allows; those from before them for |x| <= 1e30
 * only, for the reference of the models that use them (their limits at ±inf are not specified). */
void test_activation_special_values(void)
{
    static const float xs[] = {0.0f,   -0.0f,   INFINITY, -INFINITY, NAN,    1e30f,  -1e30f, FLT_MAX, -FLT_MAX,
                               1e-30f, -1e-30f, 1e-45f,   -1e-45f,   0.5f,   -0.5f,  0.7f,   -0.7f,   1.0f,
                               -1.0f,  3.0f,    -3.0f,    20.0f,     -20.0f, 100.0f, -100.0f};
    enum { N = sizeof xs / sizeof xs[0] };
    static const struct {
        lstmrt_activation a;
        float alpha;
    } acts[] = {
        {LSTMRT_ACT_LEAKY_RELU, 0.01f},    {LSTMRT_ACT_LEAKY_RELU, -0.5f}, {LSTMRT_ACT_LEAKY_RELU, 0.2f},
        {LSTMRT_ACT_CELU, 0.5f},           {LSTMRT_ACT_CELU, -2.0f},       {LSTMRT_ACT_CELU, 1.0f},
        {LSTMRT_ACT_CELU, 1e-30f},         {LSTMRT_ACT_HARD_SHRINK, 0.0f}, {LSTMRT_ACT_HARD_SHRINK, 0.7f},
        {LSTMRT_ACT_HARD_SHRINK, FLT_MAX}, {LSTMRT_ACT_SOFT_SHRINK, 0.0f}, {LSTMRT_ACT_SOFT_SHRINK, 0.7f},
        {LSTMRT_ACT_SOFT_SHRINK, FLT_MAX}, {LSTMRT_ACT_SQUAREPLUS, 0.0f},  {LSTMRT_ACT_SQUAREPLUS, 4.0f},
        {LSTMRT_ACT_SQUAREPLUS, FLT_MAX},  {LSTMRT_ACT_HARD_TANH, 0.0f},   {LSTMRT_ACT_TANH_SHRINK, 0.0f},
        {LSTMRT_ACT_LOG_SIGMOID, 0.0f},    {LSTMRT_ACT_SPARSE_PLUS, 0.0f}, {LSTMRT_ACT_SPARSE_SIGMOID, 0.0f},
    };
    const int older = LSTMRT_ACT_LOG_SOFTMAX; /* the element-wise activations before it */
    for (int k = 0; k < older + (int)(sizeof acts / sizeof acts[0]); k++) {
        const lstmrt_activation a = k < older ? (lstmrt_activation)k : acts[k - older].a;
        const float alpha = k < older ? 0.0f : acts[k - older].alpha;
        if (a == LSTMRT_ACT_SOFTMAX)
            continue;
        spec s;
        char name[64];
        snprintf(name, sizeof name, "activation %d (%g) special values", (int)a, (double)alpha);
        start_spec(&s, 90, name);
        set_act(push(&s, LSTMRT_LAYER_ACTIVATION, N, 0), 0, a, alpha);
        lstmrt_model_t *m = create_model(&s);
        if (!m)
            continue;
        float y[N];
        double want[N];
        CHECK(lstmrt_model_predict(m, xs, 1, 1, NULL, NULL, y) == LSTMRT_STATUS_OK);
        ref_predict(&s, xs, 1, 1, NULL, NULL, want);
        for (int i = 0; i < N; i++) {
            if (k < older && !(fabsf(xs[i]) <= 1e30f))
                continue;
            if (!CHECK(act_matches(y[i], want[i])))
                printf("  x = %g: got %.9g, want %.17g\n", (double)xs[i], (double)y[i], want[i]);
        }
        CHECK(isnan(y[4]));             /* NaN in, NaN out */
        if (a == LSTMRT_ACT_SQUAREPLUS) /* 0 at -inf (not the NaN of -inf + inf), x where x^2 overflows float */
            CHECK(y[3] == 0.0f && y[5] == xs[5] && y[7] == xs[7]);
        lstmrt_model_free(m);
        arena_reset();
    }
}

/* PReLU at special values against its definition, bit for bit, each slope at its own feature: x >= 0 returns x itself
 * (-0.0 stays -0.0), x < 0 the float product slope * x (-inf with slope 0 is NaN), NaN stays NaN. A denormal x counts
 * as ±0 in the flush-to-zero mode of the calls (docs/kernels.md): it comes back as it is, or as the product where
 * that mode does not exist. A stream's steps compute the same bits. */
void test_prelu_special_values(void)
{
    static const float xs[] = {0.0f,   -0.0f,   INFINITY, -INFINITY, NAN,     1e30f, -1e30f, FLT_MAX, -FLT_MAX,
                               1e-30f, -1e-30f, 1e-45f,   -1e-45f,   -3e-39f, 0.5f,  -0.5f,  -3.0f,   20.0f};
    static const float slopes[] = {0.25f, -0.5f, 0.0f, -0.0f, 1.0f, 1e-3f, -3.0f, 1e20f, INFINITY, -INFINITY, NAN};
    enum { T = sizeof xs / sizeof xs[0], F = sizeof slopes / sizeof slopes[0] };
    spec s;
    start_spec(&s, 91, "prelu special values");
    push(&s, LSTMRT_LAYER_PRELU, F, 0)->weights[0].weight_ih = slopes;
    lstmrt_model_t *m = create_model(&s);
    lstmrt_stream_t *st = NULL;
    if (m && CHECK(lstmrt_stream_create(m, 1, &st) == LSTMRT_STATUS_OK)) {
        float x[T * F], y[T * F], step[F];
        for (int i = 0; i < T * F; i++)
            x[i] = xs[i / F];
        CHECK(lstmrt_model_predict(m, x, 1, T, NULL, NULL, y) == LSTMRT_STATUS_OK);
        for (int t = 0; t < T; t++) {
            CHECK(lstmrt_stream_step(st, x + t * F, NULL, step) == LSTMRT_STATUS_OK && same_bits(step, y + t * F, F));
            for (int f = 0; f < F; f++) {
                const float v = xs[t], got = y[t * F + f], product = slopes[f] * v;
                const int itself = same_bits(&got, &v, 1), denormal = v != 0.0f && fabsf(v) < FLT_MIN;
                int ok;
                if (isnan(v))
                    ok = isnan(got);
                else if (v >= 0.0f || (denormal && itself))
                    ok = itself;
                else
                    ok = isnan(product) ? isnan(got) : same_bits(&got, &product, 1);
                if (!CHECK(ok))
                    printf("  x = %g, slope %g: got %g\n", (double)v, (double)slopes[f], (double)got);
            }
        }
    }
    lstmrt_stream_free(st);
    lstmrt_model_free(m);
    arena_reset();
}
