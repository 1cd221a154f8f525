/* Every kernel of every ISA tier this machine can run, against the scalar oracle (kernels/scalar.c), at awkward
 * sizes (1, 7, 15, 16, 17, 33, tile +- 1) and special values (+-0, +-inf, NaN, large |x|, denormals); plus the
 * activation approximations against double-precision libm (the error bound approx.h states).
 * Usage: test_kernels [-v]. Prints "N passed, M failed"; exit status 0 iff none failed. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Contract of the SIMD activations (approx.h): max abs error vs exact, and so vs the libm-based oracle. */
#define ACT_ATOL 1e-6
/* A GEMM result may differ from the oracle's by reassociation: relative to the sum of |terms|. */
#define GEMM_RTOL 2e-6

static int passed, failed, verbose;

static void check(int ok, const char *tier, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        if (failed < 50)
            printf("FAIL [%s] %s\n", tier, what);
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float uniform(float lo, float hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

/* Same value, or both NaN; finite values within atol. */
static int same(float a, float b, double atol)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b))
        return a == b;
    return fabs((double)a - (double)b) <= atol;
}

static const float specials[] = {
    0.0f,    -0.0f,       INFINITY,     -INFINITY, NAN,      1e-30f, -1e-30f, 1e-40f /* denormal */,
    -1e-40f, FLT_MIN,     -FLT_MIN,     FLT_MAX,   -FLT_MAX, 1e10f,  -1e10f,  87.0f,
    -87.0f,  87.5f,       -87.5f,       88.0f,     -88.0f,   88.5f,  -88.5f,  89.0f,
    -89.0f,  9.0f,        -9.0f,        9.02f,     -9.02f,   10.0f,  -10.0f,  11.0f,
    -11.0f,  0.34657359f, -0.34657359f, 0.5f,      -0.5f,    1.0f,   -1.0f,   20.0f,
    -20.0f,  1e-4f,       -1e-4f,
};
#define NSPECIAL ((int)(sizeof specials / sizeof specials[0]))

static const int64_t sizes[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* ---- activations ---- */

static void test_activation(const lstmrt_kernels *k, const lstmrt_kernels *ref, int is_tanh)
{
    const char *name = is_tanh ? "tanh" : "sigmoid";
    void (*fk)(float *, int64_t) = is_tanh ? k->f32_tanh : k->f32_sigmoid;
    void (*fr)(float *, int64_t) = is_tanh ? ref->f32_tanh : ref->f32_sigmoid;
    char what[160];
    /* every size, random + special values at every lane position; guard floats after the end stay untouched */
    for (int s = 0; s < NSIZES; s++) {
        const int64_t n = sizes[s];
        float a[128], b[128];
        for (int rep = 0; rep < 4; rep++) {
            for (int64_t i = 0; i < n + 8; i++)
                a[i] = (rep < 2 || i >= n) ? uniform(-12.0f, 12.0f) : specials[(i + rep * 7 + s) % NSPECIAL];
            memcpy(b, a, sizeof a);
            fk(a, n);
            fr(b, n);
            int ok = 1;
            for (int64_t i = 0; i < n; i++)
                ok &= same(a[i], b[i], ACT_ATOL);
            for (int64_t i = n; i < n + 8; i++)
                ok &= memcmp(&a[i], &b[i], sizeof(float)) == 0; /* b[i] untouched too */
            snprintf(what, sizeof what, "%s n=%lld rep=%d", name, (long long)n, rep);
            check(ok, k->name, what);
        }
    }
    /* exact limits and NaN */
    float v[6] = {INFINITY, -INFINITY, NAN, -NAN, 0.0f, -0.0f};
    fk(v, 6);
    if (is_tanh)
        check(v[0] == 1.0f && v[1] == -1.0f && isnan(v[2]) && isnan(v[3]) && v[4] == 0.0f && v[5] == 0.0f &&
                  signbit(v[5]),
              k->name, "tanh(+-inf) = +-1, tanh(NaN) = NaN, tanh(-0) = -0");
    else
        check(v[0] == 1.0f && v[1] == 0.0f && isnan(v[2]) && isnan(v[3]) && v[4] == 0.5f && v[5] == 0.5f, k->name,
              "sigmoid(+inf) = 1, sigmoid(-inf) = 0, sigmoid(NaN) = NaN, sigmoid(0) = 0.5");
    /* accuracy against double libm: a dense sweep of [-30, 30] and tiny magnitudes (odd symmetry of tanh) */
    enum { N = 1 << 16 };
    static float buf[N];
    double worst = 0.0, worst_at = 0.0;
    int in_range = 1; /* as libm's: |tanh| <= 1, 0 <= sigmoid <= 1, even where a rounding step would leave them */
    float outside_at = 0.0f;
    const float lowest = is_tanh ? -1.0f : 0.0f;
    for (int pass = 0; pass < 40; pass++) {
        for (int i = 0; i < N; i++) {
            const double t = (pass * (double)N + i) / (40.0 * N);
            buf[i] = pass < 32 ? (float)(-30.0 + 60.0 * t) : (float)((i & 1 ? -1 : 1) * pow(10.0, -38.0 + 40.0 * t));
        }
        float x[N];
        memcpy(x, buf, sizeof x);
        fk(buf, N);
        for (int i = 0; i < N; i++) {
            const double exact = is_tanh ? tanh((double)x[i]) : 1.0 / (1.0 + exp(-(double)x[i]));
            if (!(buf[i] >= lowest && buf[i] <= 1.0f) && in_range) {
                in_range = 0;
                outside_at = x[i];
            }
            const double e = fabs(buf[i] - exact);
            if (e > worst) {
                worst = e;
                worst_at = x[i];
            }
        }
    }
    snprintf(what, sizeof what, "%s max abs error %.3g (at x = %.9g) <= %.0e", name, worst, worst_at, ACT_ATOL);
    check(worst <= ACT_ATOL, k->name, what);
    snprintf(what, sizeof what, "%s stays in [%g, 1] (first outside at x = %.9g)", name, lowest, outside_at);
    check(in_range, k->name, what);
    if (verbose)
        printf("  [%s] %s\n", k->name, what);
}

/* ---- fused cells ---- */

static void test_lstm_cell(const lstmrt_kernels *k, const lstmrt_kernels *ref)
{
    char what[128];
    for (int s = 0; s < NSIZES; s++) {
        const int64_t H = sizes[s];
        float g[4 * 100], c1[100 + 8], c2[100 + 8], h1[100 + 8], h2[100 + 8];
        for (int rep = 0; rep < 3; rep++) {
            for (int64_t i = 0; i < 4 * H; i++)
                g[i] = rep == 2 && i % 5 == 0 ? specials[(i / 5) % NSPECIAL] : uniform(-8.0f, 8.0f);
            for (int64_t i = 0; i < H + 8; i++) {
                c1[i] = c2[i] = uniform(-5.0f, 5.0f);
                h1[i] = h2[i] = -7.0f;
            }
            k->f32_lstm_cell(g, c1, h1, H);
            ref->f32_lstm_cell(g, c2, h2, H);
            int ok = 1;
            for (int64_t i = 0; i < H; i++)
                ok &= same(c1[i], c2[i], 4e-6 * (1.0 + fabs(c2[i]))) && same(h1[i], h2[i], 4e-6);
            for (int64_t i = H; i < H + 8; i++)
                ok &= c1[i] == c2[i] && h1[i] == -7.0f;
            snprintf(what, sizeof what, "lstm_cell H=%lld rep=%d", (long long)H, rep);
            check(ok, k->name, what);
        }
    }
}

static void test_gru_cell(const lstmrt_kernels *k, const lstmrt_kernels *ref)
{
    char what[128];
    for (int s = 0; s < NSIZES; s++) {
        const int64_t H = sizes[s];
        float x[3 * 100], hh[3 * 100], h1[100 + 8], h2[100 + 8];
        for (int rep = 0; rep < 3; rep++) {
            for (int64_t i = 0; i < 3 * H; i++) {
                x[i] = rep == 2 && i % 4 == 0 ? specials[(i / 4) % NSPECIAL] : uniform(-6.0f, 6.0f);
                hh[i] = uniform(-6.0f, 6.0f);
            }
            for (int64_t i = 0; i < H + 8; i++)
                h1[i] = h2[i] = uniform(-1.0f, 1.0f);
            k->f32_gru_cell(x, hh, h1, H);
            ref->f32_gru_cell(x, hh, h2, H);
            int ok = 1;
            for (int64_t i = 0; i < H; i++)
                ok &= same(h1[i], h2[i], 4e-6);
            for (int64_t i = H; i < H + 8; i++)
                ok &= h1[i] == h2[i];
            snprintf(what, sizeof what, "gru_cell H=%lld rep=%d", (long long)H, rep);
            check(ok, k->name, what);
        }
    }
}

/* ---- GEMM ---- */

static void fill(float *v, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = uniform(lo, hi);
}

/* One shape: both tables on the same inputs; padding columns of y (ldy > n) must stay untouched. */
static void gemm_case(const lstmrt_kernels *k, const lstmrt_kernels *ref, int64_t m, int64_t n, int64_t kk,
                      int use_bias, int accumulate, int special)
{
    const int64_t ldx = kk + 3, ldy = n + 5;
    float *w = malloc(sizeof(float) * (size_t)(n * kk + 1));
    float *x = malloc(sizeof(float) * (size_t)(m * ldx + 1));
    float *bias = malloc(sizeof(float) * (size_t)n);
    float *y1 = malloc(sizeof(float) * (size_t)(m * ldy));
    float *y2 = malloc(sizeof(float) * (size_t)(m * ldy));
    float *mag = malloc(sizeof(float) * (size_t)(m * n));
    fill(w, n * kk, -1.0f, 1.0f);
    fill(x, m * ldx, -1.0f, 1.0f);
    fill(bias, n, -1.0f, 1.0f);
    fill(y1, m * ldy, -1.0f, 1.0f);
    memcpy(y2, y1, sizeof(float) * (size_t)(m * ldy));
    if (special && kk > 0) /* NaN/inf/huge/denormal in x: must reach the same outputs */
        for (int64_t r = 0; r < m; r += 3)
            x[r * ldx + (r % kk)] = specials[(2 + r) % NSPECIAL];
    packed_matrix pw;
    if (pack_matrix(&pw, w, n, kk) != LSTMRT_STATUS_OK) {
        check(0, k->name, "pack_matrix");
        return;
    }
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < n; j++) {
            double s = 1.0 + (use_bias ? fabs(bias[j]) : 0.0) + (accumulate ? fabs(y1[r * ldy + j]) : 0.0);
            for (int64_t q = 0; q < kk; q++)
                s += fabs((double)x[r * ldx + q] * w[j * kk + q]);
            mag[r * n + j] = (float)s;
        }
    k->f32_gemm(m, x, ldx, &pw, use_bias ? bias : NULL, accumulate, y1, ldy);
    ref->f32_gemm(m, x, ldx, &pw, use_bias ? bias : NULL, accumulate, y2, ldy);
    int ok = 1;
    for (int64_t r = 0; r < m; r++) {
        for (int64_t j = 0; j < n; j++)
            /* a non-finite term (special x): same NaN / same infinity, whatever the summation order */
            ok &= same(y1[r * ldy + j], y2[r * ldy + j],
                       isfinite(mag[r * n + j]) ? GEMM_RTOL * mag[r * n + j] : INFINITY);
        for (int64_t j = n; j < ldy; j++)
            ok &= memcmp(&y1[r * ldy + j], &y2[r * ldy + j], sizeof(float)) == 0;
    }
    char what[160];
    snprintf(what, sizeof what, "gemm m=%lld n=%lld k=%lld bias=%d acc=%d special=%d", (long long)m, (long long)n,
             (long long)kk, use_bias, accumulate, special);
    check(ok, k->name, what);
    free_packed_matrix(&pw);
    free(w), free(x), free(bias), free(y1), free(y2), free(mag);
}

static void test_gemm(const lstmrt_kernels *k, const lstmrt_kernels *ref)
{
    static const int64_t ms[] = {1, 2, 3, 5, 6, 7, 8, 9, 13, 16, 17, 33};
    static const int64_t ns[] = {1, 7, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80, 97};
    static const int64_t ks[] = {0, 1, 2, 3, 7, 15, 16, 17, 33, 64};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++)
                gemm_case(k, ref, ms[a], ns[b], ks[c], (int)((a + b + c) % 2), (int)((a + c) / 2 % 2), 0);
    for (int v = 0; v < 8; v++) /* every bias/accumulate/special combination on a few shapes */
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b += 3) {
            gemm_case(k, ref, 1, ns[b], 33, v & 1, (v >> 1) & 1, (v >> 2) & 1);
            gemm_case(k, ref, 9, ns[b], 17, v & 1, (v >> 1) & 1, (v >> 2) & 1);
        }
    gemm_case(k, ref, 70, 1040, 300, 1, 1, 0); /* a step-sized product with every kind of tail */
    gemm_case(k, ref, 1, 2048, 512, 1, 0, 0);
}

/* The one-row step product: against the scalar oracle; both visiting orders bit-identical. */
static void gemv_case(const lstmrt_kernels *k, const lstmrt_kernels *ref, int64_t n, int64_t k1, int64_t k2,
                      int use_bias, int accumulate, int special)
{
    float *w1 = malloc(sizeof(float) * (size_t)(n * k1 + 1)), *w2 = malloc(sizeof(float) * (size_t)(n * k2 + 1));
    float *x1 = malloc(sizeof(float) * (size_t)(k1 + 1)), *x2 = malloc(sizeof(float) * (size_t)(k2 + 1));
    float *bias = malloc(sizeof(float) * (size_t)n);
    float *y[3];
    for (int i = 0; i < 3; i++)
        y[i] = malloc(sizeof(float) * (size_t)(n + 8));
    fill(w1, n * k1, -1.0f, 1.0f), fill(w2, n * k2, -1.0f, 1.0f), fill(x1, k1, -1.0f, 1.0f);
    fill(x2, k2, -1.0f, 1.0f), fill(bias, n, -1.0f, 1.0f), fill(y[0], n + 8, -1.0f, 1.0f);
    memcpy(y[1], y[0], sizeof(float) * (size_t)(n + 8));
    memcpy(y[2], y[0], sizeof(float) * (size_t)(n + 8));
    if (special && k2 > 0)
        x2[k2 / 2] = specials[(n + k1) % NSPECIAL];
    packed_matrix p1, p2;
    if (pack_matrix(&p1, w1, n, k1) != LSTMRT_STATUS_OK || pack_matrix(&p2, w2, n, k2) != LSTMRT_STATUS_OK) {
        check(0, k->name, "pack_matrix");
        return;
    }
    const packed_matrix *pw2 = k2 > 0 ? &p2 : NULL;
    k->f32_gemv(x1, &p1, x2, pw2, use_bias ? bias : NULL, accumulate, y[0], 0);
    k->f32_gemv(x1, &p1, x2, pw2, use_bias ? bias : NULL, accumulate, y[1], 1);
    ref->f32_gemv(x1, &p1, x2, pw2, use_bias ? bias : NULL, accumulate, y[2], 0);
    int ok = 1, same_order = 1;
    for (int64_t j = 0; j < n; j++) {
        double mag = 1.0 + (use_bias ? fabs(bias[j]) : 0.0) + (accumulate ? 1.0 : 0.0);
        for (int64_t q = 0; q < k1; q++)
            mag += fabs((double)x1[q] * w1[j * k1 + q]);
        for (int64_t q = 0; q < k2 && pw2; q++)
            mag += fabs((double)x2[q] * w2[j * k2 + q]);
        ok &= same(y[0][j], y[2][j], isfinite(mag) ? GEMM_RTOL * mag : INFINITY);
        same_order &= memcmp(&y[0][j], &y[1][j], sizeof(float)) == 0;
    }
    for (int64_t j = n; j < n + 8; j++)
        ok &= y[0][j] == y[2][j] && y[1][j] == y[2][j];
    char what[160];
    snprintf(what, sizeof what, "gemv n=%lld k1=%lld k2=%lld bias=%d acc=%d special=%d", (long long)n, (long long)k1,
             (long long)k2, use_bias, accumulate, special);
    check(ok, k->name, what);
    snprintf(what, sizeof what, "gemv n=%lld k1=%lld k2=%lld: reverse order bit-identical", (long long)n, (long long)k1,
             (long long)k2);
    check(same_order, k->name, what);
    free_packed_matrix(&p1), free_packed_matrix(&p2);
    free(w1), free(w2), free(x1), free(x2), free(bias), free(y[0]), free(y[1]), free(y[2]);
}

static void test_gemv(const lstmrt_kernels *k, const lstmrt_kernels *ref)
{
    static const int64_t ns[] = {1, 7, 15, 16, 17, 32, 33, 48, 63, 64, 65, 80, 96, 112, 129, 257};
    static const int64_t ks[] = {1, 2, 3, 7, 16, 17, 33};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c += 2) {
                const int v = (int)(a + b + c);
                gemv_case(k, ref, ns[a], ks[b], c == 0 ? 0 : ks[c], v & 1, (v >> 1) & 1, (v >> 2) & 1);
            }
    gemv_case(k, ref, 2048, 128, 512, 1, 0, 0);
}

/* The inputs of a fused step case: G x I and G x H weights, packed; x, h, gx (special values at every 7th gate if
 * asked), bias and a second bias (GRU b_hn); three output rows of H + 4, the 4 past H a sentinel no kernel may
 * touch. ok: packing succeeded. */
typedef struct step_inputs {
    packed_matrix wi, wh;
    float *x, *h, *gx, *bias, *bias2, *out[3];
    int ok;
} step_inputs;

static step_inputs make_step_inputs(int64_t G, int64_t H, int64_t I, int special)
{
    step_inputs s;
    float *wi = malloc(sizeof(float) * (size_t)(G * I)), *wh = malloc(sizeof(float) * (size_t)(G * H));
    s.x = malloc(sizeof(float) * (size_t)I), s.h = malloc(sizeof(float) * (size_t)H);
    s.gx = malloc(sizeof(float) * (size_t)G), s.bias = malloc(sizeof(float) * (size_t)G);
    s.bias2 = malloc(sizeof(float) * (size_t)G);
    fill(wi, G * I, -0.5f, 0.5f), fill(wh, G * H, -0.5f, 0.5f), fill(s.x, I, -2.0f, 2.0f), fill(s.h, H, -1.0f, 1.0f);
    fill(s.gx, G, -3.0f, 3.0f), fill(s.bias, G, -1.0f, 1.0f), fill(s.bias2, G, -1.0f, 1.0f);
    if (special)
        for (int64_t j = 0; j < G; j += 7)
            s.gx[j] = specials[(j / 7) % NSPECIAL];
    for (int i = 0; i < 3; i++) {
        s.out[i] = malloc(sizeof(float) * (size_t)(H + 4));
        for (int64_t j = 0; j < H + 4; j++)
            s.out[i][j] = -9.0f;
    }
    s.ok = pack_matrix(&s.wi, wi, G, I) == LSTMRT_STATUS_OK && pack_matrix(&s.wh, wh, G, H) == LSTMRT_STATUS_OK;
    free(wi), free(wh);
    return s;
}

static void free_step_inputs(step_inputs *s)
{
    free_packed_matrix(&s->wi), free_packed_matrix(&s->wh);
    free(s->x), free(s->h), free(s->gx), free(s->bias), free(s->bias2);
    for (int i = 0; i < 3; i++)
        free(s->out[i]);
}

/* The output rows: equal to the oracle's within tol, nothing written past H. */
/* A step over a range of units leaves the outputs below it as make_step_inputs set them. */
static int untouched_below(const float *out, int64_t n)
{
    int ok = 1;
    for (int64_t j = 0; j < n; j++)
        ok &= out[j] == -9.0f;
    return ok;
}

static int outputs_match(const step_inputs *s, int64_t H)
{
    int ok = 1;
    for (int64_t j = 0; j < H; j++)
        ok &= same(s->out[0][j], s->out[2][j], 4e-6);
    for (int64_t j = H; j < H + 4; j++)
        ok &= s->out[0][j] == -9.0f;
    return ok;
}

/* The fused one-row LSTM step against the scalar oracle (which reads gate rows straight from the panels);
 * both visiting orders bit-identical. input: 0 = x W_ih^T + bias, 1 = precomputed gx. */
static void lstm_step_case(const lstmrt_kernels *k, const lstmrt_kernels *ref, int64_t H, int64_t I, int input,
                           int special)
{
    step_inputs s = make_step_inputs(4 * H, H, I, special);
    float *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = malloc(sizeof(float) * (size_t)H);
    fill(c[0], H, -4.0f, 4.0f);
    for (int i = 1; i < 3; i++)
        memcpy(c[i], c[0], sizeof(float) * (size_t)H);
    if (!s.ok) {
        check(0, k->name, "pack_matrix");
    } else {
        const float *g_in = input ? s.gx : NULL, *b_in = input ? NULL : s.bias;
        const packed_matrix *w_in = input ? NULL : &s.wi;
        const int64_t split = H / 2 / LSTMRT_PANEL * LSTMRT_PANEL; /* out[1]: two unit ranges, as a team splits */
        k->f32_lstm_step(g_in, s.x, w_in, b_in, s.h, &s.wh, c[0], s.out[0], 0, 0, H);
        k->f32_lstm_step(g_in, s.x, w_in, b_in, s.h, &s.wh, c[1], s.out[1], 1, split, H);
        const int untouched = untouched_below(s.out[1], split);
        k->f32_lstm_step(g_in, s.x, w_in, b_in, s.h, &s.wh, c[1], s.out[1], 1, 0, split);
        ref->f32_lstm_step(g_in, s.x, w_in, b_in, s.h, &s.wh, c[2], s.out[2], 0, 0, H);
        int ok = outputs_match(&s, H);
        for (int64_t j = 0; j < H; j++)
            ok &= same(c[0][j], c[2][j], 4e-6 * (1.0 + fabs(c[2][j])));
        char what[160];
        snprintf(what, sizeof what, "lstm_step H=%lld I=%lld input=%s special=%d", (long long)H, (long long)I,
                 input ? "gx" : "x", special);
        check(ok, k->name, what);
        snprintf(what, sizeof what, "lstm_step H=%lld I=%lld: reverse order, split at %lld, bit-identical",
                 (long long)H, (long long)I, (long long)split);
        check(untouched && memcmp(c[0], c[1], sizeof(float) * (size_t)H) == 0 &&
                  memcmp(s.out[0], s.out[1], sizeof(float) * (size_t)H) == 0,
              k->name, what);
    }
    free_step_inputs(&s);
    for (int i = 0; i < 3; i++)
        free(c[i]);
}

static void test_lstm_step(const lstmrt_kernels *k, const lstmrt_kernels *ref)
{
    static const int64_t hs[] = {16, 32, 48, 64, 160};
    static const int64_t is[] = {1, 3, 16, 17};
    for (size_t a = 0; a < sizeof hs / sizeof hs[0]; a++)
        for (size_t b = 0; b < sizeof is / sizeof is[0]; b++)
            for (int v = 0; v < 3; v++)
                lstm_step_case(k, ref, hs[a], is[b], v & 1, v == 2);
}

/* f32_sum against the oracle: every size, random values (relative to the sum of magnitudes), special values. */
static void test_sum(const lstmrt_kernels *k, const lstmrt_kernels *ref)
{
    static const int64_t ns[] = {0, 1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 4099};
    char what[96];
    float *v = malloc(sizeof(float) * 4099);
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        const int64_t n = ns[a];
        double mag = 0.0;
        for (int64_t i = 0; i < n; i++)
            v[i] = uniform(-3.0f, 3.0f), mag += fabs(v[i]);
        snprintf(what, sizeof what, "sum n=%lld", (long long)n);
        check(same(k->f32_sum(v, n), ref->f32_sum(v, n), 1e-6 * (1.0 + mag)), k->name, what);
        if (n == 0)
            continue;
        v[n / 2] = NAN;
        snprintf(what, sizeof what, "sum n=%lld with NaN", (long long)n);
        check(isnan(k->f32_sum(v, n)), k->name, what);
        v[n / 2] = INFINITY;
        snprintf(what, sizeof what, "sum n=%lld with +inf", (long long)n);
        check(k->f32_sum(v, n) == INFINITY, k->name, what);
    }
    free(v);
}

/* The fused one-row GRU step against the scalar oracle; both visiting orders bit-identical. input: 0 = x W_ih^T +
 * bias_x, 1 = precomputed gx; bias_hn on or off. */
static void gru_step_case(const lstmrt_kernels *k, const lstmrt_kernels *ref, int64_t H, int64_t I, int input,
                          int special, int use_bias_hn)
{
    step_inputs s = make_step_inputs(3 * H, H, I, special);
    if (!s.ok) {
        check(0, k->name, "pack_matrix");
    } else {
        const float *g_in = input ? s.gx : NULL, *b_in = input ? NULL : s.bias, *b_hn = use_bias_hn ? s.bias2 : NULL;
        const packed_matrix *w_in = input ? NULL : &s.wi;
        const int64_t split = H / 2 / LSTMRT_PANEL * LSTMRT_PANEL;
        k->f32_gru_step(g_in, s.x, w_in, b_in, s.h, &s.wh, b_hn, s.out[0], 0, 0, H);
        k->f32_gru_step(g_in, s.x, w_in, b_in, s.h, &s.wh, b_hn, s.out[1], 1, split, H);
        const int untouched = untouched_below(s.out[1], split);
        k->f32_gru_step(g_in, s.x, w_in, b_in, s.h, &s.wh, b_hn, s.out[1], 1, 0, split);
        ref->f32_gru_step(g_in, s.x, w_in, b_in, s.h, &s.wh, b_hn, s.out[2], 0, 0, H);
        char what[160];
        snprintf(what, sizeof what, "gru_step H=%lld I=%lld input=%s special=%d bias_hn=%d", (long long)H, (long long)I,
                 input ? "gx" : "x", special, use_bias_hn);
        check(outputs_match(&s, H), k->name, what);
        snprintf(what, sizeof what, "gru_step H=%lld I=%lld: reverse order, split at %lld, bit-identical", (long long)H,
                 (long long)I, (long long)split);
        check(untouched && memcmp(s.out[0], s.out[1], sizeof(float) * (size_t)H) == 0, k->name, what);
    }
    free_step_inputs(&s);
}

static void test_gru_step(const lstmrt_kernels *k, const lstmrt_kernels *ref)
{
    static const int64_t hs[] = {16, 32, 48, 64, 160};
    static const int64_t is[] = {1, 3, 16, 17};
    for (size_t a = 0; a < sizeof hs / sizeof hs[0]; a++)
        for (size_t b = 0; b < sizeof is / sizeof is[0]; b++)
            for (int v = 0; v < 4; v++)
                gru_step_case(k, ref, hs[a], is[b], v & 1, v == 2, v != 3);
}

int main(int argc, char **argv)
{
    verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    const lstmrt_kernels *tables[8];
    const int count = lstmrt__supported_kernels(tables, 8);
    const lstmrt_kernels *ref = &lstmrt_kernels__scalar;
    printf("kernel tiers on this machine:");
    for (int t = 0; t < count; t++)
        printf(" %s", tables[t]->name);
    printf(" (cpu: %s)\n", lstmrt_cpu_features());
    check(count >= 1 && tables[0] == ref, "dispatch", "scalar is always the first tier");
    /* twice: without and with flush-to-zero/denormals-are-zero (the mode the entry points set) */
    for (int ftz = 0; ftz < 2; ftz++) {
        const unsigned saved = ftz ? lstmrt__fp_enter() : 0;
        for (int t = 0; t < count; t++) {
            const lstmrt_kernels *k = tables[t];
            if (verbose)
                printf("tier %s%s\n", k->name, ftz ? " (ftz)" : "");
            test_activation(k, ref, 0);
            test_activation(k, ref, 1);
            if (k == ref)
                continue; /* the oracle's own accuracy is checked above; the rest compares against it */
            test_lstm_cell(k, ref);
            test_gru_cell(k, ref);
            test_gemm(k, ref);
            test_gemv(k, ref);
            test_lstm_step(k, ref);
            test_gru_step(k, ref);
            test_sum(k, ref);
        }
        if (ftz)
            lstmrt__fp_leave(saved);
    }
    printf("test_kernels: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
