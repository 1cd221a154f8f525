/* Error paths: the right status, a message, and no effect. Model creation (and activation parameters), out of
 * memory, predict and stream arguments, token ids; status strings and the benchmark probes. */
#include <float.h>

#include "cases.h"
#include "internal.h" /* one test drives forward_layers directly */
#include "spec.h"

void test_model_create_errors(void)
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
    enum { NCASES = 47 };
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
        case 27:
            d->kind = LSTMRT_LAYER_NORM;
            d->epsilon = -1e-5f;
            break;
        case 28:
            d->kind = LSTMRT_LAYER_NORM;
            d->epsilon = NAN;
            break;
        case 29:
            d->kind = LSTMRT_LAYER_NORM;
            d->epsilon = INFINITY;
            break;
        case 30:
            d->kind = LSTMRT_LAYER_NORM;
            d->norm_mode = LSTMRT_NORM_MODE_COUNT;
            break;
        case 31: /* an RMS norm has no shift */
            d->kind = LSTMRT_LAYER_NORM;
            d->norm_mode = LSTMRT_NORM_RMS;
            d->weights[0].bias_ih = dummy;
            break;
        case 32:
            d->kind = LSTMRT_LAYER_GLOBAL_POOL;
            d->pool_mode = LSTMRT_POOL_MODE_COUNT;
            break;
        case 33:
            d->kind = LSTMRT_LAYER_GLOBAL_POOL;
            d->pool_mode = (lstmrt_pool_mode)-1;
            break;
        case 34: /* layer 0 can add only the model input */
            d->kind = LSTMRT_LAYER_ADD;
            d->add_from = 1;
            break;
        case 35:
            d->kind = LSTMRT_LAYER_ADD;
            d->add_from = -1;
            break;
        case 36:
            d->kind = LSTMRT_LAYER_ADD;
            d->add_offset = -1;
            break;
        case 37: /* features [1, 8) of a 7-feature input */
            d->kind = LSTMRT_LAYER_ADD;
            d->add_offset = 1;
            break;
        case 38: /* the slice's end overflows int32 */
            d->kind = LSTMRT_LAYER_ADD;
            d->add_offset = INT32_MAX;
            break;
        case 39: /* a slope has no default */
            d->kind = LSTMRT_LAYER_PRELU;
            d->weights[0].weight_ih = NULL;
            break;
        case 40:
            d->kind = LSTMRT_LAYER_PRELU;
            d->num_directions = 2;
            break;
        case 41: /* 7 scores for 17 features: one score, or one per feature */
            d->kind = LSTMRT_LAYER_ATTENTION_POOL;
            break;
        case 42:
            d->kind = LSTMRT_LAYER_ATTENTION_POOL;
            d->input_size = 1;
            d->hidden_size = 0;
            break;
        case 43: /* layer 0 attends only to the model input */
            d->kind = LSTMRT_LAYER_ATTENTION_POOL;
            d->input_size = d->hidden_size = 7;
            d->add_from = 1;
            break;
        case 44: /* features [1, 8) of a 7-feature input */
            d->kind = LSTMRT_LAYER_ATTENTION_POOL;
            d->input_size = d->hidden_size = 7;
            d->add_offset = 1;
            break;
        case 45: /* the slice's end overflows int32 */
            d->kind = LSTMRT_LAYER_ATTENTION_POOL;
            d->input_size = d->hidden_size = 7;
            d->add_offset = INT32_MAX;
            break;
        case 46: /* no activation to take a parameter */
            d->kind = LSTMRT_LAYER_ATTENTION_POOL;
            d->input_size = d->hidden_size = 7;
            d->activation_alpha[0] = 0.5f;
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
    make_spec(27, &s); /* layer 6 adds features [4, 6) of layer 0's 6 */
    s.layers[6].add_offset = 5;
    EXPECT_FAIL(lstmrt_model_create(s.layers, s.n, &m), INVALID);
    CHECK(m == NULL && strstr(lstmrt_last_error(), "layer 6: adds features [5, 7)") != NULL);
    make_spec(27, &s); /* layer 2 adds layer 0's output: the add must come after it */
    s.layers[2].add_from = 3;
    EXPECT_FAIL(lstmrt_model_create(s.layers, s.n, &m), INVALID);
    CHECK(m == NULL && strstr(lstmrt_last_error(), "add_from 3 must be in [0, 2]") != NULL);

    /* A prelu: its slope named when missing; its width is its input's, whatever hidden_size says. */
    {
        spec t;
        start_spec(&t, 90, "model_create prelu");
        push(&t, LSTMRT_LAYER_PRELU, 7, 0);
        push(&t, LSTMRT_LAYER_DENSE, 7, 3);
        add_weights(&t);
        t.layers[0].hidden_size = 5;
        CHECK(lstmrt_model_create(t.layers, 2, &m) == LSTMRT_STATUS_OK && lstmrt_model_output_size(m) == 3);
        lstmrt_model_free(m);
        t.layers[1].input_size = 5;
        EXPECT_FAIL(lstmrt_model_create(t.layers, 2, &m), INVALID);
        CHECK(m == NULL && strstr(lstmrt_last_error(), "layer 1: input_size 5 but layer 0 outputs 7 features") != NULL);
        t.layers[1].input_size = 7;
        t.layers[0].weights[0].weight_ih = NULL;
        EXPECT_FAIL(lstmrt_model_create(t.layers, 2, &m), INVALID);
        CHECK(m == NULL && strstr(lstmrt_last_error(), "layer 0: prelu slope (weight_ih) is NULL") != NULL);
    }

    /* A success afterwards clears the message. */
    CHECK(lstmrt_model_create(ok.layers, 1, &m) == LSTMRT_STATUS_OK && m != NULL);
    CHECK(lstmrt_last_error()[0] == '\0');
    lstmrt_model_free(m);
    arena_reset();
}

void test_out_of_memory(void)
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
void test_embedding_id_changed_during_call(void)
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

void test_predict_errors(void)
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

void test_stream_errors(void)
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
    /* The message: the id (an integral one exactly: %g would print 1e+30), its row and step, why; NaN last. The
     * printf text of the last three varies by platform: only their position and reason are compared. */
    static const char *const shown[] = {"-1", "11", "2.5", "1000000015047466219876688855040"};
    static const char *const why[] = {"is outside",           "is outside", "is not an integer in", "is outside",
                                      "is not an integer in", "is outside", "is not an integer in"};
    for (size_t k = 0; k < sizeof bad_ids / sizeof bad_ids[0] + 1; k++) {
        const float bad = k < sizeof bad_ids / sizeof bad_ids[0] ? bad_ids[k] : NAN;
        float xb[2 * 8];
        char want[160];
        memcpy(xb, x, sizeof xb);
        snprintf(context, sizeof context, "stream bad token %g", (double)bad);
        xb[1] = bad; /* second row of a step */
        EXPECT_FAIL(lstmrt_stream_step(st, xb, NULL, y), INVALID);
        if (k < sizeof shown / sizeof shown[0]) {
            snprintf(want, sizeof want, "token id %s at row 1, step 0 %s [0, 10]", shown[k], why[k]);
            CHECK(strcmp(lstmrt_last_error(), want) == 0);
        }
        snprintf(want, sizeof want, " at row 1, step 0 %s [0, 10]", why[k]);
        CHECK(strncmp(lstmrt_last_error(), "token id ", 9) == 0 && strstr(lstmrt_last_error(), want) != NULL);
        CHECK(state_equals(st, state, S, buf) && same_bits(y, before, 2 * 8 * 4));
        memcpy(xb, x, sizeof xb);
        xb[2 * 8 - 1] = bad; /* last step of the last sequence: found before anything runs */
        snprintf(want, sizeof want, " at row 1, step 7 %s [0, 10]", why[k]);
        EXPECT_FAIL(lstmrt_stream_run(st, xb, 8, y), INVALID);
        CHECK(strstr(lstmrt_last_error(), want) != NULL);
        CHECK(state_equals(st, state, S, buf) && same_bits(y, before, 2 * 8 * 4));
        EXPECT_FAIL(lstmrt_model_predict(m, xb, 2, 8, NULL, NULL, y), INVALID);
        CHECK(strstr(lstmrt_last_error(), want) != NULL);
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

/* A pool's count of steps in set_state must be a whole number in [0, 2^24]: anything else is refused, the stream
 * unchanged. */
void test_pool_state_errors(void)
{
    spec s;
    lstmrt_model_t *m = open_spec(23, &s); /* lstm 4-6 + average pool 6 + dense 6-3 */
    lstmrt_stream_t *st = NULL;
    CHECK(m && lstmrt_stream_create(m, 2, &st) == LSTMRT_STATUS_OK);
    if (!st) {
        lstmrt_model_free(m);
        return;
    }
    const int64_t S = 2 * lstmrt_model_state_size(m); /* lstm h, c (2 x 6 each), pool values (2 x 6), counts (2) */
    float x[8] = {0.5f, -1.0f, 0.25f, 2.0f, 1.0f, 0.0f, -0.5f, 0.75f}, y[6];
    CHECK(lstmrt_stream_step(st, x, NULL, y) == LSTMRT_STATUS_OK);
    float *state = new_floats(S), *buf = new_floats(S), *bad = new_floats(S);
    CHECK(lstmrt_stream_get_state(st, state) == LSTMRT_STATUS_OK);
    CHECK(state[S - 2] == 1.0f && state[S - 1] == 1.0f);
    const float wrong[] = {-1.0f, 0.5f, NAN, INFINITY, 16777217.0f * 2.0f};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        snprintf(context, sizeof context, "set_state pool count %g", (double)wrong[i]);
        memcpy(bad, state, (size_t)S * sizeof(float));
        bad[S - 1] = wrong[i];
        EXPECT_FAIL(lstmrt_stream_set_state(st, bad), INVALID);
        CHECK(strstr(lstmrt_last_error(), "count") != NULL);
        CHECK(state_equals(st, state, S, buf));
    }
    snprintf(context, sizeof context, "set_state pool counts 0 and 2^24");
    bad[S - 2] = 0.0f;
    bad[S - 1] = 16777216.0f;
    CHECK(lstmrt_stream_set_state(st, bad) == LSTMRT_STATUS_OK);
    lstmrt_stream_free(st);
    lstmrt_model_free(m);
    arena_reset();
}

void test_status_strings(void)
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
void test_probes(void)
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

/* activation_alpha: refused where the activation takes no parameter, in a slot the layer kind does not read, and
 * outside the activation's domain, with the layer, slot and value in the message; accepted at the domain's edges. */
void test_activation_alpha_errors(void)
{
    static const struct {
        lstmrt_layer_kind kind;
        int slot;
        lstmrt_activation act; /* put in that slot */
        float alpha;
        const char *shown; /* the value as the message prints it; NULL: printf's text varies (NaN, inf) */
        int accepted;
    } cases[] = {
        /* an activation that takes none, in a slot its layer reads */
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_RELU, 0.1f, "0.1", 0},
        {LSTMRT_LAYER_ACTIVATION, 0, LSTMRT_ACT_SOFTMAX, 1.0f, "1", 0},
        {LSTMRT_LAYER_LSTM, 2, LSTMRT_ACT_TANH, -0.25f, "-0.25", 0},
        {LSTMRT_LAYER_GRU, 0, LSTMRT_ACT_SPARSE_SIGMOID, 0.5f, "0.5", 0},
        {LSTMRT_LAYER_RNN, 0, LSTMRT_ACT_HARD_TANH, 1e-30f, "1e-30", 0},
        /* a slot the kind does not read, even holding an activation that takes a parameter */
        {LSTMRT_LAYER_DENSE, 1, LSTMRT_ACT_LEAKY_RELU, 0.5f, "0.5", 0},
        {LSTMRT_LAYER_ACTIVATION, 2, LSTMRT_ACT_CELU, 1.0f, "1", 0},
        {LSTMRT_LAYER_RNN, 1, LSTMRT_ACT_SQUAREPLUS, 4.0f, "4", 0},
        {LSTMRT_LAYER_GRU, 2, LSTMRT_ACT_LEAKY_RELU, 0.2f, "0.2", 0},
        {LSTMRT_LAYER_AFFINE, 0, LSTMRT_ACT_LEAKY_RELU, 0.2f, "0.2", 0},
        {LSTMRT_LAYER_PRELU, 0, LSTMRT_ACT_LEAKY_RELU, 0.25f, "0.25", 0}, /* the slope is weight_ih, not alpha */
        {LSTMRT_LAYER_PRELU, 1, LSTMRT_ACT_SIGMOID, -1.0f, "-1", 0},
        {LSTMRT_LAYER_NORM, 0, LSTMRT_ACT_SIGMOID, 2.0f, "2", 0},
        {LSTMRT_LAYER_EMBEDDING, 1, LSTMRT_ACT_SIGMOID, -1.0f, "-1", 0},
        {LSTMRT_LAYER_GLOBAL_POOL, 0, LSTMRT_ACT_SIGMOID, 3.0f, "3", 0},
        {LSTMRT_LAYER_ADD, 2, LSTMRT_ACT_SIGMOID, 0.5f, "0.5", 0},
        /* outside the domain: celu divides by alpha; a lambda or squareplus's b is >= 0; all finite */
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_CELU, 0.0f, "0", 0},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_CELU, -0.0f, "-0", 0},
        {LSTMRT_LAYER_LSTM, 1, LSTMRT_ACT_CELU, 0.0f, "0", 0},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_CELU, INFINITY, NULL, 0},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_LEAKY_RELU, NAN, NULL, 0},
        {LSTMRT_LAYER_ACTIVATION, 0, LSTMRT_ACT_LEAKY_RELU, -INFINITY, NULL, 0},
        {LSTMRT_LAYER_RNN, 0, LSTMRT_ACT_LEAKY_RELU, INFINITY, NULL, 0},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_HARD_SHRINK, -0.5f, "-0.5", 0},
        {LSTMRT_LAYER_ACTIVATION, 0, LSTMRT_ACT_SOFT_SHRINK, -1e-30f, "-1e-30", 0},
        {LSTMRT_LAYER_GRU, 1, LSTMRT_ACT_SQUAREPLUS, -4.0f, "-4", 0},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_SQUAREPLUS, INFINITY, NULL, 0},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_HARD_SHRINK, NAN, NULL, 0},
        {LSTMRT_LAYER_ACTIVATION, 0, LSTMRT_ACT_SOFT_SHRINK, INFINITY, NULL, 0},
        /* the edges of the domains */
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_LEAKY_RELU, 0.0f, NULL, 1},
        {LSTMRT_LAYER_RNN, 0, LSTMRT_ACT_LEAKY_RELU, -1e30f, NULL, 1},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_CELU, -1e-30f, NULL, 1},
        {LSTMRT_LAYER_ACTIVATION, 0, LSTMRT_ACT_CELU, FLT_MAX, NULL, 1},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_HARD_SHRINK, 0.0f, NULL, 1},
        {LSTMRT_LAYER_DENSE, 0, LSTMRT_ACT_HARD_SHRINK, -0.0f, NULL, 1}, /* -0 == 0 */
        {LSTMRT_LAYER_LSTM, 2, LSTMRT_ACT_SOFT_SHRINK, FLT_MAX, NULL, 1},
        {LSTMRT_LAYER_GRU, 1, LSTMRT_ACT_SQUAREPLUS, 0.0f, NULL, 1},
        {LSTMRT_LAYER_ACTIVATION, 0, LSTMRT_ACT_SQUAREPLUS, FLT_MAX, NULL, 1},
        {LSTMRT_LAYER_DENSE, 1, LSTMRT_ACT_LEAKY_RELU, 0.0f, NULL, 1}, /* an unread slot at 0 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        spec s;
        char want[96];
        snprintf(context, sizeof context, "activation_alpha case %zu: kind %d, slot %d, activation %d, alpha %g", c,
                 (int)cases[c].kind, cases[c].slot, (int)cases[c].act, (double)cases[c].alpha);
        blank_spec(&s, 60 + c);
        const int embedding = cases[c].kind == LSTMRT_LAYER_EMBEDDING;
        lstmrt_layer_desc *d = push(&s, cases[c].kind, embedding ? 1 : 3, 4);
        d->num_embeddings = 5;
        add_weights(&s);
        set_act(d, cases[c].slot, cases[c].act, cases[c].alpha);
        lstmrt_model_t *m = (lstmrt_model_t *)&s;
        if (cases[c].accepted) {
            CHECK(lstmrt_model_create(s.layers, 1, &m) == LSTMRT_STATUS_OK && m != NULL);
            lstmrt_model_free(m);
        } else {
            EXPECT_FAIL(lstmrt_model_create(s.layers, 1, &m), INVALID);
            snprintf(want, sizeof want, "layer 0: activation_alpha[%d] = %s", cases[c].slot,
                     cases[c].shown ? cases[c].shown : "");
            CHECK(m == NULL && strstr(lstmrt_last_error(), want) != NULL);
        }
        arena_reset();
    }
    /* a later layer: the message names it */
    spec s;
    make_spec(29, &s); /* lstm, dense leaky_relu(0.01), activation leaky_relu(-0.5) */
    snprintf(context, sizeof context, "activation_alpha of layer 2");
    s.layers[2].activation_alpha[0] = NAN;
    lstmrt_model_t *m = NULL;
    EXPECT_FAIL(lstmrt_model_create(s.layers, s.n, &m), INVALID);
    CHECK(m == NULL && strstr(lstmrt_last_error(), "layer 2: activation_alpha[0] = ") != NULL);
    arena_reset();
}
