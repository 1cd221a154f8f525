/*
 * The C library's own tests, no Python: every layer kind against a small double-precision reference written
 * from the equations (docs/math.md, lstmrt.h), the streaming invariants, and every error path.
 *
 *   test_lstmrt              all tests; closing line "N passed, M failed"; exit status 1 on any failure
 *   test_lstmrt --cycles N   N rounds of create / step / run / copy / predict / free over every model kind, plus
 *                            failing calls: the workload `make valgrind` checks for leaks and invalid accesses
 *
 * No framework: a test case is a function; CHECK records a failure with its line and the current context and
 * goes on, so one run reports every broken invariant.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h" /* one test drives forward_layers directly */
#include "lstmrt.h"
#include "recurrent.h" /* the sweep policy */
#include "team.h"      /* teams: the barrier itself */

/* float32 runtime vs float64 reference, sizes up to 33 and 300 steps: the engine issue's contract. */
#define REF_TOL 1e-5
/* Same computation, different batch / block shapes (stream vs predict): kernels may take other tails or
 * contract differently, so allow a few ulps of O(1) values instead of bitwise equality. */
#define SAME_TOL 1e-6
#define MAX_LAYERS 6

/* ------------------------------------------------------------------------------------------------------------ */
/* Harness                                                                                                      */

static int cases_passed, cases_failed, case_failures;
static long checks_run;
static const char *case_name = "";
static char context[160]; /* which model / variant the current checks are about */

static int check_(int ok, int line, const char *expr)
{
    checks_run++;
    if (!ok) {
        case_failures++;
        if (case_failures <= 20)
            printf("FAIL %s [%s] line %d: %s\n", case_name, context, line, expr);
    }
    return ok;
}
#define CHECK(cond) check_((cond) ? 1 : 0, __LINE__, #cond)

static void run_case(void (*fn)(void), const char *name)
{
    case_name = name;
    case_failures = 0;
    context[0] = '\0';
    fn();
    if (case_failures == 0)
        cases_passed++;
    else {
        cases_failed++;
        printf("  %s: %d failed check(s)\n", name, case_failures);
    }
}
#define RUN(fn) run_case(fn, #fn)

/* Every failing call: the expected status and a message for this thread. */
static int expect_status(lstmrt_status got, lstmrt_status want, int line, const char *what)
{
    const char *msg = lstmrt_last_error();
    const int ok = got == want && msg != NULL && msg[0] != '\0';
    checks_run++;
    if (!ok) {
        case_failures++;
        printf("FAIL %s [%s] line %d: %s returned %d (%s), want %d, last_error \"%s\"\n", case_name, context, line,
               what, (int)got, lstmrt_status_string(got), (int)want, msg ? msg : "(null)");
    }
    return ok;
}
#define EXPECT_FAIL(call, want) expect_status((call), (want), __LINE__, #call)
#define INVALID LSTMRT_STATUS_INVALID_ARGUMENT

/* Scratch owned by the current test: weights, inputs, outputs. Freed between models. */
#define ARENA_MAX 65536
static void *arena[ARENA_MAX];
static int arena_len;

static void *arena_alloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || arena_len == ARENA_MAX) {
        fprintf(stderr, "test arena: out of memory\n");
        exit(2);
    }
    arena[arena_len++] = p;
    return p;
}
static void arena_reset(void)
{
    while (arena_len > 0)
        free(arena[--arena_len]);
}
static float *new_floats(int64_t n)
{
    return arena_alloc((size_t)n * sizeof(float));
}
static double *new_doubles(int64_t n)
{
    return arena_alloc((size_t)n * sizeof(double));
}

/* xorshift64*: fixed seeds, identical on every platform. */
static uint64_t rng_state = 1;
static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
}
static double rng_unit(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}
static float *random_floats(int64_t n, double scale)
{
    float *p = new_floats(n);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((2.0 * rng_unit() - 1.0) * scale);
    return p;
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= worst)) /* NaN counts as infinitely wrong */
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}
static int same_bits(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Model specs: layer descriptors with random weights                                                           */

typedef struct spec {
    char name[80];
    int n;
    lstmrt_layer_desc layers[MAX_LAYERS];
    uint8_t peephole[MAX_LAYERS];
    uint8_t no_bias[MAX_LAYERS];
    double scale; /* weight range: scale / sqrt(fan-in) */
} spec;

static int gate_count(lstmrt_layer_kind k)
{
    return k == LSTMRT_LAYER_LSTM ? 4 : k == LSTMRT_LAYER_GRU ? 3 : 1;
}
static int is_recurrent(lstmrt_layer_kind k)
{
    return k <= LSTMRT_LAYER_RNN;
}
static int state_h(const lstmrt_layer_desc *d)
{
    return d->proj_size > 0 ? d->proj_size : d->hidden_size;
}

static int layer_out(const lstmrt_layer_desc *d)
{
    switch (d->kind) {
    case LSTMRT_LAYER_ACTIVATION:
    case LSTMRT_LAYER_AFFINE: return d->input_size;
    case LSTMRT_LAYER_DENSE:
    case LSTMRT_LAYER_EMBEDDING: return d->hidden_size;
    default: return d->num_directions == 2 && d->merge_mode == LSTMRT_MERGE_CONCAT ? 2 * state_h(d) : state_h(d);
    }
}

static lstmrt_layer_desc *push(spec *s, lstmrt_layer_kind kind, int in, int hidden)
{
    lstmrt_layer_desc *d = &s->layers[s->n++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->input_size = in;
    d->hidden_size = hidden;
    d->num_directions = 1;
    d->activations[0] = kind == LSTMRT_LAYER_RNN ? LSTMRT_ACT_TANH
                        : is_recurrent(kind)     ? LSTMRT_ACT_SIGMOID
                                                 : LSTMRT_ACT_LINEAR;
    d->activations[1] = LSTMRT_ACT_TANH;
    d->activations[2] = LSTMRT_ACT_TANH;
    d->linear_before_reset = kind == LSTMRT_LAYER_GRU;
    return d;
}

/* Random weights for every layer, once the options that shape them (directions, projection) are set. */
static void add_weights(spec *s)
{
    for (int l = 0; l < s->n; l++) {
        lstmrt_layer_desc *d = &s->layers[l];
        const int I = d->input_size, H = d->hidden_size, Hr = state_h(d), G = gate_count(d->kind) * H;
        const int bias = !s->no_bias[l];
        for (int dir = 0; dir < d->num_directions; dir++) {
            lstmrt_direction_weights *w = &d->weights[dir];
            const double a = s->scale / sqrt((double)(I + (is_recurrent(d->kind) ? Hr : 0)));
            switch (d->kind) {
            case LSTMRT_LAYER_DENSE:
                w->weight_ih = random_floats((int64_t)H * I, a);
                w->bias_ih = bias ? random_floats(H, 0.5) : NULL;
                break;
            case LSTMRT_LAYER_AFFINE:
                w->weight_ih = random_floats(I, 2.0);
                w->bias_ih = random_floats(I, 1.0);
                break;
            case LSTMRT_LAYER_EMBEDDING: w->weight_ih = random_floats((int64_t)d->num_embeddings * H, 1.0); break;
            case LSTMRT_LAYER_ACTIVATION: break;
            default:
                w->weight_ih = random_floats((int64_t)G * I, a);
                w->weight_hh = random_floats((int64_t)G * Hr, a);
                w->bias_ih = bias ? random_floats(G, 0.5) : NULL;
                w->bias_hh = bias ? random_floats(G, 0.5) : NULL;
                if (d->kind == LSTMRT_LAYER_LSTM && s->peephole[l])
                    w->weight_peephole = random_floats(3 * H, 0.5);
                if (d->proj_size > 0)
                    w->weight_proj = random_floats((int64_t)d->proj_size * H, 1.0 / sqrt((double)H));
            }
        }
    }
}

/* An empty spec at the catalogue's weight scale, its random numbers from `seed`. */
static void blank_spec(spec *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->scale = 1.5;
    rng_seed(seed);
}

/* A spec made by a test rather than by make_spec: it names itself and the checks that follow (context). */
static void start_spec(spec *s, uint64_t seed, const char *name)
{
    blank_spec(s, seed);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(context, sizeof context, "%s", name);
}

enum { NUM_SPECS = 21 };

/* The catalogue: every layer kind and option, at awkward sizes (1, 7, 17, 33). */
static void make_spec(int which, spec *s)
{
    blank_spec(s, 1000 + (uint64_t)which);
    lstmrt_layer_desc *d;
    const char *name = "?";
    switch (which) {
    case 0:
        name = "lstm 7-17";
        push(s, LSTMRT_LAYER_LSTM, 7, 17);
        break;
    case 1:
        name = "lstm 7-17 proj 5";
        push(s, LSTMRT_LAYER_LSTM, 7, 17)->proj_size = 5;
        break;
    case 2:
        name = "lstm 5-7 peephole";
        push(s, LSTMRT_LAYER_LSTM, 5, 7);
        s->peephole[0] = 1;
        break;
    case 3:
        name = "lstm 4-6 clip 0.5 + peephole";
        push(s, LSTMRT_LAYER_LSTM, 4, 6)->cell_clip = 0.5f;
        s->peephole[0] = 1;
        s->scale = 4.0; /* pre-activations well beyond the clip */
        break;
    case 4:
        name = "lstm 3-8 hard_sigmoid/elu/softsign, hold masked";
        d = push(s, LSTMRT_LAYER_LSTM, 3, 8);
        d->activations[0] = LSTMRT_ACT_HARD_SIGMOID;
        d->activations[1] = LSTMRT_ACT_ELU;
        d->activations[2] = LSTMRT_ACT_SOFTSIGN;
        d->hold_masked_output = 1;
        break;
    case 5:
        name = "gru 7-17 reset after";
        push(s, LSTMRT_LAYER_GRU, 7, 17);
        break;
    case 6:
        name = "gru 7-17 reset before";
        push(s, LSTMRT_LAYER_GRU, 7, 17)->linear_before_reset = 0;
        break;
    case 7:
        name = "gru 1-1 reset after, hard_sigmoid/relu";
        d = push(s, LSTMRT_LAYER_GRU, 1, 1);
        d->activations[0] = LSTMRT_ACT_HARD_SIGMOID;
        d->activations[1] = LSTMRT_ACT_RELU;
        break;
    case 8:
        name = "gru 6-5 reset before, softsign, hold masked, no bias";
        d = push(s, LSTMRT_LAYER_GRU, 6, 5);
        d->linear_before_reset = 0;
        d->activations[1] = LSTMRT_ACT_SOFTSIGN;
        d->hold_masked_output = 1;
        s->no_bias[0] = 1;
        break;
    case 9:
        name = "rnn 7-33 tanh";
        push(s, LSTMRT_LAYER_RNN, 7, 33);
        break;
    case 10:
        name = "rnn 1-1 relu, no bias";
        push(s, LSTMRT_LAYER_RNN, 1, 1)->activations[0] = LSTMRT_ACT_RELU;
        s->no_bias[0] = 1;
        break;
    case 11:
        name = "dense 7-5 relu + dense 5-3 softmax (no bias)";
        push(s, LSTMRT_LAYER_DENSE, 7, 5)->activations[0] = LSTMRT_ACT_RELU;
        push(s, LSTMRT_LAYER_DENSE, 5, 3)->activations[0] = LSTMRT_ACT_SOFTMAX;
        s->no_bias[1] = 1;
        break;
    case 12:
        name = "bi-lstm 6-7 concat + dense 14-2";
        push(s, LSTMRT_LAYER_LSTM, 6, 7)->num_directions = 2;
        push(s, LSTMRT_LAYER_DENSE, 14, 2);
        break;
    case 13:
        name = "bi-gru 5-9 sum, reset before";
        d = push(s, LSTMRT_LAYER_GRU, 5, 9);
        d->num_directions = 2;
        d->merge_mode = LSTMRT_MERGE_SUM;
        d->linear_before_reset = 0;
        break;
    case 14:
        name = "bi-lstm 3-6 proj 4 mul + bi-rnn 4-5 ave";
        d = push(s, LSTMRT_LAYER_LSTM, 3, 6);
        d->num_directions = 2;
        d->merge_mode = LSTMRT_MERGE_MUL;
        d->proj_size = 4;
        d = push(s, LSTMRT_LAYER_RNN, 4, 5);
        d->num_directions = 2;
        d->merge_mode = LSTMRT_MERGE_AVE;
        break;
    case 15:
        name = "embedding 11x6 + lstm 6-9 + dense 9-4 log_softmax";
        push(s, LSTMRT_LAYER_EMBEDDING, 1, 6)->num_embeddings = 11;
        push(s, LSTMRT_LAYER_LSTM, 6, 9);
        push(s, LSTMRT_LAYER_DENSE, 9, 4)->activations[0] = LSTMRT_ACT_LOG_SOFTMAX;
        break;
    case 16:
        name = "affine 7 + gru 7-16 + activation tanh + rnn 16-3";
        push(s, LSTMRT_LAYER_AFFINE, 7, 0);
        push(s, LSTMRT_LAYER_GRU, 7, 16);
        push(s, LSTMRT_LAYER_ACTIVATION, 16, 0)->activations[0] = LSTMRT_ACT_TANH;
        push(s, LSTMRT_LAYER_RNN, 16, 3);
        break;
    case 17:
        name = "lstm 3-33 proj 17 + lstm 17-33 + dense 33-1";
        push(s, LSTMRT_LAYER_LSTM, 3, 33)->proj_size = 17;
        push(s, LSTMRT_LAYER_LSTM, 17, 33);
        push(s, LSTMRT_LAYER_DENSE, 33, 1);
        break;
    case 18:
        name = "gru 5-8 go_backwards + lstm 8-6 final only";
        push(s, LSTMRT_LAYER_GRU, 5, 8)->go_backwards = 1;
        push(s, LSTMRT_LAYER_LSTM, 8, 6)->final_only = 1;
        break;
    case 19:
        name = "lstm 4-5 final only + gru 5-3"; /* causal: predict runs it in blocks */
        push(s, LSTMRT_LAYER_LSTM, 4, 5)->final_only = 1;
        push(s, LSTMRT_LAYER_GRU, 5, 3);
        break;
    case 20:
        name = "bi-lstm 4-5 concat final only + dense 10-3";
        d = push(s, LSTMRT_LAYER_LSTM, 4, 5);
        d->num_directions = 2;
        d->final_only = 1;
        push(s, LSTMRT_LAYER_DENSE, 10, 3);
        break;
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    add_weights(s);
}

static int spec_is_tokens(const spec *s)
{
    return s->layers[0].kind == LSTMRT_LAYER_EMBEDDING;
}
static int spec_in(const spec *s)
{
    return s->layers[0].input_size;
}
static int spec_out(const spec *s)
{
    return layer_out(&s->layers[s->n - 1]);
}

/* Inputs: uniform [-1, 1], or token ids for an embedding. */
static float *make_inputs(const spec *s, int64_t batch, int64_t steps)
{
    const int64_t n = batch * steps * spec_in(s);
    float *x = new_floats(n);
    for (int64_t i = 0; i < n; i++)
        x[i] = spec_is_tokens(s) ? (float)(int)(rng_unit() * s->layers[0].num_embeddings)
                                 : (float)(2.0 * rng_unit() - 1.0);
    return x;
}

static lstmrt_model_t *create_model(const spec *s)
{
    lstmrt_model_t *m = NULL;
    const lstmrt_status st = lstmrt_model_create(s->layers, s->n, &m);
    if (!CHECK(st == LSTMRT_STATUS_OK && m != NULL))
        printf("  model_create(%s): %s\n", s->name, lstmrt_last_error());
    return st == LSTMRT_STATUS_OK ? m : NULL;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Reference: float64, one sequence at a time, straight from the equations                                      */

static double ref_act(lstmrt_activation a, double v)
{
    switch (a) {
    case LSTMRT_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case LSTMRT_ACT_TANH: return tanh(v);
    case LSTMRT_ACT_RELU: return v > 0.0 ? v : 0.0;
    case LSTMRT_ACT_LINEAR: return v;
    case LSTMRT_ACT_HARD_SIGMOID: return fmin(1.0, fmax(0.0, 0.2 * v + 0.5));
    case LSTMRT_ACT_ELU: return v > 0.0 ? v : expm1(v);
    case LSTMRT_ACT_SOFTSIGN: return v / (1.0 + fabs(v));
    default: return NAN; /* not in the reference: fails the comparison loudly */
    }
}

static void ref_act_row(lstmrt_activation a, double *v, int n)
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
        v[i] = ref_act(a, v[i]);
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
                gi = ref_act(d->activations[0], clipped(gi, clip));
                gf = ref_act(d->activations[0], clipped(gf, clip));
                gg = ref_act(d->activations[1], clipped(gg, clip));
                c[j] = gf * c[j] + gi * gg;
                if (pp)
                    go += pp[2 * H + j] * c[j];
                go = ref_act(d->activations[0], clipped(go, clip));
                m[j] = go * ref_act(d->activations[2], c[j]);
            }
            for (int j = 0; j < Hr; j++)
                h[j] = P ? dot(w->weight_proj + (int64_t)j * H, m, H) : m[j];
        } else if (d->kind == LSTMRT_LAYER_GRU) {
            /* g: r z n input parts; gh: r z n recurrent parts (gh_n = W_hn h + b_hn) */
            for (int j = 0; j < 2 * H; j++)
                g[j] = ref_act(d->activations[0], g[j] + gh[j]); /* r, z */
            for (int j = 0; j < H; j++)
                rh[j] = g[j] * h[j];
            for (int j = 0; j < H; j++) {
                const float *w_hn = w->weight_hh + (int64_t)(2 * H + j) * H;
                const double hn =
                    d->linear_before_reset ? g[j] * gh[2 * H + j] : dot(w_hn, rh, H) + bias_at(w->bias_hh, 2 * H + j);
                m[j] = ref_act(d->activations[1], g[2 * H + j] + hn);
            }
            for (int j = 0; j < H; j++)
                h[j] = (1.0 - g[H + j]) * m[j] + g[H + j] * h[j];
        } else {
            for (int j = 0; j < H; j++)
                h[j] = ref_act(d->activations[0], g[j] + gh[j]);
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
            ref_act_row(d->activations[0], y + (int64_t)t * O, O);
        }
        return;
    case LSTMRT_LAYER_ACTIVATION:
        for (int t = 0; t < T; t++) {
            memcpy(y + (int64_t)t * O, x + (int64_t)t * I, (size_t)O * sizeof(double));
            ref_act_row(d->activations[0], y + (int64_t)t * O, O);
        }
        return;
    case LSTMRT_LAYER_AFFINE:
        for (int t = 0; t < T; t++)
            for (int j = 0; j < O; j++)
                y[t * O + j] = x[t * I + j] * w->weight_ih[j] + w->bias_ih[j];
        return;
    case LSTMRT_LAYER_EMBEDDING:
        for (int t = 0; t < T; t++)
            for (int j = 0; j < O; j++)
                y[t * O + j] = w->weight_ih[(int64_t)x[t] * O + j];
        return;
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

/* The model over (batch, steps): y (batch, steps, O) in double. */
static void ref_predict(const spec *s, const float *x, int batch, int steps, const int32_t *lengths,
                        const uint8_t *mask, double *y)
{
    const int I = spec_in(s), O = spec_out(s);
    uint8_t *active = arena_alloc((size_t)steps);
    for (int b = 0; b < batch; b++) {
        for (int t = 0; t < steps; t++)
            active[t] = (!lengths || t < lengths[b]) && (!mask || mask[(int64_t)b * steps + t]);
        double *in = new_doubles((int64_t)steps * I);
        for (int64_t i = 0; i < (int64_t)steps * I; i++)
            in[i] = x[(int64_t)b * steps * I + i];
        for (int l = 0; l < s->n; l++) {
            double *out = new_doubles((int64_t)steps * layer_out(&s->layers[l]));
            ref_layer(&s->layers[l], steps, lengths ? lengths[b] : steps, in, active, out);
            in = out;
        }
        for (int t = 0; t < steps; t++)
            for (int j = 0; j < O; j++)
                y[((int64_t)b * steps + t) * O + j] = (lengths && t >= lengths[b]) ? 0.0 : in[(int64_t)t * O + j];
    }
}

static double max_err_ref(const float *got, const double *want, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - want[i]);
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Model tests                                                                                                   */

enum { PB = 3, PT = 100 }; /* predict shape: batch 3 gives 85-step blocks, so 100 steps cross a block boundary */

static void test_model_properties(void)
{
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        make_spec(which, &s);
        snprintf(context, sizeof context, "%s", s.name);
        lstmrt_model_t *m = create_model(&s);
        if (m) {
            int64_t state = 0;
            int bidi = 0;
            for (int l = 0; l < s.n; l++) {
                const lstmrt_layer_desc *d = &s.layers[l];
                if (is_recurrent(d->kind)) {
                    state += d->num_directions * (state_h(d) + (d->kind == LSTMRT_LAYER_LSTM ? d->hidden_size : 0));
                    bidi |= d->num_directions == 2 || d->go_backwards;
                }
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
static void test_predict_vs_reference(void)
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

/* Streaming invariants on every causal model. `twin` is the same model with final_only cleared (a stream
 * ignores final_only: each step's output is the one for the sequence ending there): predict runs on it. */
static void stream_invariants(const spec *s, lstmrt_model_t *m, lstmrt_model_t *twin)
{
    const int I = spec_in(s), O = spec_out(s);
    const int64_t S = lstmrt_model_state_size(m);
    float *x = make_inputs(s, PB, PT), *want = new_floats((int64_t)PB * PT * O);
    float *got = new_floats((int64_t)PB * PT * O);
    float *yt = new_floats((int64_t)PB * O), *xt = new_floats((int64_t)PB * I);
    CHECK(lstmrt_model_predict(twin, x, PB, PT, NULL, NULL, want) == LSTMRT_STATUS_OK);

    /* 1. Single streams, step by step == predict. */
    snprintf(context, sizeof context, "%s, single-stream steps", s->name);
    lstmrt_stream_t *single[PB] = {NULL, NULL, NULL};
    for (int b = 0; b < PB; b++) {
        CHECK(lstmrt_stream_create(m, 1, &single[b]) == LSTMRT_STATUS_OK);
        if (!single[b])
            return;
        CHECK(lstmrt_stream_batch(single[b]) == 1);
        for (int t = 0; t < PT; t++)
            CHECK(lstmrt_stream_step(single[b], x + ((int64_t)b * PT + t) * I, NULL, got + ((int64_t)b * PT + t) * O) ==
                  LSTMRT_STATUS_OK);
    }
    CHECK(max_abs_diff(got, want, (int64_t)PB * PT * O) <= SAME_TOL);

    /* 2. A batched stream stepped together == the single streams (outputs and final state). */
    snprintf(context, sizeof context, "%s, batched stream steps", s->name);
    lstmrt_stream_t *batched = NULL;
    CHECK(lstmrt_stream_create(m, PB, &batched) == LSTMRT_STATUS_OK);
    if (!batched)
        return;
    CHECK(lstmrt_stream_batch(batched) == PB);
    for (int t = 0; t < PT; t++) {
        for (int b = 0; b < PB; b++)
            memcpy(xt + b * I, x + ((int64_t)b * PT + t) * I, (size_t)I * sizeof(float));
        CHECK(lstmrt_stream_step(batched, xt, NULL, yt) == LSTMRT_STATUS_OK);
        for (int b = 0; b < PB; b++)
            memcpy(got + ((int64_t)b * PT + t) * O, yt + b * O, (size_t)O * sizeof(float));
    }
    CHECK(max_abs_diff(got, want, (int64_t)PB * PT * O) <= SAME_TOL);
    float *st_b = new_floats(PB * S + 1), *st_1 = new_floats(S + 1);
    CHECK(lstmrt_stream_get_state(batched, st_b) == LSTMRT_STATUS_OK);
    /* batched state is per layer and direction: h (batch, Hr) [then c (batch, H)]; compare block by block */
    int64_t off = 0;
    for (int l = 0; l < s->n; l++) {
        const lstmrt_layer_desc *d = &s->layers[l];
        if (!is_recurrent(d->kind))
            continue;
        const int parts = d->kind == LSTMRT_LAYER_LSTM ? 2 : 1;
        for (int part = 0; part < parts; part++) {
            const int n = part == 0 ? state_h(d) : d->hidden_size;
            for (int b = 0; b < PB; b++) {
                CHECK(lstmrt_stream_get_state(single[b], st_1) == LSTMRT_STATUS_OK);
                CHECK(max_abs_diff(st_b + off * PB + (int64_t)b * n, st_1 + off, n) <= SAME_TOL);
            }
            off += n;
        }
    }
    CHECK(off == S);

    /* 3. run in uneven chunks == predict (batched), and one long run across the stream's block size. */
    snprintf(context, sizeof context, "%s, run chunks", s->name);
    lstmrt_stream_reset(batched);
    static const int chunks[] = {1, 7, 13, 0, 79};
    int t0 = 0;
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        const int n = chunks[k];
        float *xc = new_floats((int64_t)PB * n * I + 1), *yc = new_floats((int64_t)PB * n * O + 1);
        for (int b = 0; b < PB; b++)
            memcpy(xc + (int64_t)b * n * I, x + ((int64_t)b * PT + t0) * I, (size_t)n * I * sizeof(float));
        CHECK(lstmrt_stream_run(batched, xc, n, yc) == LSTMRT_STATUS_OK);
        for (int b = 0; b < PB; b++)
            memcpy(got + ((int64_t)b * PT + t0) * O, yc + (int64_t)b * n * O, (size_t)n * O * sizeof(float));
        t0 += n;
    }
    CHECK(t0 == PT);
    CHECK(max_abs_diff(got, want, (int64_t)PB * PT * O) <= SAME_TOL);
    {
        enum { LT = 300 }; /* a batch-1 stream runs 256-step blocks */
        float *xl = make_inputs(s, 1, LT), *yl = new_floats((int64_t)LT * O), *wl = new_floats((int64_t)LT * O);
        CHECK(lstmrt_model_predict(twin, xl, 1, LT, NULL, NULL, wl) == LSTMRT_STATUS_OK);
        lstmrt_stream_reset(single[0]);
        CHECK(lstmrt_stream_run(single[0], xl, LT, yl) == LSTMRT_STATUS_OK);
        CHECK(max_abs_diff(yl, wl, (int64_t)LT * O) <= SAME_TOL);
    }

    /* 4. Stepping with `active` == predict with the same mask. */
    snprintf(context, sizeof context, "%s, active rows", s->name);
    uint8_t *mask = arena_alloc(PB * PT), act[PB];
    for (int i = 0; i < PB * PT; i++)
        mask[i] = rng_unit() > 0.3;
    CHECK(lstmrt_model_predict(twin, x, PB, PT, NULL, mask, want) == LSTMRT_STATUS_OK);
    lstmrt_stream_reset(batched);
    for (int t = 0; t < PT; t++) {
        for (int b = 0; b < PB; b++) {
            memcpy(xt + b * I, x + ((int64_t)b * PT + t) * I, (size_t)I * sizeof(float));
            act[b] = mask[b * PT + t];
        }
        CHECK(lstmrt_stream_step(batched, xt, act, yt) == LSTMRT_STATUS_OK);
        for (int b = 0; b < PB; b++)
            memcpy(got + ((int64_t)b * PT + t) * O, yt + b * O, (size_t)O * sizeof(float));
    }
    CHECK(max_abs_diff(got, want, (int64_t)PB * PT * O) <= SAME_TOL);

    /* 5. reset restores the zero state exactly; a rerun is bitwise identical. */
    snprintf(context, sizeof context, "%s, reset", s->name);
    float *first = new_floats((int64_t)PB * PT * O), *again = new_floats((int64_t)PB * PT * O);
    lstmrt_stream_reset(batched);
    CHECK(lstmrt_stream_run(batched, x, PT, first) == LSTMRT_STATUS_OK);
    lstmrt_stream_reset(batched);
    CHECK(lstmrt_stream_get_state(batched, st_b) == LSTMRT_STATUS_OK);
    int zero = 1;
    for (int64_t i = 0; i < PB * S; i++)
        zero &= st_b[i] == 0.0f && !signbit(st_b[i]);
    CHECK(zero);
    CHECK(lstmrt_stream_run(batched, x, PT, again) == LSTMRT_STATUS_OK);
    CHECK(same_bits(first, again, (int64_t)PB * PT * O));

    /* 6. get/set state round-trips: resuming from a saved state is bitwise the same continuation. */
    snprintf(context, sizeof context, "%s, state round trip", s->name);
    enum { K = 37 };
    float *x_head = new_floats((int64_t)PB * K * I + 1), *x_tail = new_floats((int64_t)PB * (PT - K) * I);
    float *y_head = new_floats((int64_t)PB * K * O + 1), *y1 = new_floats((int64_t)PB * (PT - K) * O);
    float *y2 = new_floats((int64_t)PB * (PT - K) * O), *saved = new_floats(PB * S + 1), *back = new_floats(PB * S + 1);
    for (int b = 0; b < PB; b++) {
        memcpy(x_head + (int64_t)b * K * I, x + (int64_t)b * PT * I, (size_t)K * I * sizeof(float));
        memcpy(x_tail + (int64_t)b * (PT - K) * I, x + ((int64_t)b * PT + K) * I, (size_t)(PT - K) * I * sizeof(float));
    }
    lstmrt_stream_reset(batched);
    CHECK(lstmrt_stream_run(batched, x_head, K, y_head) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_stream_get_state(batched, saved) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_stream_run(batched, x_tail, PT - K, y1) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_stream_set_state(batched, saved) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_stream_get_state(batched, back) == LSTMRT_STATUS_OK);
    CHECK(same_bits(saved, back, PB * S));
    CHECK(lstmrt_stream_run(batched, x_tail, PT - K, y2) == LSTMRT_STATUS_OK);
    CHECK(same_bits(y1, y2, (int64_t)PB * (PT - K) * O));
    lstmrt_stream_t *fresh = NULL;
    CHECK(lstmrt_stream_create(m, PB, &fresh) == LSTMRT_STATUS_OK);
    if (fresh) {
        CHECK(lstmrt_stream_set_state(fresh, saved) == LSTMRT_STATUS_OK);
        CHECK(lstmrt_stream_run(fresh, x_tail, PT - K, y2) == LSTMRT_STATUS_OK);
        CHECK(same_bits(y1, y2, (int64_t)PB * (PT - K) * O));
    }
    lstmrt_stream_free(fresh);

    /* 7. A copy carries the state and is independent: stepping or freeing the original leaves it alone. */
    snprintf(context, sizeof context, "%s, copy", s->name);
    lstmrt_stream_t *copy = NULL;
    CHECK(lstmrt_stream_set_state(batched, saved) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_stream_copy(batched, &copy) == LSTMRT_STATUS_OK);
    if (copy) {
        CHECK(lstmrt_stream_batch(copy) == PB);
        CHECK(lstmrt_stream_get_state(copy, back) == LSTMRT_STATUS_OK && same_bits(saved, back, PB * S));
        CHECK(lstmrt_stream_run(batched, x_head, K, y_head) == LSTMRT_STATUS_OK); /* original moves on */
        CHECK(lstmrt_stream_get_state(copy, back) == LSTMRT_STATUS_OK && same_bits(saved, back, PB * S));
        lstmrt_stream_free(batched);
        batched = NULL;
        CHECK(lstmrt_stream_run(copy, x_tail, PT - K, y2) == LSTMRT_STATUS_OK);
        CHECK(same_bits(y1, y2, (int64_t)PB * (PT - K) * O));
    }
    lstmrt_stream_free(copy);
    lstmrt_stream_free(batched);
    for (int b = 0; b < PB; b++)
        lstmrt_stream_free(single[b]);
}

static void test_stream_invariants(void)
{
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        make_spec(which, &s);
        snprintf(context, sizeof context, "%s", s.name);
        lstmrt_model_t *m = create_model(&s), *twin = NULL;
        for (int l = 0; l < s.n; l++)
            s.layers[l].final_only = 0;
        twin = create_model(&s);
        if (m && twin && !lstmrt_model_is_bidirectional(m))
            stream_invariants(&s, m, twin);
        lstmrt_model_free(twin);
        lstmrt_model_free(m);
        arena_reset();
    }
}

/* A wide batch (>= 256 rows) makes predict and streams work one step per block: the other blocking path. */
static void test_wide_batch(void)
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
static void test_lengths_match_unpadded(void)
{
    static const int models[] = {0, 5, 12, 13, 14, 18, 20};
    enum { T = 50 };
    static const int32_t lengths[3] = {T, 23, 1};
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        spec s;
        make_spec(models[k], &s);
        snprintf(context, sizeof context, "%s", s.name);
        lstmrt_model_t *m = create_model(&s);
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
static void test_final_only_long_sequence(void)
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
static void test_special_values(void)
{
    static const int models[] = {0, 1, 3, 5, 6, 9, 17};
    enum { B = 3, T = 20 };
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        spec s;
        make_spec(models[k], &s);
        snprintf(context, sizeof context, "%s", s.name);
        lstmrt_model_t *m = create_model(&s);
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

/* ------------------------------------------------------------------------------------------------------------ */
/* Error paths: the right status, a message, and no effect                                                      */

static void test_model_create_errors(void)
{
    spec ok;
    make_spec(0, &ok);                         /* lstm 7-17 */
    lstmrt_model_t *m = (lstmrt_model_t *)&ok; /* poison: must be overwritten with NULL */
    snprintf(context, sizeof context, "model_create");
    EXPECT_FAIL(lstmrt_model_create(ok.layers, 1, NULL), INVALID);
    EXPECT_FAIL(lstmrt_model_create(NULL, 1, &m), INVALID);
    CHECK(strstr(lstmrt_last_error(), "layers is NULL") != NULL);
    CHECK(m == NULL);
    EXPECT_FAIL(lstmrt_model_create(ok.layers, 0, &m), INVALID);
    EXPECT_FAIL(lstmrt_model_create(ok.layers, -3, &m), INVALID);
    EXPECT_FAIL(lstmrt_model_create(ok.layers, 5000, &m), INVALID);

    /* One broken field at a time, on otherwise valid layers. */
    enum { NCASES = 27 };
    for (int c = 0; c < NCASES; c++) {
        spec s = ok;
        lstmrt_layer_desc *d = &s.layers[0];
        const float dummy[4] = {0};
        switch (c) {
        case 0: d->kind = (lstmrt_layer_kind)99; break;
        case 1: d->kind = (lstmrt_layer_kind)-1; break;
        case 2: d->input_size = 0; break;
        case 3: d->input_size = (1 << 24) + 1; break;
        case 4: d->hidden_size = 0; break;
        case 5: d->hidden_size = -5; break;
        case 6: d->num_directions = 3; break;
        case 7: d->num_directions = 0; break;
        case 8: d->merge_mode = (lstmrt_merge_mode)9; break;
        case 9: d->proj_size = -1; break;
        case 10: d->proj_size = 3; break; /* no weight_proj */
        case 11: d->activations[1] = LSTMRT_ACT_COUNT; break;
        case 12: d->activations[2] = LSTMRT_ACT_SOFTMAX; break; /* not element-wise */
        case 13: d->activations[0] = (lstmrt_activation)-2; break;
        case 14: d->cell_clip = -1.0f; break;
        case 15: d->cell_clip = NAN; break;
        case 16: d->weights[0].weight_ih = NULL; break;
        case 17: d->weights[0].weight_hh = NULL; break;
        case 18:
            d->num_directions = 2;
            d->weights[1] = d->weights[0];
            d->go_backwards = 1;
            break;
        case 19: d->num_directions = 2; break; /* backward weights missing */
        case 20:
            d->kind = LSTMRT_LAYER_GRU;
            d->linear_before_reset = 2;
            break;
        case 21:
            d->kind = LSTMRT_LAYER_GRU;
            d->proj_size = 2;
            d->weights[0].weight_proj = dummy;
            break;
        case 22:
            d->kind = LSTMRT_LAYER_DENSE;
            d->num_directions = 2;
            break;
        case 23:
            d->kind = LSTMRT_LAYER_DENSE;
            d->weights[0].weight_ih = NULL;
            break;
        case 24:
            d->kind = LSTMRT_LAYER_DENSE;
            d->activations[0] = (lstmrt_activation)77;
            break;
        case 25:
            d->kind = LSTMRT_LAYER_ACTIVATION;
            d->activations[0] = LSTMRT_ACT_COUNT;
            break;
        case 26:
            d->kind = LSTMRT_LAYER_EMBEDDING;
            d->input_size = 1;
            d->num_embeddings = 0;
            break;
        }
        snprintf(context, sizeof context, "model_create broken field case %d", c);
        m = (lstmrt_model_t *)&ok;
        EXPECT_FAIL(lstmrt_model_create(s.layers, 1, &m), INVALID);
        CHECK(m == NULL);
    }

    /* Chains. */
    spec s;
    make_spec(17, &s); /* lstm 3-33 proj 17 + lstm 17-33 + dense 33-1 */
    snprintf(context, sizeof context, "model_create chain");
    s.layers[1].input_size = 33; /* the projection makes layer 0 output 17 */
    EXPECT_FAIL(lstmrt_model_create(s.layers, 3, &m), INVALID);
    CHECK(m == NULL && strstr(lstmrt_last_error(), "layer 1") != NULL);
    make_spec(12, &s); /* bi-lstm 6-7 concat (outputs 14) + dense 14-2 */
    s.layers[1].input_size = 7;
    EXPECT_FAIL(lstmrt_model_create(s.layers, 2, &m), INVALID);
    make_spec(15, &s); /* embedding first */
    {
        spec t = s;
        t.layers[0] = s.layers[1]; /* lstm 6-9 */
        t.layers[1] = s.layers[0]; /* embedding as layer 1 */
        t.layers[1].input_size = 9;
        EXPECT_FAIL(lstmrt_model_create(t.layers, 2, &m), INVALID);
        CHECK(m == NULL && strstr(lstmrt_last_error(), "embedding") != NULL);
    }
    s.layers[0].input_size = 2;
    EXPECT_FAIL(lstmrt_model_create(s.layers, 3, &m), INVALID);
    s.layers[0].input_size = 1;
    s.layers[0].weights[0].weight_ih = NULL;
    EXPECT_FAIL(lstmrt_model_create(s.layers, 3, &m), INVALID);
    CHECK(m == NULL);

    /* A success afterwards clears the message. */
    CHECK(lstmrt_model_create(ok.layers, 1, &m) == LSTMRT_STATUS_OK && m != NULL);
    CHECK(lstmrt_last_error()[0] == '\0');
    lstmrt_model_free(m);
    arena_reset();
}

static void test_out_of_memory(void)
{
    /* Layer 1 cannot be packed (4H x H with H = 2^22 floats: more than any address space), after layer 0 and
     * part of layer 1 were allocated: everything is released (ASan / valgrind see leaks) and *out is NULL. */
    spec s;
    memset(&s, 0, sizeof s);
    s.scale = 1.0;
    rng_seed(5);
    push(&s, LSTMRT_LAYER_GRU, 3, 8);
    add_weights(&s);
    lstmrt_layer_desc *big = push(&s, LSTMRT_LAYER_LSTM, 8, 1 << 22);
    const float dummy[1] = {0};
    big->weights[0].weight_ih = dummy; /* never read: the packing fails first */
    big->weights[0].weight_hh = dummy;
    snprintf(context, sizeof context, "model_create out of memory");
    lstmrt_model_t *m = (lstmrt_model_t *)&s;
    EXPECT_FAIL(lstmrt_model_create(s.layers, 2, &m), LSTMRT_STATUS_OUT_OF_MEMORY);
    CHECK(m == NULL);

    /* predict of a bidirectional model needs whole-sequence scratch: 2^39 rows cannot be allocated. */
    spec bi;
    make_spec(12, &bi);
    snprintf(context, sizeof context, "predict out of memory");
    m = create_model(&bi);
    if (m) {
        float x[6] = {0}, y[2] = {5.0f, 5.0f};
        EXPECT_FAIL(lstmrt_model_predict(m, x, (int64_t)1 << 20, (int64_t)1 << 19, NULL, NULL, y),
                    LSTMRT_STATUS_OUT_OF_MEMORY);
        CHECK(y[0] == 5.0f && y[1] == 5.0f);
    }
    lstmrt_model_free(m);

    /* The widest dense layer (2^24 features, zero weights: cheap to make). */
    memset(&s, 0, sizeof s);
    lstmrt_layer_desc *wide = push(&s, LSTMRT_LAYER_DENSE, 1, 1 << 24);
    wide->weights[0].weight_ih = new_floats(1 << 24);
    snprintf(context, sizeof context, "stream_create out of memory");
    m = create_model(&s);
    if (m) {
        /* A stream whose scratch cannot exist: 2^24 rows of 2^24 features. */
        lstmrt_stream_t *st = (lstmrt_stream_t *)&s;
        EXPECT_FAIL(lstmrt_stream_create(m, 1 << 24, &st), LSTMRT_STATUS_OUT_OF_MEMORY);
        CHECK(st == NULL);
        /* predict scratch of B rows x 3 buffers x 2^24 floats: for this B the byte count is a multiple of 2^64
         * plus ~340 MB. Computed modulo 2^64 it would be allocated and overrun; it must be OUT_OF_MEMORY. */
        snprintf(context, sizeof context, "predict scratch size wraps around");
        float x[1] = {0}, y[1] = {5.0f};
        EXPECT_FAIL(lstmrt_model_predict(m, x, INT64_C(183251919760), 1, NULL, NULL, y), LSTMRT_STATUS_OUT_OF_MEMORY);
        CHECK(y[0] == 5.0f);
    }
    lstmrt_model_free(m);

    /* On a 32-bit target, sizes a caller can ask for wrap size_t: Dense 1 -> 1024 -> 1 streamed with batch 2^20
     * needs 12.9 GB of scratch, 20 MB modulo 2^32. (On 64-bit the same stream is merely large.) */
    if (sizeof(size_t) < 8) {
        memset(&s, 0, sizeof s);
        push(&s, LSTMRT_LAYER_DENSE, 1, 1024)->weights[0].weight_ih = new_floats(1024);
        push(&s, LSTMRT_LAYER_DENSE, 1024, 1)->weights[0].weight_ih = new_floats(1024);
        snprintf(context, sizeof context, "stream scratch size wraps around (32-bit)");
        m = create_model(&s);
        if (m) {
            lstmrt_stream_t *st = (lstmrt_stream_t *)&s;
            EXPECT_FAIL(lstmrt_stream_create(m, 1 << 20, &st), LSTMRT_STATUS_OUT_OF_MEMORY);
            CHECK(st == NULL);
        }
        lstmrt_model_free(m);
    }
    arena_reset();
}

/* Token ids are validated before a call runs, but another thread may rewrite x while the call runs (Python
 * releases the GIL): the lookup itself must stay in bounds. forward_layers is driven directly with ids that the
 * public entry points would refuse. */
static void test_embedding_id_changed_during_call(void)
{
    spec s;
    memset(&s, 0, sizeof s);
    lstmrt_layer_desc *e = push(&s, LSTMRT_LAYER_EMBEDDING, 1, 3);
    e->num_embeddings = 4;
    float *table = new_floats(12);
    for (int i = 0; i < 12; i++)
        table[i] = (float)(i + 1);
    e->weights[0].weight_ih = table;
    snprintf(context, sizeof context, "embedding id changed during a call");
    lstmrt_model_t *m = create_model(&s);
    lstmrt_stream_t *st = NULL;
    if (m && CHECK(lstmrt_stream_create(m, 1, &st) == LSTMRT_STATUS_OK)) {
        const float ids[] = {2.0f, 4.0f, -1.0f, 1e6f, -1e30f, NAN, INFINITY};
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
            float x[1] = {ids[i]}, y[3] = {-7.0f, -7.0f, -7.0f};
            seq_view xv = {x, 1, 1}, yv = {y, 3, 3};
            forward_layers(m, &st->ws, 1, 1, xv, NULL, 1, st->state, yv, 0, NULL);
            for (int j = 0; j < 3; j++)
                CHECK(y[j] == (i == 0 ? table[6 + j] : 0.0f));
        }
    }
    lstmrt_stream_free(st);
    lstmrt_model_free(m);
    arena_reset();
}

/* One-row products sweep forwards while the weights they read fit in L1, and alternate above (recurrent.h). */
static void test_sweep_policy(void)
{
    snprintf(context, sizeof context, "sweep policy");
    packed_matrix small = {4 * 32, 32, NULL}, padded = {4 * 32 + 1, 48, NULL};
    CHECK(packed_bytes(&small) == 16 * 1024);               /* an H = 32 LSTM's W_hh */
    CHECK(packed_bytes(&padded) == (4 * 32 + 16) * 48 * 4); /* rows padded to whole panels */
    /* I=8, H=32 LSTM: 16 + 4 KB; W_hh of exactly the limit (24 KB), then with its input weights; H=64: 64 KB */
    packed_direction h32 = {.w_ih = {4 * 32, 8, NULL}, .w_hh = small};
    packed_direction edge = {.w_ih = {4 * 32, 8, NULL}, .w_hh = {4 * 32, 48, NULL}};
    packed_direction h64 = {.w_ih = {4 * 64, 16, NULL}, .w_hh = {4 * 64, 64, NULL}};
    CHECK(packed_bytes(&edge.w_hh) == LSTMRT_L1_RESIDENT_BYTES);
    uint64_t counter = 0;
    workspace ws;
    memset(&ws, 0, sizeof ws);
    ws.sweep = &counter;
    for (counter = 0; counter < 3; counter++)
        for (int64_t s = 0; s < 4; s++) {
            const int alternate = (int)((counter + (uint64_t)s) & 1u);
            CHECK(sweep_reverse(&ws, s, &h32, 0) == 0 && sweep_reverse(&ws, s, &h32, 1) == 0);
            CHECK(sweep_reverse(&ws, s, &edge, 0) == 0);
            CHECK(sweep_reverse(&ws, s, &edge, 1) == alternate);
            CHECK(sweep_reverse(&ws, s, &h64, 0) == alternate && sweep_reverse(&ws, s, &h64, 1) == alternate);
        }
}

/* Each member writes its slot, meets the others, checks every slot, meets again: 500 rounds. */
typedef struct barrier_job {
    team *t;
    int slots[8];
    int errors[8];
} barrier_job;

static void barrier_member(void *arg, int member, int members)
{
    barrier_job *j = arg;
    for (int round = 1; round <= 500; round++) {
        j->slots[member] = round;
        team_barrier(j->t, member);
        for (int m = 0; m < members; m++)
            j->errors[member] += j->slots[m] != round;
        team_barrier(j->t, member);
    }
}

/* Teams (team.h): the barrier; shares that cover the units; predict and streams with a team, at batch 1 (units
 * shared) and 5 (rows shared), give bit-identical results (steps skipped by a mask or active flags included), and
 * only layers that gain use one. */
static void test_teams(void)
{
    snprintf(context, sizeof context, "team of 3: barrier");
    barrier_job job = {team_create(3), {0}, {0}};
    if (CHECK(job.t != NULL && team_members(job.t) == 3 && team_alive(job.t))) {
        team_run(job.t, barrier_member, &job);
        team_run(job.t, barrier_member, &job); /* a second job on the same workers */
        CHECK(job.errors[0] == 0 && job.errors[1] == 0 && job.errors[2] == 0);
    }
    team_destroy(job.t);
    CHECK(team_create(1) == NULL && team_members(NULL) == 1 && !team_alive(NULL));

    snprintf(context, sizeof context, "team_share");
    for (int members = 1; members <= 5; members++) {
        int64_t next = 0, j0, j1;
        for (int m = 0; m < members; m++) {
            team_share(112, 16, m, members, &j0, &j1);
            CHECK(j0 == next && j1 >= j0 && j1 % 16 == 0);
            next = j1;
        }
        CHECK(next == 112);
    }

    /* LSTM 16-64 (64 KB of W_hh) and GRU 64-128 (192 KB) take a team, the GRU in stream steps too (from 128 KB
     * of W_ih + W_hh); LSTM 128-32 (16 KB) does not */
    spec s;
    start_spec(&s, 77, "lstm 16-64 + gru 64-128 + lstm 128-32 + dense 32-5");
    push(&s, LSTMRT_LAYER_LSTM, 16, 64);
    push(&s, LSTMRT_LAYER_GRU, 64, 128);
    push(&s, LSTMRT_LAYER_LSTM, 128, 32);
    push(&s, LSTMRT_LAYER_DENSE, 32, 5);
    add_weights(&s);
    lstmrt_model_t *m = create_model(&s);
    if (!m)
        return;
    enum { T = 300, I = 16, O = 5 };
    float *x = make_inputs(&s, 1, T), *want = new_floats(T * O), *got = new_floats(T * O);
    uint8_t *mask = arena_alloc(T);
    for (int t = 0; t < T; t++)
        mask[t] = (uint8_t)(t % 7 != 3);
    for (int masked = 0; masked < 2; masked++)
        for (int threads = 2; threads <= 3; threads++) {
            CHECK(lstmrt_model_predict(m, x, 1, T, NULL, masked ? mask : NULL, want) == LSTMRT_STATUS_OK);
            memset(got, 0, T * O * sizeof(float));
            CHECK(lstmrt_model_predict_threads(m, x, 1, T, NULL, masked ? mask : NULL, got, threads) ==
                  LSTMRT_STATUS_OK);
            CHECK(memcmp(got, want, T * O * sizeof(float)) == 0);
        }

    lstmrt_stream_t *alone = NULL, *shared = NULL, *copy = NULL;
    if (CHECK(lstmrt_stream_create(m, 1, &alone) == LSTMRT_STATUS_OK &&
              lstmrt_stream_create(m, 1, &shared) == LSTMRT_STATUS_OK)) {
        CHECK(lstmrt_stream_threads(shared) == 1);
        CHECK(lstmrt_stream_set_threads(shared, 0) == LSTMRT_STATUS_INVALID_ARGUMENT);
        CHECK(lstmrt_stream_set_threads(shared, 65) == LSTMRT_STATUS_INVALID_ARGUMENT);
        CHECK(lstmrt_stream_set_threads(shared, 2) == LSTMRT_STATUS_OK && lstmrt_stream_threads(shared) == 2);
        float *ya = new_floats(O), *yb = new_floats(O);
        int same = 1;
        for (int t = 0; t < 40; t++) {
            const uint8_t active = (uint8_t)(t % 5 != 2);
            CHECK(lstmrt_stream_step(alone, x + t * I, &active, ya) == LSTMRT_STATUS_OK);
            CHECK(lstmrt_stream_step(shared, x + t * I, &active, yb) == LSTMRT_STATUS_OK);
            same &= memcmp(ya, yb, O * sizeof(float)) == 0;
        }
        CHECK(same);
        CHECK(lstmrt_stream_copy(shared, &copy) == LSTMRT_STATUS_OK && lstmrt_stream_threads(copy) == 2);
        CHECK(lstmrt_stream_run(alone, x, T, want) == LSTMRT_STATUS_OK);
        CHECK(lstmrt_stream_run(copy, x, T, got) == LSTMRT_STATUS_OK);
        CHECK(memcmp(got, want, T * O * sizeof(float)) == 0);
        CHECK(lstmrt_stream_set_threads(shared, 3) == LSTMRT_STATUS_OK && lstmrt_stream_threads(shared) == 3);
        CHECK(lstmrt_stream_run(shared, x, T, got) == LSTMRT_STATUS_OK);
        CHECK(memcmp(got, want, T * O * sizeof(float)) == 0);
        CHECK(lstmrt_stream_set_threads(shared, 1) == LSTMRT_STATUS_OK && lstmrt_stream_threads(shared) == 1);
    }
    lstmrt_stream_free(copy);
    lstmrt_stream_free(shared);
    lstmrt_stream_free(alone);

    /* a batch of 5: members share the rows (no barrier: rows never meet), predict and stream alike */
    enum { B = 5 };
    float *xb = make_inputs(&s, B, T), *wantb = new_floats(B * T * O), *gotb = new_floats(B * T * O);
    CHECK(lstmrt_model_predict(m, xb, B, T, NULL, NULL, wantb) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_model_predict_threads(m, xb, B, T, NULL, NULL, gotb, 2) == LSTMRT_STATUS_OK);
    CHECK(memcmp(gotb, wantb, B * T * O * sizeof(float)) == 0);
    lstmrt_stream_t *five = NULL, *five_alone = NULL;
    if (CHECK(lstmrt_stream_create(m, B, &five) == LSTMRT_STATUS_OK &&
              lstmrt_stream_create(m, B, &five_alone) == LSTMRT_STATUS_OK)) {
        CHECK(lstmrt_stream_set_threads(five, 3) == LSTMRT_STATUS_OK && lstmrt_stream_threads(five) == 3);
        float *xt = new_floats(B * I), *ya = new_floats(B * O), *yb = new_floats(B * O);
        const uint8_t active[B] = {1, 0, 1, 1, 0};
        int same = 1;
        for (int t = 0; t < 30; t++) {
            for (int b = 0; b < B; b++)
                memcpy(xt + b * I, xb + ((int64_t)b * T + t) * I, I * sizeof(float));
            CHECK(lstmrt_stream_step(five_alone, xt, t % 4 == 1 ? active : NULL, ya) == LSTMRT_STATUS_OK);
            CHECK(lstmrt_stream_step(five, xt, t % 4 == 1 ? active : NULL, yb) == LSTMRT_STATUS_OK);
            same &= memcmp(ya, yb, B * O * sizeof(float)) == 0;
        }
        CHECK(same);
        CHECK(lstmrt_stream_run(five_alone, xb, T, wantb) == LSTMRT_STATUS_OK);
        CHECK(lstmrt_stream_run(five, xb, T, gotb) == LSTMRT_STATUS_OK);
        CHECK(memcmp(gotb, wantb, B * T * O * sizeof(float)) == 0);
    }
    lstmrt_stream_free(five);
    lstmrt_stream_free(five_alone);
    lstmrt_model_free(m);
    spec small;
    blank_spec(&small, 79);
    push(&small, LSTMRT_LAYER_LSTM, 8, 32);
    add_weights(&small);
    lstmrt_model_t *sm = create_model(&small);
    /* 16 KB of W_hh: too little for one row's units; rows take a team from 64 KB of weights read per step */
    for (int32_t batch = 1; sm && batch <= 4; batch++) {
        lstmrt_stream_t *st = NULL;
        snprintf(context, sizeof context, "lstm 8-32, batch %d", batch);
        if (CHECK(lstmrt_stream_create(sm, batch, &st) == LSTMRT_STATUS_OK))
            CHECK(lstmrt_stream_set_threads(st, 2) == LSTMRT_STATUS_OK &&
                  lstmrt_stream_threads(st) == (batch == 4 ? 2 : 1));
        lstmrt_stream_free(st);
    }
    lstmrt_model_free(sm);
    arena_reset();
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Polls until the team's workers are asleep (they sleep ~50 µs after the last call; 2 s allows for a loaded
 * machine). Returns whether they are. */
static int wait_until_asleep(const team *t)
{
    const struct timespec tick = {0, 1000000};
    for (const double end = seconds_now() + 2.0; team_awake(t) && seconds_now() < end;)
        nanosleep(&tick, NULL);
    return !team_awake(t);
}

/* A call never waits ~100 µs for sleeping workers unless it is long enough to repay it: a sporadic stream step
 * runs alone and leaves them asleep, steps in quick succession wake them for the steps that follow, and predict
 * keeps one team per model. Results are bit-identical whichever way a step ran. */
static void test_team_wake(void)
{
    spec s;
    start_spec(&s, 78, "gru 64-128 + dense 128-3: waking a team");
    push(&s, LSTMRT_LAYER_GRU, 64, 128); /* 192 KB of W_hh, 288 KB with W_ih: single steps take the team */
    push(&s, LSTMRT_LAYER_DENSE, 128, 3);
    add_weights(&s);
    lstmrt_model_t *m = create_model(&s);
    if (!m)
        return;
    enum { T = 400, I = 64, O = 3 };
    float *x = make_inputs(&s, 1, T), *want = new_floats(T * O), *got = new_floats(T * O);
    /* The shared stream is stepped on its own (under emulation, a step of another stream in between would take
     * longer than the workers wait); the stream without a team repeats its steps afterwards. */
    enum { MAX_STEPS = 100000 };
    lstmrt_stream_t *alone = NULL, *shared = NULL;
    float *ys = new_floats((int64_t)MAX_STEPS * O), *ya = new_floats(O);
    int steps = 0;
    if (CHECK(lstmrt_stream_create(m, 1, &alone) == LSTMRT_STATUS_OK &&
              lstmrt_stream_create(m, 1, &shared) == LSTMRT_STATUS_OK &&
              lstmrt_stream_set_threads(shared, 2) == LSTMRT_STATUS_OK)) {
        team *t = shared->ws.team;
#define STEP_SHARED()                                                                                                  \
    do {                                                                                                               \
        CHECK(lstmrt_stream_step(shared, x + steps % T * I, NULL, ys + (int64_t)steps * O) == LSTMRT_STATUS_OK);       \
        steps++;                                                                                                       \
    } while (0)
        /* steps in quick succession: the workers are awake, or soon woken (~100 µs; 2 s for a loaded machine) */
        for (const double end = seconds_now() + 2.0; !team_awake(t) && seconds_now() < end && steps < MAX_STEPS / 4;)
            STEP_SHARED();
        const uint64_t awake = team_jobs(t);
        for (int i = 0; i < 20; i++)
            STEP_SHARED();
        CHECK(team_jobs(t) > awake); /* and they share the steps */
        if (CHECK(wait_until_asleep(t))) {
            const uint64_t asleep = team_jobs(t);
            STEP_SHARED(); /* a sporadic step: alone, and it does not wake them */
            CHECK(team_jobs(t) == asleep && !team_awake(t));
            for (const double end = seconds_now() + 2.0;
                 !team_awake(t) && seconds_now() < end && steps < MAX_STEPS - 20;)
                STEP_SHARED();
            CHECK(team_awake(t));
            const uint64_t woken = team_jobs(t);
            for (int i = 0; i < 20; i++)
                STEP_SHARED();
            CHECK(team_jobs(t) > woken);
        }
#undef STEP_SHARED
        int same = 1;
        for (int i = 0; i < steps; i++) {
            CHECK(lstmrt_stream_step(alone, x + i % T * I, NULL, ya) == LSTMRT_STATUS_OK);
            same &= memcmp(ya, ys + (int64_t)i * O, O * sizeof(float)) == 0;
        }
        CHECK(same);
    }
    lstmrt_stream_free(shared);
    lstmrt_stream_free(alone);

    /* predict keeps a team per model: short calls use it only while its workers are awake */
    CHECK(lstmrt_model_predict(m, x, 1, T, NULL, NULL, want) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_model_predict_threads(m, x, 1, T, NULL, NULL, got, 2) == LSTMRT_STATUS_OK); /* 77 MB: repays */
    CHECK(memcmp(got, want, T * O * sizeof(float)) == 0);
    team *kept = m->predict_team->team;
    if (CHECK(kept != NULL && team_members(kept) == 2) && CHECK(wait_until_asleep(kept))) {
        const uint64_t asleep = team_jobs(kept);
        CHECK(lstmrt_model_predict_threads(m, x, 1, 10, NULL, NULL, got, 2) == LSTMRT_STATUS_OK); /* 2 MB */
        CHECK(team_jobs(kept) == asleep && m->predict_team->team == kept);
        CHECK(memcmp(got, want, 10 * O * sizeof(float)) == 0);
        CHECK(lstmrt_model_predict_threads(m, x, 1, T, NULL, NULL, got, 2) == LSTMRT_STATUS_OK);
        CHECK(team_jobs(kept) > asleep && m->predict_team->team == kept);
        CHECK(memcmp(got, want, T * O * sizeof(float)) == 0);
    }
    CHECK(lstmrt_model_predict_threads(m, x, 1, T, NULL, NULL, got, 3) == LSTMRT_STATUS_OK); /* another size */
    CHECK(team_members(m->predict_team->team) == 3 && memcmp(got, want, T * O * sizeof(float)) == 0);
    lstmrt_model_free(m);
    arena_reset();
}

static void test_predict_errors(void)
{
    spec s;
    make_spec(12, &s); /* bidirectional: the backward pass makes lengths matter most */
    lstmrt_model_t *m = create_model(&s);
    if (!m)
        return;
    enum { B = 2, T = 6 };
    float *x = make_inputs(&s, B, T), y[B * T * 2];
    const int32_t neg[B] = {T, -1}, over[B] = {T + 1, 2};
    snprintf(context, sizeof context, "predict");
    for (int i = 0; i < B * T * 2; i++)
        y[i] = 9.0f;
    EXPECT_FAIL(lstmrt_model_predict(NULL, x, B, T, NULL, NULL, y), INVALID);
    EXPECT_FAIL(lstmrt_model_predict(m, NULL, B, T, NULL, NULL, y), INVALID);
    EXPECT_FAIL(lstmrt_model_predict(m, x, B, T, NULL, NULL, NULL), INVALID);
    EXPECT_FAIL(lstmrt_model_predict(m, x, 0, T, NULL, NULL, y), INVALID);
    EXPECT_FAIL(lstmrt_model_predict(m, x, -1, T, NULL, NULL, y), INVALID);
    EXPECT_FAIL(lstmrt_model_predict(m, x, B, -1, NULL, NULL, y), INVALID);
    EXPECT_FAIL(lstmrt_model_predict(m, x, (int64_t)1 << 40, 2, NULL, NULL, y), INVALID);
    EXPECT_FAIL(lstmrt_model_predict(m, x, B, T, neg, NULL, y), INVALID);
    CHECK(strstr(lstmrt_last_error(), "lengths[1]") != NULL);
    EXPECT_FAIL(lstmrt_model_predict(m, x, B, T, over, NULL, y), INVALID);
    int untouched = 1;
    for (int i = 0; i < B * T * 2; i++)
        untouched &= y[i] == 9.0f;
    CHECK(untouched);
    lstmrt_model_free(m);
    arena_reset();
}

static int state_equals(const lstmrt_stream_t *st, const float *want, int64_t n, float *buf)
{
    return lstmrt_stream_get_state(st, buf) == LSTMRT_STATUS_OK && same_bits(buf, want, n);
}

static void test_stream_errors(void)
{
    spec s;
    snprintf(context, sizeof context, "stream_create");
    lstmrt_stream_t *st = (lstmrt_stream_t *)&s;
    /* Bidirectional and go_backwards models need the future: UNSUPPORTED. */
    static const int bidirectional[] = {12, 13, 14, 18, 20};
    for (size_t k = 0; k < sizeof bidirectional / sizeof bidirectional[0]; k++) {
        make_spec(bidirectional[k], &s);
        snprintf(context, sizeof context, "stream_create %s", s.name);
        lstmrt_model_t *m = create_model(&s);
        st = (lstmrt_stream_t *)&s;
        EXPECT_FAIL(lstmrt_stream_create(m, 1, &st), LSTMRT_STATUS_UNSUPPORTED);
        CHECK(st == NULL);
        lstmrt_model_free(m);
        arena_reset();
    }

    make_spec(15, &s); /* embedding 11x6 + lstm 6-9 + dense 9-4: token ids can be wrong */
    lstmrt_model_t *m = create_model(&s);
    if (!m)
        return;
    snprintf(context, sizeof context, "stream_create");
    EXPECT_FAIL(lstmrt_stream_create(NULL, 1, &st), INVALID);
    EXPECT_FAIL(lstmrt_stream_create(m, 1, NULL), INVALID);
    st = (lstmrt_stream_t *)&s;
    EXPECT_FAIL(lstmrt_stream_create(m, 0, &st), INVALID);
    CHECK(st == NULL);
    EXPECT_FAIL(lstmrt_stream_create(m, -2, &st), INVALID);
    EXPECT_FAIL(lstmrt_stream_create(m, (1 << 24) + 1, &st), INVALID);
    CHECK(lstmrt_stream_create(m, 2, &st) == LSTMRT_STATUS_OK && st != NULL);
    if (!st) {
        lstmrt_model_free(m);
        return;
    }
    const int64_t S = 2 * lstmrt_model_state_size(m);
    float x[2 * 8] = {3, 10, 4, 0, 1, 2, 5, 6, 7, 8, 9, 1, 2, 3, 4, 5}, y[2 * 8 * 4], before[2 * 8 * 4];
    float state[2 * 18], buf[2 * 18];
    CHECK(S == 2 * 18);
    CHECK(lstmrt_stream_run(st, x, 8, y) == LSTMRT_STATUS_OK); /* a state worth protecting */
    EXPECT_FAIL(lstmrt_stream_get_state(st, NULL), INVALID);
    CHECK(lstmrt_stream_get_state(st, state) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_last_error()[0] == '\0'); /* a success clears the previous message */
    for (int i = 0; i < 2 * 8 * 4; i++)
        y[i] = before[i] = (float)i + 0.5f;

    /* Every rejected step / run: right status, message, and stream and outputs untouched. */
    static const float bad_ids[] = {-1.0f, 11.0f, 2.5f, 1e30f, -1e-30f, INFINITY};
    for (size_t k = 0; k < sizeof bad_ids / sizeof bad_ids[0] + 1; k++) {
        const float bad = k < sizeof bad_ids / sizeof bad_ids[0] ? bad_ids[k] : NAN;
        float xb[2 * 8];
        memcpy(xb, x, sizeof xb);
        snprintf(context, sizeof context, "stream bad token %g", (double)bad);
        xb[1] = bad; /* second row of a step */
        EXPECT_FAIL(lstmrt_stream_step(st, xb, NULL, y), INVALID);
        CHECK(strstr(lstmrt_last_error(), "token") != NULL);
        CHECK(state_equals(st, state, S, buf) && same_bits(y, before, 2 * 8 * 4));
        memcpy(xb, x, sizeof xb);
        xb[2 * 8 - 1] = bad; /* last step of the last sequence: found before anything runs */
        EXPECT_FAIL(lstmrt_stream_run(st, xb, 8, y), INVALID);
        CHECK(state_equals(st, state, S, buf) && same_bits(y, before, 2 * 8 * 4));
        EXPECT_FAIL(lstmrt_model_predict(m, xb, 2, 8, NULL, NULL, y), INVALID);
        CHECK(same_bits(y, before, 2 * 8 * 4));
    }
    {
        /* -0 is token 0, the largest id is V - 1 */
        float xb[2] = {-0.0f, 10.0f};
        snprintf(context, sizeof context, "stream boundary tokens");
        lstmrt_stream_t *c = NULL;
        CHECK(lstmrt_stream_copy(st, &c) == LSTMRT_STATUS_OK);
        if (c)
            CHECK(lstmrt_stream_step(c, xb, NULL, y) == LSTMRT_STATUS_OK);
        lstmrt_stream_free(c);
        memcpy(y, before, sizeof y);
    }

    snprintf(context, sizeof context, "stream NULL arguments");
    EXPECT_FAIL(lstmrt_stream_step(NULL, x, NULL, y), INVALID);
    EXPECT_FAIL(lstmrt_stream_step(st, NULL, NULL, y), INVALID);
    EXPECT_FAIL(lstmrt_stream_step(st, x, NULL, NULL), INVALID);
    EXPECT_FAIL(lstmrt_stream_run(NULL, x, 8, y), INVALID);
    EXPECT_FAIL(lstmrt_stream_run(st, NULL, 8, y), INVALID);
    EXPECT_FAIL(lstmrt_stream_run(st, x, 8, NULL), INVALID);
    EXPECT_FAIL(lstmrt_stream_run(st, x, -1, y), INVALID);
    EXPECT_FAIL(lstmrt_stream_get_state(NULL, buf), INVALID);
    EXPECT_FAIL(lstmrt_stream_get_state(st, NULL), INVALID);
    EXPECT_FAIL(lstmrt_stream_set_state(NULL, buf), INVALID);
    EXPECT_FAIL(lstmrt_stream_set_state(st, NULL), INVALID);
    lstmrt_stream_t *c = (lstmrt_stream_t *)&s;
    EXPECT_FAIL(lstmrt_stream_copy(NULL, &c), INVALID);
    EXPECT_FAIL(lstmrt_stream_copy(st, NULL), INVALID);
    CHECK(state_equals(st, state, S, buf) && same_bits(y, before, 2 * 8 * 4));
    lstmrt_stream_reset(NULL); /* documented no-ops */
    lstmrt_stream_free(NULL);
    lstmrt_model_free(NULL);

    /* Zero steps is a valid no-op run; a success clears the message. */
    snprintf(context, sizeof context, "stream zero steps");
    CHECK(lstmrt_stream_run(st, x, 0, y) == LSTMRT_STATUS_OK);
    CHECK(lstmrt_last_error()[0] == '\0');
    CHECK(state_equals(st, state, S, buf) && same_bits(y, before, 2 * 8 * 4));
    lstmrt_stream_free(st);
    lstmrt_model_free(m);
    arena_reset();
}

static void test_status_strings(void)
{
    static const lstmrt_status all[] = {LSTMRT_STATUS_OK, LSTMRT_STATUS_INVALID_ARGUMENT, LSTMRT_STATUS_OUT_OF_MEMORY,
                                        LSTMRT_STATUS_UNSUPPORTED};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        const char *text = lstmrt_status_string(all[k]);
        CHECK(text != NULL && text[0] != '\0' && strcmp(text, "unknown status") != 0);
    }
    CHECK(strcmp(lstmrt_status_string((lstmrt_status)1234), "unknown status") == 0);
    CHECK(lstmrt_kernel_tier() != NULL && lstmrt_kernel_tier()[0] != '\0');
    CHECK(lstmrt_cpu_features() != NULL);
    /* getters have no status: a NULL object answers 0 */
    CHECK(lstmrt_model_input_size(NULL) == 0 && lstmrt_model_output_size(NULL) == 0);
    CHECK(lstmrt_model_state_size(NULL) == 0 && lstmrt_model_weight_bytes(NULL) == 0);
    CHECK(lstmrt_model_is_bidirectional(NULL) == 0 && lstmrt_stream_batch(NULL) == 0);
}

/* The benchmark probes: sizes validated, passes run (their numbers are timed by lstmrt bench, not here). */
static void test_probes(void)
{
    lstmrt_probe_t *p = (lstmrt_probe_t *)&p;
    EXPECT_FAIL(lstmrt_probe_create(63, &p), INVALID);
    CHECK(p == NULL);
    EXPECT_FAIL(lstmrt_probe_create(((int64_t)1 << 34) + 1, &p), INVALID);
    EXPECT_FAIL(lstmrt_probe_create(-1, &p), INVALID);
    EXPECT_FAIL(lstmrt_probe_create(4096, NULL), INVALID);
    static const int64_t sizes[] = {64, 100, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (!CHECK(lstmrt_probe_create(sizes[i], &p) == LSTMRT_STATUS_OK && p != NULL))
            continue;
        CHECK(lstmrt_probe_stream_bytes(p) == sizes[i] / 64 * 64);
        CHECK(lstmrt_probe_compute_flops(p) > 0);
        lstmrt_probe_stream(p, 3);
        lstmrt_probe_compute(p, 3);
        CHECK(lstmrt_last_error()[0] == '\0');
        lstmrt_probe_free(p);
    }
    lstmrt_probe_free(NULL);
    lstmrt_probe_stream(NULL, 1);
    lstmrt_probe_compute(NULL, 1);
    CHECK(lstmrt_probe_stream_bytes(NULL) == 0 && lstmrt_probe_compute_flops(NULL) == 0);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Cycles: the lifetime workload for valgrind (every allocation and free path, including failing calls)          */

static int cycle_once(int round)
{
    const int before = case_failures;
    for (int which = 0; which < NUM_SPECS; which++) {
        spec s;
        make_spec(which, &s);
        snprintf(context, sizeof context, "cycle %d, %s", round, s.name);
        lstmrt_model_t *m = create_model(&s);
        if (!m)
            continue;
        enum { B = 2, T = 9 };
        const int I = spec_in(&s), O = spec_out(&s);
        float *x = make_inputs(&s, B, T), *y = new_floats(B * T * O);
        const int32_t lengths[B] = {T, 4};
        uint8_t mask[B * T];
        for (int i = 0; i < B * T; i++)
            mask[i] = (uint8_t)(i % 4 != 1);
        CHECK(lstmrt_model_predict(m, x, B, T, lengths, mask, y) == LSTMRT_STATUS_OK);
        lstmrt_stream_t *st = NULL, *copy = NULL;
        if (lstmrt_model_is_bidirectional(m)) {
            EXPECT_FAIL(lstmrt_stream_create(m, B, &st), LSTMRT_STATUS_UNSUPPORTED);
        } else if (CHECK(lstmrt_stream_create(m, B, &st) == LSTMRT_STATUS_OK)) {
            float *xt = new_floats(B * I), *state = new_floats(B * lstmrt_model_state_size(m) + 1);
            const uint8_t active[B] = {1, 0};
            memcpy(xt, x, (size_t)(B * I) * sizeof(float));
            CHECK(lstmrt_stream_step(st, xt, NULL, y) == LSTMRT_STATUS_OK);
            CHECK(lstmrt_stream_step(st, xt, active, y) == LSTMRT_STATUS_OK);
            CHECK(lstmrt_stream_run(st, x, T, y) == LSTMRT_STATUS_OK);
            CHECK(lstmrt_stream_copy(st, &copy) == LSTMRT_STATUS_OK);
            CHECK(lstmrt_stream_get_state(st, state) == LSTMRT_STATUS_OK);
            lstmrt_stream_reset(st);
            CHECK(lstmrt_stream_set_state(copy, state) == LSTMRT_STATUS_OK);
            CHECK(lstmrt_stream_run(copy, x, T, y) == LSTMRT_STATUS_OK);
            if (spec_is_tokens(&s)) {
                xt[0] = -1.0f;
                EXPECT_FAIL(lstmrt_stream_step(st, xt, NULL, y), INVALID);
            }
        }
        EXPECT_FAIL(lstmrt_model_predict(m, x, B, T, NULL, NULL, NULL), INVALID);
        lstmrt_stream_free(copy);
        lstmrt_stream_free(st);
        lstmrt_model_free(m);
        /* a chain that fails validation after the first layer */
        if (s.n > 1) {
            s.layers[1].input_size += 1;
            m = (lstmrt_model_t *)&s;
            EXPECT_FAIL(lstmrt_model_create(s.layers, s.n, &m), INVALID);
            CHECK(m == NULL);
        }
        arena_reset();
    }
    return case_failures == before;
}

static int run_cycles(long cycles)
{
    case_name = "cycles";
    printf("kernel tier: %s\n", lstmrt_kernel_tier());
    /* the partial-allocation failure path once (its 64 MB bias buffer makes it slow under valgrind) */
    case_failures = 0;
    test_out_of_memory();
    if (case_failures)
        cases_failed++;
    else
        cases_passed++;
    for (long r = 0; r < cycles; r++) {
        case_failures = 0;
        if (cycle_once((int)r))
            cases_passed++;
        else
            cases_failed++;
    }
    printf("cycles: %ld x %d models (create, predict, stream step/run/copy/state, free, failing calls)\n", cycles,
           NUM_SPECS);
    printf("%d passed, %d failed\n", cases_passed, cases_failed);
    return cases_failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "--cycles") == 0) {
        char *end = NULL;
        const long cycles = strtol(argv[2], &end, 10);
        if (!end || *end != '\0' || cycles < 0) {
            fprintf(stderr, "usage: %s [--cycles N]\n", argv[0]);
            return 2;
        }
        return run_cycles(cycles);
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--cycles N]\n", argv[0]);
        return 2;
    }
    printf("kernel tier: %s (cpu features: %s)\n", lstmrt_kernel_tier(), lstmrt_cpu_features());
    RUN(test_status_strings);
    RUN(test_model_properties);
    RUN(test_predict_vs_reference);
    RUN(test_stream_invariants);
    RUN(test_wide_batch);
    RUN(test_lengths_match_unpadded);
    RUN(test_final_only_long_sequence);
    RUN(test_special_values);
    RUN(test_model_create_errors);
    RUN(test_out_of_memory);
    RUN(test_embedding_id_changed_during_call);
    RUN(test_sweep_policy);
    RUN(test_teams);
    RUN(test_team_wake);
    RUN(test_predict_errors);
    RUN(test_stream_errors);
    RUN(test_probes);
    printf("checks: %ld\n", checks_run);
    printf("%d passed, %d failed\n", cases_passed, cases_failed);
    return cases_failed == 0 ? 0 : 1;
}
