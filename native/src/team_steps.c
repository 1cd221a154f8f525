/* When a team (team.h) is worth using, and the one-row steps of a fused LSTM or GRU direction shared by it: member m
 * owns the hidden units team_share gives it, projects the inputs of its own gate rows, and runs the step kernel over
 * its blocks only, reading the whole previous h; a barrier after each step publishes the new h to all. Every output
 * is computed by the same kernel arithmetic as alone, so the result is bit-identical to a run without a team. */
#include "recurrent.h"
#include "team.h"

/* Below this many bytes of W_hh a step is too short for a barrier to pay (LSTM I = 16, H = 64, 64 KB: predict
 * T = 1000 1.17x faster with two members; H = 32, 16 KB, gains nothing; docs/kernels.md, "Teams"). */
#define TEAM_MIN_WEIGHT_BYTES ((int64_t)48 * 1024)
/* A stream step (one step) hands its share to the members by a job instead of a barrier, and the new h goes back
 * through scratch: that costs ~0.3 µs more, so single steps use the team from this many bytes of W_ih + W_hh
 * (I = 16, H = 64, 80 KB: 0.78 -> 0.89 µs; I = 32, H = 128, 320 KB: 3.21 -> 2.07 µs). */
#define TEAM_MIN_STEP_BYTES ((int64_t)128 * 1024)
/* Rows of a batch split between members when the step reads at least this many weight bytes in all (rows x W_hh):
 * each member then reads all of W_hh for fewer rows. */
#define TEAM_MIN_ROWS_WEIGHT_BYTES ((int64_t)64 * 1024)

/* Whether a one-row step of this (fused, whole-panel: the callers' condition) layer is worth a team. */
static int layer_splits(const layer *L)
{
    return L->fused_default && L->hidden_size % LSTMRT_PANEL == 0 && L->proj_size == 0 &&
           packed_bytes(&L->dir[0].w_hh) >= TEAM_MIN_WEIGHT_BYTES;
}

typedef struct one_row_job {
    const lstmrt_kernels *k;
    const layer *L;
    const packed_direction *d;
    const workspace *ws;
    int64_t steps;
    int reverse;
    seq_view x;
    const uint8_t *active;
    int64_t active_stride;
    const float *h;
    float *c;
    seq_view y;
    float *h_new;       /* one step: the new h (scratch; h is read until every member is done) */
    const float *h_end; /* several steps: where the last new h is (member 0 sets it) */
} one_row_job;

static void step_units(const one_row_job *J, const float *gx, const float *x, const float *h, float *h_out, int reverse,
                       int64_t j0, int64_t j1)
{
    const packed_direction *d = J->d;
    const int with_input = x != NULL;
    if (J->L->kind == LSTMRT_LAYER_LSTM)
        J->k->f32_lstm_step(gx, x, with_input ? &d->w_ih : NULL, with_input ? d->bias_x : NULL, h, &d->w_hh, J->c,
                            h_out, reverse, j0, j1);
    else
        J->k->f32_gru_step(gx, x, with_input ? &d->w_ih : NULL, with_input ? d->bias_x : NULL, h, &d->w_hh, d->bias_hn,
                           h_out, reverse, j0, j1);
}

/* gates(t, q*H + j) for this member's units j in [j0, j1) of every gate q: a whole-panel slice of W_ih is itself a
 * packed matrix (j0 and H are multiples of PANEL). */
static void project_units(const one_row_job *J, int64_t j0, int64_t j1)
{
    const packed_direction *d = J->d;
    const int64_t H = J->L->hidden_size, G = J->L->gates * H, I = d->w_ih.cols;
    for (int q = 0; q < J->L->gates; q++) {
        const int64_t row = q * H + j0;
        const packed_matrix slice = {j1 - j0, I, d->w_ih.data + row * I};
        J->k->f32_gemm(J->steps, J->x.data, J->x.time_stride, &slice, d->bias_x + row, 0, J->ws->gates + row, G);
    }
}

static void one_row_member(void *arg, int member, int members)
{
    one_row_job *J = arg;
    const int64_t H = J->L->hidden_size, G = J->L->gates * H;
    int64_t j0, j1;
    team_share(H, LSTMRT_PANEL, member, members, &j0, &j1);
    if (J->steps == 1) {
        if (j1 > j0)
            step_units(J, NULL, J->x.data, J->h, J->h_new, sweep_reverse_share(J->ws, 0, J->d, 1, members), j0, j1);
        return;
    }
    if (j1 > j0)
        project_units(J, j0, j1);
    const float *h_cur = J->h;
    for (int64_t s = 0; s < J->steps; s++) {
        const int64_t t = J->reverse ? J->steps - 1 - s : s;
        float *y_t = seq_row(J->y, 0, t);
        if (row_active(J->active, J->active_stride, 0, t)) {
            if (j1 > j0)
                step_units(J, J->ws->gates + t * G, NULL, h_cur, y_t, sweep_reverse_share(J->ws, s, J->d, 0, members),
                           j0, j1);
            h_cur = y_t;
        } else if (j1 > j0) {
            write_skipped_output(J->L, h_cur + j0, y_t + j0, j1 - j0);
        }
        team_barrier(J->ws->team, member);
    }
    if (member == 0)
        J->h_end = h_cur;
}

int team_rows_gain(const layer *L, int64_t batch)
{
    return batch >= 4 && batch * packed_bytes(&L->dir[0].w_hh) >= TEAM_MIN_ROWS_WEIGHT_BYTES;
}

int64_t team_shared_bytes(const lstmrt_model_t *m, int64_t batch)
{
    int64_t bytes = 0;
    for (int32_t l = 0; l < m->num_layers; l++) {
        const layer *L = &m->layers[l];
        if (L->kind != LSTMRT_LAYER_LSTM && L->kind != LSTMRT_LAYER_GRU && L->kind != LSTMRT_LAYER_RNN)
            continue;
        if (batch > 1 ? team_rows_gain(L, batch) : L->kind != LSTMRT_LAYER_RNN && layer_splits(L))
            bytes += L->num_directions * batch * packed_bytes(&L->dir[0].w_hh);
    }
    return bytes;
}

int team_one_row(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws, int64_t steps,
                 int reverse, seq_view x, const uint8_t *active, int64_t active_stride, float *h, float *c, seq_view y)
{
    if (!team_alive(ws->team) || !layer_splits(L))
        return 0;
    if (steps == 1 && packed_bytes(&d->w_hh) + packed_bytes(&d->w_ih) < TEAM_MIN_STEP_BYTES)
        return 0;
    const int64_t H = L->hidden_size;
    one_row_job J = {k, L, d, ws, steps, reverse, x, active, active_stride, h, c, y, ws->aux, NULL};
    if (steps == 1 && !row_active(active, active_stride, 0, 0)) {
        write_skipped_output(L, h, y.data, H);
        return 1;
    }
    team_run(ws->team, one_row_member, &J);
    if (steps == 1) {
        memcpy(h, J.h_new, (size_t)H * sizeof(float));
        memcpy(y.data, h, (size_t)H * sizeof(float));
    } else if (J.h_end != h) {
        memcpy(h, J.h_end, (size_t)H * sizeof(float));
    }
    return 1;
}
