/* The sweep policy of one-row products, and teams (team.h): the barrier, shares, bit-identical results with a
 * team, and when a call wakes the workers. */
#include <time.h>

#include "cases.h"
#include "internal.h"
#include "recurrent.h" /* the sweep policy */
#include "spec.h"
#include "team.h" /* teams: the barrier itself */

/* One-row products sweep forwards while the weights they read fit in L1, and alternate above (recurrent.h). */
void test_sweep_policy(void)
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
void test_teams(void)
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
void test_team_wake(void)
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
