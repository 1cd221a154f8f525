/* Cycles: the lifetime workload for valgrind (every allocation and free path, including failing calls), run by
 * test_lstmrt --cycles N. */
#include "cases.h"
#include "model_bytes.h"
#include "spec.h"

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
        /* the model's file: loaded, it predicts the same; cut short, it is refused */
        const model_file f = model_bytes(s.layers, s.n, "{}");
        lstmrt_model_t *loaded = NULL;
        float *y2 = new_floats(B * T * O);
        CHECK(lstmrt_model_load(f.bytes, f.size, &loaded) == LSTMRT_STATUS_OK);
        CHECK(lstmrt_model_predict(loaded, x, B, T, lengths, mask, y2) == LSTMRT_STATUS_OK);
        CHECK(lstmrt_model_predict(m, x, B, T, lengths, mask, y) == LSTMRT_STATUS_OK && same_bits(y, y2, B * T * O));
        lstmrt_model_free(loaded);
        EXPECT_FAIL(lstmrt_model_load(f.bytes, f.size - 4, &loaded), INVALID);
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

int run_cycles(long cycles)
{
    case_name = "cycles";
    printf("kernel tier: %s\n", lstmrt_kernel_tier());
    /* once each: the partial-allocation failure path (its 64 MB bias buffer makes it slow under valgrind), and
     * the model file corruption sweep (every damaged file the reader refuses or loads, and the model it loads) */
    static void (*const once[])(void) = {test_out_of_memory, test_model_file_corruption};
    for (size_t k = 0; k < sizeof once / sizeof once[0]; k++) {
        case_failures = 0;
        once[k]();
        if (case_failures)
            cases_failed++;
        else
            cases_passed++;
    }
    for (long r = 0; r < cycles; r++) {
        case_failures = 0;
        if (cycle_once((int)r))
            cases_passed++;
        else
            cases_failed++;
    }
    printf("cycles: %ld x %d models (create, predict, stream step/run/copy/state, model file, free, failing calls)\n",
           cycles, NUM_SPECS);
    printf("%d passed, %d failed\n", cases_passed, cases_failed);
    return cases_failed == 0 ? 0 : 1;
}
