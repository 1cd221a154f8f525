/* When a team (team.h) is worth using: which layers share their steps, and which calls repay waking the workers.
 * The numbers are measured on the development machine (docs/kernels.md, "Teams"). */
#include "recurrent.h"
#include "team.h"

/* Below this many bytes of W_hh a step is too short for a barrier to pay (LSTM I = 16, H = 64, 64 KB: predict
 * T = 1000 1.17x faster with two members; H = 32, 16 KB, gains nothing). */
#define TEAM_MIN_WEIGHT_BYTES ((int64_t)48 * 1024)
/* A stream step (one step) hands its share to the members by a job instead of a barrier, and the new h goes back
 * through scratch: that costs ~0.3 µs more, so single steps use the team from this many bytes of W_ih + W_hh
 * (I = 16, H = 64, 80 KB: 0.78 -> 0.89 µs; I = 32, H = 128, 320 KB: 3.21 -> 2.07 µs). */
#define TEAM_MIN_STEP_BYTES ((int64_t)128 * 1024)
/* Rows of a batch split between members when the step reads at least this many weight bytes in all (rows x W_hh):
 * each member then reads all of W_hh for fewer rows. */
#define TEAM_MIN_ROWS_WEIGHT_BYTES ((int64_t)64 * 1024)
/* Waking a sleeping worker (or starting one) costs the call ~100 µs in a VM, and a team of two saves 25-45% of the
 * time: a call repays it from ~300-450 µs of work, about what this many bytes of L2-resident weights take to read
 * (predict, LSTM I = 32, H = 128, T = 300 after a 2 ms pause: 1.32x; H = 64, T = 1000, 64 MB: 0.88x, so 48 MB is
 * the edge there). */
#define TEAM_WAKE_WORK_BYTES ((double)48 * 1024 * 1024)

/* Fused, whole-panel layers whose one-row steps split units. A projection needs every unit's cell output before it
 * starts, so a projected LSTM runs alone. */
static int layer_splits(const layer *L)
{
    return (L->kind == LSTMRT_LAYER_LSTM || L->kind == LSTMRT_LAYER_GRU) && L->fused_default &&
           L->hidden_size % LSTMRT_PANEL == 0 && L->proj_size == 0 &&
           packed_bytes(&L->dir[0].w_hh) >= TEAM_MIN_WEIGHT_BYTES;
}

int team_splits_steps(const layer *L, const packed_direction *d, int64_t steps)
{
    return layer_splits(L) && (steps > 1 || packed_bytes(&d->w_hh) + packed_bytes(&d->w_ih) >= TEAM_MIN_STEP_BYTES);
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
        if (batch > 1 ? team_rows_gain(L, batch) : layer_splits(L))
            bytes += L->num_directions * batch * packed_bytes(&L->dir[0].w_hh);
    }
    return bytes;
}

int team_worth(int64_t shared_bytes, int64_t steps, int awake)
{
    const double work = (double)shared_bytes * (double)steps;
    return work > 0 && (awake || work >= TEAM_WAKE_WORK_BYTES);
}
