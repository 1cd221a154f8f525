/* The fused one-row path of an LSTM or GRU direction (batch 1, standard cell, H a multiple of PANEL): the cell runs
 * inside the product (f32_lstm_step, f32_gru_step), block by block. A stream step (one step) does both products in
 * one pass over the weights; a block of steps projects the inputs first, then each step reads the previous h where
 * it was written (the output row of the step before) and writes the new one into its own row.
 *
 * Alone, one member does all units. With a team (team.h; team_policy.c says when), member m owns the hidden units
 * team_share gives it, projects the inputs of its own gate rows, and runs the step kernel over its blocks only, reading
 * the whole previous h; a barrier after each step publishes the new h to all. Every output is computed by the same
 * kernel arithmetic either way, so a team's result is bit-identical to a run alone. */
#include "recurrent.h"
#include "team.h"

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
    float *c; /* LSTM cell state; NULL for a GRU */
    seq_view y;
    float *h_new;       /* one step: the new h, or the cell output before the projection (scratch: h is read until
                           the last block is done) */
    const float *h_end; /* several steps: where the last new h is (member 0 sets it) */
} one_row_job;

static void step_units(const lstmrt_kernels *k, const layer *L, const packed_direction *d, float *c, const float *gx,
                       const float *x, const float *h, float *h_out, int reverse, int64_t j0, int64_t j1)
{
    const int with_input = x != NULL;
    if (L->kind == LSTMRT_LAYER_LSTM)
        k->f32_lstm_step(gx, x, with_input ? &d->w_ih : NULL, with_input ? d->bias_x : NULL, h, &d->w_hh, c, h_out,
                         reverse, j0, j1);
    else
        k->f32_gru_step(gx, x, with_input ? &d->w_ih : NULL, with_input ? d->bias_x : NULL, h, &d->w_hh, d->bias_hn,
                        h_out, reverse, j0, j1);
}

/* gates(t, q*H + j) for the units j in [j0, j1) of every gate q. Alone: one GEMM over all gate rows. In a team: a
 * whole-panel slice of W_ih is itself a packed matrix (j0 and H are multiples of PANEL). */
static void project_units(const one_row_job *J, int members, int64_t j0, int64_t j1)
{
    const packed_direction *d = J->d;
    const int64_t H = J->L->hidden_size, G = J->L->gates * H, I = d->w_ih.cols;
    if (members == 1) {
        project_inputs(J->k, &d->w_ih, d->bias_x, 1, J->steps, J->x, J->ws->gates);
        return;
    }
    for (int q = 0; q < J->L->gates; q++) {
        const int64_t row = q * H + j0;
        const packed_matrix slice = {j1 - j0, I, d->w_ih.data + row * I};
        J->k->f32_gemm(J->steps, J->x.data, J->x.time_stride, &slice, d->bias_x + row, 0, J->ws->gates + row, G);
    }
}

/* The steps of one member (alone: member 0 of 1). Only a member that runs alone meets a projection. */
static void one_row_member(void *arg, int member, int members)
{
    one_row_job *J = arg;
    const packed_direction *d = J->d;
    const int64_t H = J->L->hidden_size, Hr = J->L->state_h_size, G = J->L->gates * H;
    const int projected = J->L->proj_size > 0;
    int64_t j0 = 0, j1 = H;
    if (members > 1)
        team_share(H, LSTMRT_PANEL, member, members, &j0, &j1);
    if (J->steps == 1) {
        if (j1 > j0)
            step_units(J->k, J->L, d, J->c, NULL, J->x.data, J->h, J->h_new,
                       sweep_reverse_share(J->ws, 0, d, 1, members), j0, j1);
        return;
    }
    const int64_t out0 = projected ? 0 : j0, out1 = projected ? Hr : j1; /* this member's share of each h */
    float *cell_out = J->ws->aux;
    if (j1 > j0)
        project_units(J, members, j0, j1);
    const float *h_cur = J->h;
    for (int64_t s = 0; s < J->steps; s++) {
        const int64_t t = J->reverse ? J->steps - 1 - s : s;
        float *y_t = seq_row(J->y, 0, t);
        if (row_active(J->active, J->active_stride, 0, t)) {
            if (j1 > j0)
                step_units(J->k, J->L, d, J->c, J->ws->gates + t * G, NULL, h_cur, projected ? cell_out : y_t,
                           sweep_reverse_share(J->ws, s, d, 0, members), j0, j1);
            if (projected)
                J->k->f32_gemm(1, cell_out, H, &d->w_proj, NULL, 0, y_t, Hr);
            h_cur = y_t;
        } else if (out1 > out0) {
            write_skipped_output(J->L, h_cur + out0, y_t + out0, out1 - out0);
        }
        if (members > 1)
            team_barrier(J->ws->team, member);
    }
    if (member == 0)
        J->h_end = h_cur;
}

void fused_one_row(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws,
                   int64_t steps, int reverse, seq_view x, const uint8_t *active, int64_t active_stride, float *h,
                   float *c, seq_view y)
{
    const int64_t H = L->hidden_size, Hr = L->state_h_size;
    if (steps == 1 && !row_active(active, active_stride, 0, 0)) {
        write_skipped_output(L, h, y.data, Hr);
        return;
    }
    float *h_new = ws->aux; /* one step: h is read until the last block is done */
    one_row_job J = {k, L, d, ws, steps, reverse, x, active, active_stride, h, c, y, h_new, NULL};
    if (ws->team && team_splits_steps(L, d, steps) && team_alive(ws->team))
        team_run(ws->team, one_row_member, &J);
    else if (steps == 1) /* a stream step alone, the hot path of small models: no job to fill in */
        step_units(k, L, d, c, NULL, x.data, h, h_new, sweep_reverse(ws, 0, d, 1), 0, H);
    else
        one_row_member(&J, 0, 1);
    if (steps == 1) {
        if (L->proj_size > 0)
            k->f32_gemm(1, h_new, H, &d->w_proj, NULL, 0, h, Hr);
        else
            memcpy(h, h_new, (size_t)H * sizeof(float));
        memcpy(y.data, h, (size_t)Hr * sizeof(float));
    } else if (J.h_end != h) {
        memcpy(h, J.h_end, (size_t)Hr * sizeof(float));
    }
}
