/* LSTM driver: per step, the recurrent product (one GEMM over the batch rows) then the gate kernel per row.
 * Standard cells (sigmoid/tanh/tanh, no peephole, no clip) use the fused kernel (one row: one_row.c); others the
 * general path. */
#include "recurrent.h"

static void clip_values(float *v, int64_t n, float clip)
{
    for (int64_t j = 0; j < n; j++)
        v[j] = v[j] < -clip ? -clip : (v[j] > clip ? clip : v[j]);
}

/* Any activations, peepholes (ONNX: i and f see c(t-1), o sees c(t)), clip of the gate pre-activations. */
static void lstm_cell_general(const lstmrt_kernels *k, const layer *L, const float *peep, float *g, float *c, float *h,
                              float *tmp, int64_t H)
{
    float *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
    if (peep)
        for (int64_t j = 0; j < H; j++) {
            gi[j] += peep[j] * c[j];
            gf[j] += peep[H + j] * c[j];
        }
    if (L->cell_clip > 0.0f)
        clip_values(g, 3 * H, L->cell_clip);
    apply_activation(k, L->act[0], gi, 1, 2 * H, 0);
    apply_activation(k, L->act[1], gg, 1, H, 0);
    for (int64_t j = 0; j < H; j++)
        c[j] = gf[j] * c[j] + gi[j] * gg[j];
    if (peep)
        for (int64_t j = 0; j < H; j++)
            go[j] += peep[2 * H + j] * c[j];
    if (L->cell_clip > 0.0f)
        clip_values(go, H, L->cell_clip);
    apply_activation(k, L->act[0], go, 1, H, 0);
    memcpy(tmp, c, (size_t)H * sizeof(float));
    apply_activation(k, L->act[2], tmp, 1, H, 0);
    for (int64_t j = 0; j < H; j++)
        h[j] = go[j] * tmp[j];
}

/* The general step of an LSTM direction: the recurrent product (one row: f32_gemv; a stream step also does the
 * input product there), then a cell per active row, then the projection. g_t: the step's gate rows. */
static void lstm_products_and_cells(const lstmrt_kernels *k, const layer *L, const packed_direction *d,
                                    const workspace *ws, int64_t batch, int64_t steps, int64_t s, int64_t t, seq_view x,
                                    const uint8_t *active, int64_t active_stride, float *g_t, float *h, float *c)
{
    const int64_t H = L->hidden_size, Hr = L->state_h_size, G = 4 * H;
    const int projected = L->proj_size > 0, fused = batch == 1 && steps == 1;
    float *cell_out = ws->aux, *tmp = ws->aux + batch * H;
    if (fused)
        k->f32_gemv(x.data, &d->w_ih, h, &d->w_hh, d->bias_x, 0, g_t, sweep_reverse(ws, s, d, 1));
    else if (batch == 1)
        k->f32_gemv(h, &d->w_hh, NULL, NULL, NULL, 1, g_t, sweep_reverse(ws, s, d, 0));
    else
        k->f32_gemm(batch, h, Hr, &d->w_hh, NULL, 1, g_t, steps * G);
    for (int64_t b = 0; b < batch; b++) {
        if (!row_active(active, active_stride, b, t))
            continue;
        float *g = g_t + b * steps * G, *cb = c + b * H;
        float *hb = projected ? cell_out + b * H : h + b * Hr;
        if (L->fused_default)
            k->f32_lstm_cell(g, cb, hb, H);
        else
            lstm_cell_general(k, L, d->peephole, g, cb, hb, tmp + b * H, H);
    }
    if (projected) {
        if (!active)
            k->f32_gemm(batch, cell_out, H, &d->w_proj, NULL, 0, h, Hr);
        else
            for (int64_t b = 0; b < batch; b++)
                if (row_active(active, active_stride, b, t))
                    k->f32_gemm(1, cell_out + b * H, H, &d->w_proj, NULL, 0, h + b * Hr, Hr);
    }
}

void lstm_direction(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws,
                    int64_t batch, int64_t steps, int reverse, seq_view x, const uint8_t *active, int64_t active_stride,
                    float *h, float *c, seq_view y)
{
    const int64_t Hr = L->state_h_size, G = 4 * L->hidden_size;
    if (batch == 1 && L->fused_default && L->hidden_size % LSTMRT_PANEL == 0) {
        fused_one_row(k, L, d, ws, steps, reverse, x, active, active_stride, h, c, y); /* one_row.c */
        return;
    }
    if (!(batch == 1 && steps == 1)) /* a stream step does its input product inside the recurrent one */
        project_inputs(k, &d->w_ih, d->bias_x, batch, steps, x, ws->gates);
    for (int64_t s = 0; s < steps; s++) {
        const int64_t t = reverse ? steps - 1 - s : s;
        float *g_t = ws->gates + t * G; /* row b at g_t + b * steps * G */
        lstm_products_and_cells(k, L, d, ws, batch, steps, s, t, x, active, active_stride, g_t, h, c);
        for (int64_t b = 0; b < batch; b++) {
            float *yb = seq_row(y, b, t);
            if (row_active(active, active_stride, b, t))
                memcpy(yb, h + b * Hr, (size_t)Hr * sizeof(float));
            else
                write_skipped_output(L, h + b * Hr, yb, Hr);
        }
    }
}
