/* Streams on every causal model: steps, batched steps, runs, active rows, reset, state round trips and copies,
 * all against predict. */
#include "cases.h"
#include "spec.h"

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
    /* batched state is per layer and part (h (batch, Hr), c (batch, H), a pool's values, its counts): compare block by
       block, relative to the values (an attention pool's weight sums grow with the steps) */
    int64_t off = 0;
    for (int l = 0; l < s->n; l++) {
        int sizes[4];
        const int parts = state_parts(&s->layers[l], sizes);
        for (int part = 0; part < parts; part++) {
            const int n = sizes[part];
            for (int b = 0; b < PB; b++) {
                CHECK(lstmrt_stream_get_state(single[b], st_1) == LSTMRT_STATUS_OK);
                CHECK(max_rel_diff(st_b + off * PB + (int64_t)b * n, st_1 + off, n) <= SAME_TOL);
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

void test_stream_invariants(void)
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
