/* Runs the chain of layers over a block of steps. Intermediate activations ping-pong between two workspace
 * buffers; the last layer writes straight into the caller's output. Recurrent state is updated in place. A
 * workspace's team (team.h) shares the rows of a batch, or the hidden units of a single row's steps. */
#include "recurrent.h"
#include "team.h"

static void run_dense(const lstmrt_kernels *k, const layer *L, int64_t batch, int64_t steps, seq_view x, seq_view y)
{
    for (int64_t b = 0; b < batch; b++) {
        float *yb = seq_row(y, b, 0);
        k->f32_gemm(steps, seq_row(x, b, 0), x.time_stride, &L->dense, L->vec_a, 0, yb, y.time_stride);
        apply_activation(k, L->act[0], yb, steps, L->output_size, y.time_stride);
    }
}

/* The ids were validated before the call, but Python releases the GIL around long calls, so another thread may
 * rewrite x meanwhile: a changed id gives a zero row (as Keras does for masked ids), never a read out of bounds. */
static void embed(const layer *L, float id, float *y)
{
    const int64_t n = L->output_size;
    if (id >= 0.0f && id < (float)L->num_embeddings)
        memcpy(y, L->vec_a + (int64_t)id * n, (size_t)n * sizeof(float));
    else
        memset(y, 0, (size_t)n * sizeof(float));
}

/* y = x >= 0 ? x : slope * x (>= as ONNX: -0 stays -0; NaN is not >= 0 and stays NaN), written as a select of bits:
 * GCC (with its default -ftrapping-math) vectorises neither a float ?: nor a conditional product, but does this, ~15x
 * faster than the branch on inputs of random sign. y may be x. */
static void prelu_row(const float *slope, const float *x, float *y, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        const float sloped = slope[j] * x[j];
        const uint32_t negative = 0u - (uint32_t)!(x[j] >= 0.0f); /* all ones where the slope applies */
        uint32_t kept, taken;
        memcpy(&kept, &x[j], sizeof kept);
        memcpy(&taken, &sloped, sizeof taken);
        const uint32_t bits = (taken & negative) | (kept & ~negative);
        memcpy(&y[j], &bits, sizeof bits);
    }
}

static void run_elementwise(const lstmrt_kernels *k, const layer *L, int64_t batch, int64_t steps, seq_view x,
                            seq_view y)
{
    const int64_t n = L->output_size;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < steps; t++) {
            const float *xr = seq_row(x, b, t);
            float *yr = seq_row(y, b, t);
            if (L->kind == LSTMRT_LAYER_AFFINE)
                for (int64_t j = 0; j < n; j++)
                    yr[j] = xr[j] * L->vec_a[j] + L->vec_b[j];
            else if (L->kind == LSTMRT_LAYER_PRELU)
                prelu_row(L->vec_a, xr, yr, n);
            else if (L->kind == LSTMRT_LAYER_EMBEDDING)
                embed(L, xr[0], yr);
            else if (L->kind == LSTMRT_LAYER_NORM)
                norm_row(L, xr, yr);
            else
                memcpy(yr, xr, (size_t)n * sizeof(float));
        }
    if (L->kind == LSTMRT_LAYER_ACTIVATION)
        for (int64_t b = 0; b < batch; b++)
            apply_activation(k, L->act[0], seq_row(y, b, 0), steps, n, y.time_stride);
}

/* y = x + the slice of s the add reads, s the model input or a kept layer output of the same rows and steps. */
static void run_add(const layer *L, int64_t batch, int64_t steps, seq_view x, seq_view s, seq_view y)
{
    const int64_t n = L->output_size;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < steps; t++) {
            const float *xr = seq_row(x, b, t), *sr = seq_row(s, b, t) + L->add_offset;
            float *yr = seq_row(y, b, t);
            for (int64_t j = 0; j < n; j++)
                yr[j] = xr[j] + sr[j];
        }
}

/* Where layer L's output goes: the caller's y for the last layer, its slot of the kept buffer when an add reads it
 * later, else the ping-pong buffer its position picks (the previous layer's output is in the other one or kept). */
static seq_view layer_output(const lstmrt_model_t *m, const workspace *ws, int32_t l, int64_t batch, int64_t steps,
                             seq_view y)
{
    const layer *L = &m->layers[l];
    if (l + 1 == m->num_layers)
        return y;
    if (L->kept_at >= 0)
        return (seq_view){ws->kept + batch * steps * L->kept_at, steps * L->output_size, L->output_size};
    float *buf = (l % 2 == 0) ? ws->act_a : ws->act_b;
    return (seq_view){buf, steps * L->output_size, L->output_size};
}

/* One direction's share of the layer's state: h, then an LSTM's c. */
static int64_t direction_state_floats(const layer *L, int64_t batch)
{
    return batch * L->state_floats / L->num_directions;
}

/* One direction over rows [b0, b1) of the batch: their inputs, outputs and state (h rows, then c rows of the whole
 * batch), and their own slices of the scratch, so that members of a team can run disjoint rows at once. A slice
 * of fewer rows than the batch runs without the team. */
static void direction_rows(const lstmrt_kernels *k, const layer *L, int dir, const workspace *ws, int64_t batch,
                           int64_t b0, int64_t b1, int64_t steps, seq_view x, const uint8_t *active,
                           int64_t active_stride, float *state, seq_view y)
{
    const packed_direction *d = &L->dir[dir];
    const int reverse = dir == 1 || L->go_backwards;
    const int64_t n = b1 - b0, H = L->hidden_size, Hr = L->state_h_size;
    workspace rows = *ws;
    rows.gates = ws->gates + b0 * steps * L->gates * H;
    rows.aux = ws->aux + b0 * 4 * H; /* the directions use at most 4H floats of aux per row */
    rows.team = n == batch ? ws->team : NULL;
    const seq_view xr = {x.data + b0 * x.batch_stride, x.batch_stride, x.time_stride};
    const seq_view yr = {y.data + b0 * y.batch_stride, y.batch_stride, y.time_stride};
    const uint8_t *ar = active ? active + b0 * active_stride : NULL;
    float *h = state + b0 * Hr;
    switch (L->kind) {
    case LSTMRT_LAYER_LSTM:
        lstm_direction(k, L, d, &rows, n, steps, reverse, xr, ar, active_stride, h, state + batch * Hr + b0 * H, yr);
        break;
    case LSTMRT_LAYER_GRU: gru_direction(k, L, d, &rows, n, steps, reverse, xr, ar, active_stride, h, yr); break;
    default: rnn_direction(k, L, d, &rows, n, steps, reverse, xr, ar, active_stride, h, yr); break;
    }
}

typedef struct rows_job {
    const lstmrt_kernels *k;
    const layer *L;
    int dir;
    const workspace *ws;
    int64_t batch, steps;
    seq_view x;
    const uint8_t *active;
    int64_t active_stride;
    float *state;
    seq_view y;
} rows_job;

/* Shares of at least two rows: a single row would take the one-row kernels, whose sums round differently from the
 * batch's GEMM, and the result must not depend on the team. */
static void rows_member(void *arg, int member, int members)
{
    const rows_job *J = arg;
    const int used = J->batch / 2 < members ? (int)(J->batch / 2) : members;
    int64_t b0 = 0, b1 = 0;
    if (member < used)
        team_share(J->batch, 1, member, used, &b0, &b1);
    if (b1 > b0)
        direction_rows(J->k, J->L, J->dir, J->ws, J->batch, b0, b1, J->steps, J->x, J->active, J->active_stride,
                       J->state, J->y);
}

/* Rows are independent sequences: with a team, each member runs its share of them, no barrier needed. */
static void run_direction(const lstmrt_kernels *k, const layer *L, int dir, const workspace *ws, int64_t batch,
                          int64_t steps, seq_view x, const uint8_t *active, int64_t active_stride, float *state,
                          seq_view y)
{
    if (batch > 1 && team_alive(ws->team) && team_rows_gain(L, batch)) {
        rows_job job = {k, L, dir, ws, batch, steps, x, active, active_stride, state, y};
        team_run(ws->team, rows_member, &job);
        return;
    }
    direction_rows(k, L, dir, ws, batch, 0, batch, steps, x, active, active_stride, state, y);
}

static void merge_directions(const layer *L, int64_t batch, int64_t steps, seq_view fw, seq_view bw)
{
    const int64_t n = L->state_h_size;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < steps; t++) {
            float *f = seq_row(fw, b, t);
            const float *r = seq_row(bw, b, t);
            for (int64_t j = 0; j < n; j++) {
                switch (L->merge_mode) {
                case LSTMRT_MERGE_SUM: f[j] += r[j]; break;
                case LSTMRT_MERGE_MUL: f[j] *= r[j]; break;
                default: f[j] = 0.5f * (f[j] + r[j]); break;
                }
            }
        }
}

/* Keras return_sequences=False: every step gets the direction's last output (Keras's last_output), the output of
 * the last step it ran within the sequence's length: the step at length - 1, or step 0 when it runs backwards. That
 * is its h after that step; if the step was masked, 0 (zero_output_for_mask) or the h carried through it, as
 * written there. A sequence of length 0 gets the zero state. */
static void broadcast_final(const layer *L, int reverse, int64_t batch, int64_t steps, const int32_t *lengths,
                            const float *state, seq_view y)
{
    const int64_t n = L->state_h_size;
    for (int64_t b = 0; b < batch; b++) {
        const int64_t length = lengths ? lengths[b] : steps;
        const int64_t last = length == 0 ? -1 : (reverse ? 0 : length - 1);
        const float *src = last < 0 ? state + b * n : seq_row(y, b, last);
        for (int64_t t = 0; t < steps; t++)
            if (t != last)
                memcpy(seq_row(y, b, t), src, (size_t)n * sizeof(float));
    }
}

static void run_recurrent(const lstmrt_kernels *k, const layer *L, const workspace *ws, int64_t batch, int64_t steps,
                          seq_view x, const uint8_t *active, int64_t active_stride, float *state, seq_view y,
                          int whole_sequence, const int32_t *lengths)
{
    const int final_only = L->final_only && whole_sequence;
    if (L->num_directions == 1) {
        run_direction(k, L, 0, ws, batch, steps, x, active, active_stride, state, y);
        if (final_only)
            broadcast_final(L, L->go_backwards, batch, steps, lengths, state, y);
        return;
    }
    const int64_t Hr = L->state_h_size;
    float *state_bw = state + direction_state_floats(L, batch);
    seq_view bw = {ws->dirbuf, steps * Hr, Hr};
    if (L->merge_mode == LSTMRT_MERGE_CONCAT)
        bw = (seq_view){y.data + Hr, y.batch_stride, y.time_stride};
    run_direction(k, L, 0, ws, batch, steps, x, active, active_stride, state, y);
    run_direction(k, L, 1, ws, batch, steps, x, active, active_stride, state_bw, bw);
    if (final_only) {
        broadcast_final(L, 0, batch, steps, lengths, state, y);
        broadcast_final(L, 1, batch, steps, lengths, state_bw, bw);
    }
    if (L->merge_mode != LSTMRT_MERGE_CONCAT)
        merge_directions(L, batch, steps, y, bw);
}

void forward_layers(const lstmrt_model_t *m, const workspace *ws, int64_t batch, int64_t steps, seq_view x,
                    const uint8_t *active, int64_t active_stride, float *state, seq_view y, int whole_sequence,
                    const int32_t *lengths)
{
    const lstmrt_kernels *k = m->kernels;
    seq_view in = x;
    for (int32_t l = 0; l < m->num_layers; l++) {
        const layer *L = &m->layers[l];
        const seq_view out = layer_output(m, ws, l, batch, steps, y);
        switch (L->kind) {
        case LSTMRT_LAYER_LSTM:
        case LSTMRT_LAYER_GRU:
        case LSTMRT_LAYER_RNN:
            run_recurrent(k, L, ws, batch, steps, in, active, active_stride, state, out, whole_sequence, lengths);
            break;
        case LSTMRT_LAYER_GLOBAL_POOL: pool_steps(L, batch, steps, in, active, active_stride, state, out); break;
        case LSTMRT_LAYER_DENSE: run_dense(k, L, batch, steps, in, out); break;
        case LSTMRT_LAYER_ADD:
        case LSTMRT_LAYER_ATTENTION_POOL: {
            /* the source, written earlier in this call: the model input, or a kept output (never the last layer) */
            const seq_view src = L->add_from == 0 ? x : layer_output(m, ws, L->add_from - 1, batch, steps, y);
            if (L->kind == LSTMRT_LAYER_ADD)
                run_add(L, batch, steps, in, src, out);
            else
                attention_steps(L, batch, steps, in, src, active, active_stride, state, out);
            break;
        }
        default: run_elementwise(k, L, batch, steps, in, out); break;
        }
        state += batch * L->state_floats;
        in = out;
    }
    *ws->sweep += (uint64_t)steps;
}
