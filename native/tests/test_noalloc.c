/* A step never allocates, and the entry points leave the caller's floating-point environment as they found it.
 * Linked with -Wl,--wrap=malloc,... (GNU ld / lld): every allocation the library makes goes through the counting
 * wrappers below. For each kernel tier the machine has and several model shapes (fused and general cells,
 * projection, stacked layers with a dense head, an embedding), stream_step / stream_run (across block
 * boundaries) / reset / get_state / set_state must allocate nothing after lstmrt_stream_create.
 * Usage: test_noalloc. Prints "N passed, M failed"; exit status 0 iff none failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define HAVE_MXCSR 1
#endif

/* ---- counting allocator ---- */
static long allocations;
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n)
{
    allocations++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b)
{
    allocations++;
    return __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n)
{
    allocations++;
    return __real_realloc(p, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    allocations++;
    return __real_posix_memalign(p, a, n);
}

static int passed, failed;
static void check(int ok, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s\n", what);
    }
}

static float *random_floats(size_t n, unsigned seed)
{
    float *v = __real_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.6f;
    }
    return v;
}

/* An add or attention pool: no weights; it reads features from `offset` of point `from` (0: the model input). */
static lstmrt_layer_desc point_reader(lstmrt_layer_kind kind, int32_t I, int32_t H, int32_t from, int32_t offset)
{
    lstmrt_layer_desc L;
    memset(&L, 0, sizeof L);
    L.kind = kind;
    L.input_size = I;
    L.hidden_size = H;
    L.num_directions = 1;
    L.add_from = from;
    L.add_offset = offset;
    return L;
}

/* Weights of one layer; freed by free_layer (after model creation: the model copies them). */
static lstmrt_layer_desc make_layer(lstmrt_layer_kind kind, int32_t I, int32_t H, unsigned seed)
{
    lstmrt_layer_desc L;
    memset(&L, 0, sizeof L);
    L.kind = kind;
    L.input_size = I;
    L.hidden_size = H;
    L.num_directions = 1;
    L.activations[0] = kind == LSTMRT_LAYER_RNN ? LSTMRT_ACT_TANH : LSTMRT_ACT_SIGMOID;
    L.activations[1] = L.activations[2] = LSTMRT_ACT_TANH;
    L.linear_before_reset = 1;
    const int32_t G = kind == LSTMRT_LAYER_LSTM ? 4 : kind == LSTMRT_LAYER_GRU ? 3 : 1;
    const int32_t rows = kind == LSTMRT_LAYER_DENSE ? H : G * H;
    L.weights[0].weight_ih = random_floats((size_t)rows * I, seed);
    L.weights[0].bias_ih = random_floats((size_t)rows, seed + 1);
    if (kind != LSTMRT_LAYER_DENSE) {
        L.weights[0].weight_hh = random_floats((size_t)G * H * H, seed + 2);
        L.weights[0].bias_hh = random_floats((size_t)G * H, seed + 3);
    }
    return L;
}

static void free_layer(lstmrt_layer_desc *L)
{
    free((void *)L->weights[0].weight_ih), free((void *)L->weights[0].weight_hh);
    free((void *)L->weights[0].bias_ih), free((void *)L->weights[0].bias_hh);
    free((void *)L->weights[0].weight_peephole), free((void *)L->weights[0].weight_proj);
}

/* Steps, runs and state calls on one stream: none may allocate. */
/* threads > 1: the stream shares its steps with a team (started by set_threads, before the count begins). */
static void exercise(lstmrt_model_t *m, const char *name, const lstmrt_kernels *k, int32_t batch, int32_t threads)
{
    char what[200];
    m->kernels = k; /* the tier under test (the model took the dispatcher's choice at creation) */
    lstmrt_stream_t *s;
    if (lstmrt_stream_create(m, batch, &s) != LSTMRT_STATUS_OK ||
        lstmrt_stream_set_threads(s, threads) != LSTMRT_STATUS_OK) {
        check(0, "stream_create / set_threads");
        return;
    }
    const int64_t I = lstmrt_model_input_size(m), O = lstmrt_model_output_size(m);
    const int64_t steps = s->chunk * 2 + 3; /* run crosses block boundaries */
    const int embedding = m->layers[0].kind == LSTMRT_LAYER_EMBEDDING;
    float *x = random_floats((size_t)(batch * steps * I), 7);
    if (embedding)
        for (int64_t i = 0; i < batch * steps * I; i++)
            x[i] = (float)(i % m->layers[0].num_embeddings);
    float *y = __real_malloc((size_t)(batch * steps * O) * sizeof(float));
    float *state = __real_malloc((size_t)(batch * lstmrt_model_state_size(m)) * sizeof(float) + 1);
    uint8_t *active = __real_malloc((size_t)batch);
    for (int32_t b = 0; b < batch; b++)
        active[b] = (uint8_t)(b % 3 != 1);

#if defined(HAVE_MXCSR)
    const unsigned mxcsr = _mm_getcsr() & ~0x3Fu; /* without the sticky exception flags */
#endif
    const long before = allocations;
    int ok = 1;
    for (int t = 0; t < 5; t++)
        ok &= lstmrt_stream_step(s, x + t * batch * I, NULL, y) == LSTMRT_STATUS_OK;
    ok &= lstmrt_stream_step(s, x, active, y) == LSTMRT_STATUS_OK;
    ok &= lstmrt_stream_run(s, x, steps, y) == LSTMRT_STATUS_OK;
    ok &= lstmrt_stream_run(s, x, 1, y) == LSTMRT_STATUS_OK;
    ok &= lstmrt_stream_get_state(s, state) == LSTMRT_STATUS_OK;
    lstmrt_stream_reset(s);
    ok &= lstmrt_stream_set_state(s, state) == LSTMRT_STATUS_OK;
    const long made = allocations - before;
    snprintf(what, sizeof what, "%s [%s] batch=%d threads=%d: step/run/state calls succeed", name, k->name, batch,
             lstmrt_stream_threads(s));
    check(ok, what);
    snprintf(what, sizeof what, "%s [%s] batch=%d threads=%d: no allocation after stream_create (saw %ld)", name,
             k->name, batch, lstmrt_stream_threads(s), made);
    check(made == 0, what);
#if defined(HAVE_MXCSR)
    snprintf(what, sizeof what, "%s [%s] batch=%d: MXCSR restored after step/run", name, k->name, batch);
    check((_mm_getcsr() & ~0x3Fu) == mxcsr, what);
#endif
    lstmrt_stream_free(s);
    free(x), free(y), free(state), free(active);
}

int main(void)
{
    const lstmrt_kernels *tables[8];
    const int tiers = lstmrt__supported_kernels(tables, 8);
    const int32_t batches[] = {1, 3, 64};

    /* model shapes: fused cells, general cells (peephole + clip, reset-before GRU), projection, a stack, adds,
     * attention */
    struct {
        const char *name;
        int n;
        lstmrt_layer_desc L[4];
    } models[9];
    models[0].name = "lstm 7->33", models[0].n = 1, models[0].L[0] = make_layer(LSTMRT_LAYER_LSTM, 7, 33, 1);
    models[1].name = "gru 5->16", models[1].n = 1, models[1].L[0] = make_layer(LSTMRT_LAYER_GRU, 5, 16, 2);
    models[2].name = "gru reset-before 4->17", models[2].n = 1, models[2].L[0] = make_layer(LSTMRT_LAYER_GRU, 4, 17, 3);
    models[2].L[0].linear_before_reset = 0;
    models[3].name = "rnn 3->9", models[3].n = 1, models[3].L[0] = make_layer(LSTMRT_LAYER_RNN, 3, 9, 4);
    models[4].name = "lstm peephole+clip+proj 6->20/5", models[4].n = 1;
    models[4].L[0] = make_layer(LSTMRT_LAYER_LSTM, 6, 20, 5);
    models[4].L[0].weights[0].weight_peephole = random_floats(3 * 20, 50);
    models[4].L[0].weights[0].weight_proj = random_floats(5 * 20, 51);
    models[4].L[0].proj_size = 5;
    models[4].L[0].cell_clip = 3.0f;
    models[4].L[0].weights[0].weight_hh = realloc((void *)models[4].L[0].weights[0].weight_hh, 4 * 20 * 5 * 4);
    models[5].name = "lstm 8->32 | gru 32->64 | dense 64->10 softmax", models[5].n = 3;
    models[5].L[0] = make_layer(LSTMRT_LAYER_LSTM, 8, 32, 6);
    models[5].L[1] = make_layer(LSTMRT_LAYER_GRU, 32, 64, 7);
    models[5].L[2] = make_layer(LSTMRT_LAYER_DENSE, 64, 10, 8);
    models[5].L[2].activations[0] = LSTMRT_ACT_SOFTMAX;
    models[6].name = "embedding 50x12 | lstm 12->16", models[6].n = 2;
    memset(&models[6].L[0], 0, sizeof models[6].L[0]);
    models[6].L[0].kind = LSTMRT_LAYER_EMBEDDING;
    models[6].L[0].input_size = 1;
    models[6].L[0].hidden_size = 12;
    models[6].L[0].num_embeddings = 50;
    models[6].L[0].num_directions = 1;
    models[6].L[0].weights[0].weight_ih = random_floats(50 * 12, 9);
    models[6].L[1] = make_layer(LSTMRT_LAYER_LSTM, 12, 16, 10);
    models[7].name = "lstm 4->8 | add its output | dense 8->1 | add input[2:3]", models[7].n = 4;
    models[7].L[0] = make_layer(LSTMRT_LAYER_LSTM, 4, 8, 11);
    models[7].L[1] = point_reader(LSTMRT_LAYER_ADD, 8, 0, 1, 0); /* the kept output of layer 0 */
    models[7].L[2] = make_layer(LSTMRT_LAYER_DENSE, 8, 1, 12);
    models[7].L[3] = point_reader(LSTMRT_LAYER_ADD, 1, 0, 0, 2); /* the model input's feature 2 */
    models[8].name = "gru 3->6 | dense 6->1 | attention of layer 0", models[8].n = 3;
    models[8].L[0] = make_layer(LSTMRT_LAYER_GRU, 3, 6, 13);
    models[8].L[1] = make_layer(LSTMRT_LAYER_DENSE, 6, 1, 14);
    models[8].L[2] = point_reader(LSTMRT_LAYER_ATTENTION_POOL, 1, 6, 1, 0);

    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        lstmrt_model_t *m;
        if (lstmrt_model_create(models[i].L, models[i].n, &m) != LSTMRT_STATUS_OK) {
            printf("cannot create %s: %s\n", models[i].name, lstmrt_last_error());
            check(0, models[i].name);
            continue;
        }
        for (int t = 0; t < tiers; t++) {
            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
                exercise(m, models[i].name, tables[t], batches[b], 1);
            exercise(m, models[i].name, tables[t], 1, 2);  /* models[5]'s GRU (48 KB of W_hh) shares its units */
            exercise(m, models[i].name, tables[t], 64, 2); /* every model shares the rows */
        }
        lstmrt_model_free(m);
        for (int l = 0; l < models[i].n; l++)
            free_layer(&models[i].L[l]);
    }
    printf("test_noalloc: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
