/* The input projection of a recurrent layer: one GEMM per sequence over all its steps, before the
 * recurrence, so only the (small) recurrent product remains inside the time loop. */
#include "recurrent.h"

void project_inputs(const lstmrt_kernels *k, const packed_matrix *w, const float *bias, int64_t batch, int64_t steps,
                    seq_view x, float *gates)
{
    const int64_t gw = w->rows;
    if (x.batch_stride == steps * x.time_stride || batch == 1) {
        /* rows of all sequences are evenly spaced: a single GEMM */
        k->f32_gemm(batch * steps, x.data, x.time_stride, w, bias, 0, gates, gw);
        return;
    }
    for (int64_t b = 0; b < batch; b++)
        k->f32_gemm(steps, seq_row(x, b, 0), x.time_stride, w, bias, 0, gates + b * steps * gw, gw);
}
