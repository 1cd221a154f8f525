/* Scratch layout for running a block of (batch x steps): carved from one caller-provided block so that a
 * stream allocates everything once, at creation. */
#include <stdint.h>

#include "internal.h"

/* Each buffer is rounded up to 16 floats so every one starts 64-byte aligned. */
static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

size_t workspace_floats(const lstmrt_model_t *m, int64_t batch, int64_t steps)
{
    const size_t rows = (size_t)(batch * steps);
    return round16(rows * (size_t)m->max_gate_width) + round16((size_t)batch * 4 * (size_t)m->max_hidden) +
           3 * round16(rows * (size_t)m->max_width) + round16(rows * (size_t)m->kept_width) + 16 /* sweep counter */;
}

/* Whether that scratch, the state of `batch` rows and extra_bytes fit in half the address space. Estimated in
 * double (the factor 2 margin dwarfs its rounding): computed in size_t the count can wrap (on a 32-bit target at
 * sizes a caller can ask for), come out small, be allocated and be overrun. 128 floats cover the rounding above
 * and the padding a stream puts between state and scratch. */
int scratch_fits(const lstmrt_model_t *m, int64_t batch, int64_t steps, double extra_bytes)
{
    const double floats = (double)batch * (double)steps * (m->max_gate_width + 3.0 * m->max_width + m->kept_width) +
                          (double)batch * (4.0 * m->max_hidden + (double)m->state_size) + 128.0;
    return floats * sizeof(float) + extra_bytes <= (double)(SIZE_MAX / 2);
}

void workspace_bind(workspace *ws, const lstmrt_model_t *m, int64_t batch, int64_t steps, float *base)
{
    const size_t rows = (size_t)(batch * steps);
    ws->gates = base;
    base += round16(rows * (size_t)m->max_gate_width);
    ws->aux = base;
    base += round16((size_t)batch * 4 * (size_t)m->max_hidden);
    ws->act_a = base;
    base += round16(rows * (size_t)m->max_width);
    ws->act_b = base;
    base += round16(rows * (size_t)m->max_width);
    ws->dirbuf = base;
    base += round16(rows * (size_t)m->max_width);
    ws->kept = base;
    base += round16(rows * (size_t)m->kept_width);
    ws->sweep = (uint64_t *)base; /* 64-byte aligned, like every buffer here */
    *ws->sweep = 0;
    ws->team = NULL;
}
