/* Streams: state and scratch allocated once at creation; step and run never allocate. A step validates
 * everything before it touches the state, so a failed call leaves the stream as it was. */
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "team.h"

#define FAIL(...) lstmrt__fail(LSTMRT_STATUS_INVALID_ARGUMENT, __VA_ARGS__)

lstmrt_status lstmrt_stream_create(const lstmrt_model_t *m, int32_t batch, lstmrt_stream_t **out)
{
    lstmrt__clear_error();
    if (!m || !out)
        return FAIL("model and out must not be NULL");
    *out = NULL;
    if (batch < 1 || batch > LSTMRT_MAX_STREAM_BATCH)
        return FAIL("stream batch %d out of range [1, %d]", batch, LSTMRT_MAX_STREAM_BATCH);
    if (m->bidirectional)
        return lstmrt__fail(LSTMRT_STATUS_UNSUPPORTED, "the model has a bidirectional (or go_backwards) layer: it "
                                                       "needs the future, so it cannot be streamed; use predict");
    if (!scratch_fits(m, batch, block_steps(batch), 0.0))
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "a stream of batch %d needs more scratch than fits", batch);
    lstmrt_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate a stream");
    s->model = m;
    s->batch = batch;
    s->chunk = block_steps(batch);
    const size_t state_floats = (size_t)((int64_t)batch * m->state_size);
    const size_t ws_floats = workspace_floats(m, batch, s->chunk);
    s->block = lstmrt__aligned_alloc((state_floats + 16 + ws_floats) * sizeof(float));
    if (!s->block) {
        free(s);
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate a stream of batch %d", batch);
    }
    s->state = s->block;
    memset(s->state, 0, state_floats * sizeof(float));
    workspace_bind(&s->ws, m, batch, s->chunk, (float *)s->block + ((state_floats + 15) & ~(size_t)15));
    *out = s;
    return LSTMRT_STATUS_OK;
}

void lstmrt_stream_free(lstmrt_stream_t *s)
{
    if (!s)
        return;
    team_destroy(s->ws.team);
    lstmrt__aligned_free(s->block);
    free(s);
}

int32_t lstmrt_stream_batch(const lstmrt_stream_t *s)
{
    return s ? s->batch : 0;
}

lstmrt_status lstmrt_stream_set_threads(lstmrt_stream_t *s, int32_t threads)
{
    lstmrt__clear_error();
    if (!s)
        return FAIL("stream must not be NULL");
    if (threads < 1 || threads > LSTMRT_MAX_THREADS)
        return FAIL("threads %d out of range [1, %d]", threads, LSTMRT_MAX_THREADS);
    if (team_members(s->ws.team) == threads)
        return LSTMRT_STATUS_OK;
    team_destroy(s->ws.team);
    s->ws.team = NULL;
    const int64_t shared = team_shared_bytes(s->model, s->batch);
    if (threads == 1 || shared == 0)
        return LSTMRT_STATUS_OK;
    s->ws.team = team_create(threads);
    if (!s->ws.team)
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot start %d threads for the stream", threads - 1);
    s->team_bytes = shared;
    return LSTMRT_STATUS_OK;
}

int32_t lstmrt_stream_threads(const lstmrt_stream_t *s)
{
    return team_members(s ? s->ws.team : NULL);
}

/* The workspace for a call of `steps` steps: the stream's, without its team unless that is worth it now
 * (team_worth: a team whose workers sleep repays waking them only on long calls; then *alone is used). Pair with
 * end_call. */
static const workspace *begin_call(const lstmrt_stream_t *s, int64_t steps, workspace *alone)
{
    if (!s->ws.team || team_worth(s->team_bytes, steps, team_check_in(s->ws.team)))
        return &s->ws;
    *alone = s->ws;
    alone->team = NULL;
    return alone;
}

static void end_call(const lstmrt_stream_t *s)
{
    if (s->ws.team)
        team_check_out(s->ws.team);
}

lstmrt_status lstmrt_stream_step(lstmrt_stream_t *s, const float *x, const uint8_t *active, float *y)
{
    lstmrt__clear_error();
    if (!s || !x || !y)
        return FAIL("stream, x and y must not be NULL");
    const lstmrt_model_t *m = s->model;
    lstmrt_status st = check_tokens(m, x, s->batch, 1);
    if (st != LSTMRT_STATUS_OK)
        return st;
    seq_view xv = {(float *)x, m->input_size, m->input_size}, yv = {y, m->output_size, m->output_size};
    const unsigned fp = lstmrt__fp_enter();
    workspace alone;
    forward_layers(m, begin_call(s, 1, &alone), s->batch, 1, xv, active, 1, s->state, yv, 0, NULL);
    end_call(s);
    lstmrt__fp_leave(fp);
    return LSTMRT_STATUS_OK;
}

lstmrt_status lstmrt_stream_run(lstmrt_stream_t *s, const float *x, int64_t steps, float *y)
{
    lstmrt__clear_error();
    if (!s || !x || !y)
        return FAIL("stream, x and y must not be NULL");
    if (steps < 0)
        return FAIL("steps %lld < 0", (long long)steps);
    const lstmrt_model_t *m = s->model;
    lstmrt_status st = check_tokens(m, x, s->batch, steps);
    if (st != LSTMRT_STATUS_OK)
        return st;
    const int64_t I = m->input_size, O = m->output_size;
    seq_view xv = {(float *)x, steps * I, I}, yv = {y, steps * O, O};
    const unsigned fp = lstmrt__fp_enter();
    workspace alone;
    run_blocks(m, begin_call(s, steps, &alone), s->chunk, s->batch, steps, xv, NULL, 0, s->state, yv, 0, NULL);
    end_call(s);
    lstmrt__fp_leave(fp);
    return LSTMRT_STATUS_OK;
}

void lstmrt_stream_reset(lstmrt_stream_t *s)
{
    if (s)
        memset(s->state, 0, (size_t)(s->batch * s->model->state_size) * sizeof(float));
}

lstmrt_status lstmrt_stream_get_state(const lstmrt_stream_t *s, float *state)
{
    lstmrt__clear_error();
    if (!s || !state)
        return FAIL("stream and state must not be NULL");
    memcpy(state, s->state, (size_t)(s->batch * s->model->state_size) * sizeof(float));
    return LSTMRT_STATUS_OK;
}

lstmrt_status lstmrt_stream_set_state(lstmrt_stream_t *s, const float *state)
{
    lstmrt__clear_error();
    if (!s || !state)
        return FAIL("stream and state must not be NULL");
    const int64_t bad = pool_bad_state(s->model, s->batch, state);
    if (bad >= 0)
        return FAIL("state[%lld] = %g is a pool's count of steps (a whole number in [0, 16777216]) or an attention "
                    "pool's weight sum (in [0, 16777216])",
                    (long long)bad, (double)state[bad]);
    memcpy(s->state, state, (size_t)(s->batch * s->model->state_size) * sizeof(float));
    return LSTMRT_STATUS_OK;
}

lstmrt_status lstmrt_stream_copy(const lstmrt_stream_t *s, lstmrt_stream_t **out)
{
    lstmrt__clear_error();
    if (!s || !out)
        return FAIL("stream and out must not be NULL");
    lstmrt_status st = lstmrt_stream_create(s->model, s->batch, out);
    if (st == LSTMRT_STATUS_OK)
        st = lstmrt_stream_set_threads(*out, lstmrt_stream_threads(s));
    if (st != LSTMRT_STATUS_OK) {
        lstmrt_stream_free(*out);
        *out = NULL;
        return st;
    }
    memcpy((*out)->state, s->state, (size_t)(s->batch * s->model->state_size) * sizeof(float));
    return st;
}
