/* GRU driver. linear_before_reset (PyTorch, Keras reset_after=True): the whole recurrent product h W_hh^T
 * first, the reset gate applied to its n part. Otherwise (Keras reset_after=False): r and z from the r,z rows,
 * then the n rows multiply r * h — a second product that depends on r, so it cannot be merged. */
#include "recurrent.h"

static void gru_cell_general(const lstmrt_kernels *k, const layer *L, float *xg, const float *hh, float *h, int64_t H)
{
    /* xg = input part [r z n] (3H, biased), hh = recurrent part [r z n] (3H, n biased) */
    for (int64_t j = 0; j < 2 * H; j++)
        xg[j] += hh[j];
    apply_activation(k, L->act[0], xg, 1, 2 * H, 0);
    float *n = xg + 2 * H;
    for (int64_t j = 0; j < H; j++)
        n[j] += xg[j] * hh[2 * H + j];
    apply_activation(k, L->act[1], n, 1, H, 0);
    for (int64_t j = 0; j < H; j++)
        h[j] = (1.0f - xg[H + j]) * n[j] + xg[H + j] * h[j];
}

void gru_direction(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws,
                   int64_t batch, int64_t steps, int reverse, seq_view x, const uint8_t *active, int64_t active_stride,
                   float *h, seq_view y)
{
    const int64_t H = L->hidden_size, G = 3 * H;
    float *gates = ws->gates;
    float *hh = ws->aux;             /* batch x 3H: recurrent part */
    float *rh = ws->aux + batch * G; /* batch x H: r * h (reset before) */
    if (batch == 1 && L->fused_default && H % LSTMRT_PANEL == 0) {
        fused_one_row(k, L, d, ws, steps, reverse, x, active, active_stride, h, NULL, y); /* one_row.c */
        return;
    }
    project_inputs(k, &d->w_ih, d->bias_x, batch, steps, x, gates);

    for (int64_t s = 0; s < steps; s++) {
        const int64_t t = reverse ? steps - 1 - s : s;
        float *g_t = gates + t * G;
        const int64_t ldg = steps * G;
        if (L->linear_before_reset) {
            /* hh = [h W_hr^T, h W_hz^T, h W_hn^T + b_hn] */
            if (batch == 1)
                k->f32_gemv(h, &d->w_hh, NULL, NULL, d->bias_hn, 0, hh, sweep_reverse(ws, s, d, 0));
            else
                k->f32_gemm(batch, h, H, &d->w_hh, d->bias_hn, 0, hh, G);
            for (int64_t b = 0; b < batch; b++) {
                if (!row_active(active, active_stride, b, t))
                    continue;
                if (L->fused_default)
                    k->f32_gru_cell(g_t + b * ldg, hh + b * G, h + b * H, H);
                else
                    gru_cell_general(k, L, g_t + b * ldg, hh + b * G, h + b * H, H);
            }
        } else {
            /* r, z: add h W_{r,z}^T into the input part, activate; then n needs (r * h) W_hn^T */
            k->f32_gemm(batch, h, H, &d->w_hh, NULL, 1, g_t, ldg);
            for (int64_t b = 0; b < batch; b++) {
                float *g = g_t + b * ldg;
                apply_activation(k, L->act[0], g, 1, 2 * H, 0);
                for (int64_t j = 0; j < H; j++)
                    rh[b * H + j] = g[j] * h[b * H + j];
            }
            k->f32_gemm(batch, rh, H, &d->w_hn, d->bias_hn, 0, hh, H);
            for (int64_t b = 0; b < batch; b++) {
                if (!row_active(active, active_stride, b, t))
                    continue;
                float *g = g_t + b * ldg, *n = g + 2 * H, *hb = h + b * H;
                for (int64_t j = 0; j < H; j++)
                    n[j] += hh[b * H + j];
                apply_activation(k, L->act[1], n, 1, H, 0);
                for (int64_t j = 0; j < H; j++)
                    hb[j] = (1.0f - g[H + j]) * n[j] + g[H + j] * hb[j];
            }
        }
        for (int64_t b = 0; b < batch; b++) {
            float *yb = seq_row(y, b, t);
            if (row_active(active, active_stride, b, t))
                memcpy(yb, h + b * H, (size_t)H * sizeof(float));
            else
                write_skipped_output(L, h + b * H, yb, H);
        }
    }
}
