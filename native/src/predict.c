/* Whole-sequence inference from a zero state. Causal models run in bounded blocks; a bidirectional layer needs
 * every step at once, so such models take scratch for the whole sequence. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

#define FAIL(...) lstmrt__fail(LSTMRT_STATUS_INVALID_ARGUMENT, __VA_ARGS__)

lstmrt_status predict_check_args(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps,
                                 const int32_t *lengths, float *y)
{
    if (!m || !x || !y)
        return FAIL("model, x and y must not be NULL");
    if (batch < 1 || steps < 0 || batch > ((int64_t)1 << 40) / (steps ? steps : 1))
        return FAIL("batch %lld / steps %lld out of range", (long long)batch, (long long)steps);
    if (lengths)
        for (int64_t b = 0; b < batch; b++)
            if (lengths[b] < 0 || lengths[b] > steps)
                return FAIL("lengths[%lld] = %d is outside [0, %lld]", (long long)b, lengths[b], (long long)steps);
    return check_tokens(m, x, batch, steps);
}

/* Bidirectional and go_backwards layers read the future; a final_only layer writes its last h to every step.
 * Either way no step's output is known before the last step has run, so such models run in one block. */
static int needs_whole_sequence(const lstmrt_model_t *m)
{
    for (int32_t l = 0; l < m->num_layers; l++)
        if (m->layers[l].final_only)
            return 1;
    return m->bidirectional;
}

lstmrt_status lstmrt_model_predict(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps,
                                   const int32_t *lengths, const uint8_t *mask, float *y)
{
    return predict_in_team(m, x, batch, steps, lengths, mask, y, NULL);
}

lstmrt_status predict_in_team(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps,
                              const int32_t *lengths, const uint8_t *mask, float *y, struct team *team)
{
    lstmrt__clear_error();
    lstmrt_status s = predict_check_args(m, x, batch, steps, lengths, y);
    if (s != LSTMRT_STATUS_OK || steps == 0)
        return s;
    const int64_t block = needs_whole_sequence(m) ? steps : (steps < block_steps(batch) ? steps : block_steps(batch));
    /* Scratch grows with batch x block x the widest layer, plus a byte per step for lengths / mask */
    if (!scratch_fits(m, batch, block, (double)batch * (double)steps))
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "scratch for %lld x %lld steps exceeds the address space",
                            (long long)batch, (long long)steps);
    const size_t ws_floats = workspace_floats(m, batch, block);
    const size_t state_floats = (size_t)(batch * m->state_size);
    const size_t active_bytes = (lengths || mask) ? (size_t)(batch * steps) : 0;
    float *mem = lstmrt__aligned_alloc((ws_floats + state_floats) * sizeof(float) + active_bytes);
    if (!mem)
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate scratch for %lld x %lld steps",
                            (long long)batch, (long long)steps);
    workspace ws;
    workspace_bind(&ws, m, batch, block, mem);
    ws.team = team;
    float *state = mem + ws_floats;
    memset(state, 0, state_floats * sizeof(float));
    uint8_t *active = NULL;
    if (active_bytes) {
        active = (uint8_t *)(state + state_floats);
        for (int64_t b = 0; b < batch; b++)
            for (int64_t t = 0; t < steps; t++)
                active[b * steps + t] = (!lengths || t < lengths[b]) && (!mask || mask[b * steps + t]);
    }
    const int64_t I = m->input_size, O = m->output_size;
    seq_view xv = {(float *)x, steps * I, I}, yv = {y, steps * O, O};
    const unsigned fp = lstmrt__fp_enter();
    run_blocks(m, &ws, block, batch, steps, xv, active, steps, state, yv, 1, lengths);
    lstmrt__fp_leave(fp);
    if (lengths)
        for (int64_t b = 0; b < batch; b++)
            memset(y + (b * steps + lengths[b]) * O, 0, (size_t)((steps - lengths[b]) * O) * sizeof(float));
    lstmrt__aligned_free(mem);
    return LSTMRT_STATUS_OK;
}
