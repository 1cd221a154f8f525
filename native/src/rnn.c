/* Elman RNN driver (Keras SimpleRNN, torch nn.RNN): h = act(x W_ih^T + h W_hh^T + b). */
#include "recurrent.h"

void rnn_direction(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws,
                   int64_t batch, int64_t steps, int reverse, seq_view x, const uint8_t *active, int64_t active_stride,
                   float *h, seq_view y)
{
    const int64_t H = L->hidden_size;
    float *gates = ws->gates;
    const int fused = batch == 1 && steps == 1; /* a stream step: both products in one pass over the weights */
    if (!fused)
        project_inputs(k, &d->w_ih, d->bias_x, batch, steps, x, gates);
    for (int64_t s = 0; s < steps; s++) {
        const int64_t t = reverse ? steps - 1 - s : s;
        float *g_t = gates + t * H;
        const int64_t ldg = steps * H;
        if (fused)
            k->f32_gemv(x.data, &d->w_ih, h, &d->w_hh, d->bias_x, 0, g_t, sweep_reverse(ws, s, d, 1));
        else if (batch == 1)
            k->f32_gemv(h, &d->w_hh, NULL, NULL, NULL, 1, g_t, sweep_reverse(ws, s, d, 0));
        else
            k->f32_gemm(batch, h, H, &d->w_hh, NULL, 1, g_t, ldg);
        for (int64_t b = 0; b < batch; b++) {
            float *yb = seq_row(y, b, t);
            if (!row_active(active, active_stride, b, t)) {
                write_skipped_output(L, h + b * H, yb, H);
                continue;
            }
            float *g = g_t + b * ldg;
            apply_activation(k, L->act[0], g, 1, H, 0);
            memcpy(h + b * H, g, (size_t)H * sizeof(float));
            memcpy(yb, g, (size_t)H * sizeof(float));
        }
    }
}
