/* Machine probes for benchmarks: the floor a one-row step cannot beat on this CPU. A step reads every weight once
 * (bandwidth of the cache level they live in) and does 2 FLOPs per weight (FMA peak); the probes measure both
 * with the current kernel table: a buffer of the weights' size read as one stream (f32_sum), and an L1-resident
 * f32_gemm tile. The caller times them (lstmrt bench). */
#include <stdlib.h>

#include "internal.h"

#define COMPUTE_M 32 /* L1-resident GEMM: x 32 x 64 (8 KB), W 64 x 64 (16 KB), y 32 x 64 (8 KB) */
#define COMPUTE_N 64
#define COMPUTE_K 64

struct lstmrt_probe {
    const lstmrt_kernels *k;
    float *stream; /* stream_floats, read once per stream pass */
    int64_t stream_floats;
    packed_matrix compute; /* COMPUTE_N x COMPUTE_K */
    float *x;              /* COMPUTE_M x COMPUTE_K */
    float *y;              /* COMPUTE_M x COMPUTE_N */
    volatile float sink;   /* keeps the sums observable */
};

static void fill(float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = 1e-3f * (float)(i % 13 + 1); /* small, never denormal, never overflowing */
}

static lstmrt_status pack_filled(packed_matrix *m, int64_t rows, int64_t cols)
{
    float *w = lstmrt__alloc_floats(rows * cols);
    if (!w)
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "probe: cannot allocate %lld floats",
                            (long long)(rows * cols));
    fill(w, rows * cols);
    const lstmrt_status s = pack_matrix(m, w, rows, cols);
    lstmrt__aligned_free(w);
    return s;
}

lstmrt_status lstmrt_probe_create(int64_t stream_bytes, lstmrt_probe_t **out)
{
    if (!out)
        return lstmrt__fail(LSTMRT_STATUS_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (stream_bytes < 64 || stream_bytes > ((int64_t)1 << 34))
        return lstmrt__fail(LSTMRT_STATUS_INVALID_ARGUMENT, "probe: stream_bytes %lld is outside [64, 2^34]",
                            (long long)stream_bytes);
    lstmrt_probe_t *p = calloc(1, sizeof *p);
    if (!p)
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "probe: cannot allocate");
    p->k = lstmrt__kernels();
    p->stream_floats = stream_bytes / 64 * 16; /* whole cache lines */
    lstmrt_status s = pack_filled(&p->compute, COMPUTE_N, COMPUTE_K);
    if (s == LSTMRT_STATUS_OK) {
        p->stream = lstmrt__alloc_floats(p->stream_floats);
        p->x = lstmrt__alloc_floats(COMPUTE_M * COMPUTE_K);
        p->y = lstmrt__alloc_floats(COMPUTE_M * COMPUTE_N);
        if (!p->stream || !p->x || !p->y) {
            s = lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "probe: cannot allocate %lld bytes", (long long)stream_bytes);
        } else {
            fill(p->stream, p->stream_floats);
            fill(p->x, COMPUTE_M * COMPUTE_K);
        }
    }
    if (s != LSTMRT_STATUS_OK) {
        lstmrt_probe_free(p);
        return s;
    }
    *out = p;
    lstmrt__clear_error();
    return LSTMRT_STATUS_OK;
}

void lstmrt_probe_free(lstmrt_probe_t *p)
{
    if (!p)
        return;
    lstmrt__aligned_free(p->stream);
    free_packed_matrix(&p->compute);
    lstmrt__aligned_free(p->x);
    lstmrt__aligned_free(p->y);
    free(p);
}

int64_t lstmrt_probe_stream_bytes(const lstmrt_probe_t *p)
{
    return p ? p->stream_floats * (int64_t)sizeof(float) : 0;
}

int64_t lstmrt_probe_compute_flops(const lstmrt_probe_t *p)
{
    return p ? (int64_t)2 * COMPUTE_M * COMPUTE_N * COMPUTE_K : 0;
}

void lstmrt_probe_stream(lstmrt_probe_t *p, int64_t passes)
{
    if (!p)
        return;
    const unsigned fp = lstmrt__fp_enter();
    for (int64_t i = 0; i < passes; i++)
        p->sink = p->k->f32_sum(p->stream, p->stream_floats);
    lstmrt__fp_leave(fp);
}

void lstmrt_probe_compute(lstmrt_probe_t *p, int64_t passes)
{
    if (!p)
        return;
    const unsigned fp = lstmrt__fp_enter();
    for (int64_t i = 0; i < passes; i++)
        p->k->f32_gemm(COMPUTE_M, p->x, COMPUTE_K, &p->compute, NULL, 0, p->y, COMPUTE_N);
    lstmrt__fp_leave(fp);
}
