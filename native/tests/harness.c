/* The harness (harness.h): counters and context, CHECK / RUN / EXPECT_FAIL, the scratch arena, the random
 * numbers, float comparisons. */
#include "harness.h"

int cases_passed, cases_failed, case_failures;
long checks_run;
const char *case_name = "";
char context[160]; /* which model / variant the current checks are about */

int check_(int ok, int line, const char *expr)
{
    checks_run++;
    if (!ok) {
        case_failures++;
        if (case_failures <= 20)
            printf("FAIL %s [%s] line %d: %s\n", case_name, context, line, expr);
    }
    return ok;
}

void run_case(void (*fn)(void), const char *name)
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

/* Every failing call: the expected status and a message for this thread. */
int expect_status(lstmrt_status got, lstmrt_status want, int line, const char *what)
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

/* Scratch owned by the current test: weights, inputs, outputs. Freed between models. */
#define ARENA_MAX 65536
static void *arena[ARENA_MAX];
static int arena_len;

void *arena_alloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || arena_len == ARENA_MAX) {
        fprintf(stderr, "test arena: out of memory\n");
        exit(2);
    }
    arena[arena_len++] = p;
    return p;
}
void arena_reset(void)
{
    while (arena_len > 0)
        free(arena[--arena_len]);
}
float *new_floats(int64_t n)
{
    return arena_alloc((size_t)n * sizeof(float));
}
double *new_doubles(int64_t n)
{
    return arena_alloc((size_t)n * sizeof(double));
}

/* xorshift64*: fixed seeds, identical on every platform. */
static uint64_t rng_state = 1;
void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
}
double rng_unit(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}
float *random_floats(int64_t n, double scale)
{
    float *p = new_floats(n);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((2.0 * rng_unit() - 1.0) * scale);
    return p;
}

double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = isnan(a[i]) && isnan(b[i]) ? 0.0 : fabs((double)a[i] - (double)b[i]);
        if (!(e <= worst)) /* NaN on one side only counts as infinitely wrong */
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}
double max_rel_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double scale = fabs((double)b[i]) > 1.0 ? fabs((double)b[i]) : 1.0;
        const double e = isnan(a[i]) && isnan(b[i]) ? 0.0 : fabs((double)a[i] - (double)b[i]) / scale;
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}
int same_bits(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}
