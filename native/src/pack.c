/* Weight packing into GEMM panels (layout in kernels/kernels.h). Done once, at model creation. */
#include <string.h>

#include "internal.h"

lstmrt_status pack_matrix(packed_matrix *dst, const float *w, int64_t rows, int64_t cols)
{
    const int64_t floats = packed_floats(rows, cols);
    dst->rows = rows;
    dst->cols = cols;
    dst->data = lstmrt__alloc_floats(floats ? floats : 1);
    if (!dst->data)
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate %lld x %lld packed weights", (long long)rows,
                            (long long)cols);
    memset(dst->data, 0, (size_t)floats * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        float *panel = dst->data + (r / LSTMRT_PANEL) * cols * LSTMRT_PANEL;
        const int64_t j = r % LSTMRT_PANEL;
        for (int64_t k = 0; k < cols; k++)
            panel[k * LSTMRT_PANEL + j] = w[r * cols + k];
    }
    return LSTMRT_STATUS_OK;
}

void free_packed_matrix(packed_matrix *m)
{
    lstmrt__aligned_free(m->data);
    m->data = NULL;
}
