/* Model creation: validate the layer chain (a backstop: the Python layer validates first, with friendlier
 * messages), pack every weight matrix once for the kernels, compute the sizes streams need. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "team.h"

#define FAIL(...) lstmrt__fail(LSTMRT_STATUS_INVALID_ARGUMENT, __VA_ARGS__)

static int is_recurrent(lstmrt_layer_kind k)
{
    return k == LSTMRT_LAYER_LSTM || k == LSTMRT_LAYER_GRU || k == LSTMRT_LAYER_RNN;
}

static int gate_count(lstmrt_layer_kind k)
{
    return k == LSTMRT_LAYER_LSTM ? 4 : k == LSTMRT_LAYER_GRU ? 3 : 1;
}

/* The kinds whose output has their input's features (their hidden_size is not read). */
static int keeps_width(lstmrt_layer_kind k)
{
    return k == LSTMRT_LAYER_ACTIVATION || k == LSTMRT_LAYER_AFFINE || k == LSTMRT_LAYER_PRELU ||
           k == LSTMRT_LAYER_NORM || k == LSTMRT_LAYER_GLOBAL_POOL || k == LSTMRT_LAYER_ADD;
}

static int dim_ok(int64_t v)
{
    return v >= 1 && v <= LSTMRT_MAX_DIM;
}

static int activation_ok(lstmrt_activation a, int allow_softmax)
{
    if ((int)a < 0 || a >= LSTMRT_ACT_COUNT)
        return 0;
    return allow_softmax || (a != LSTMRT_ACT_SOFTMAX && a != LSTMRT_ACT_LOG_SOFTMAX);
}

/* The activation slots a layer reads: LSTM 3, GRU 2, RNN, dense and activation 1, the others none. */
static int activation_slots(lstmrt_layer_kind k)
{
    switch (k) {
    case LSTMRT_LAYER_LSTM: return 3;
    case LSTMRT_LAYER_GRU: return 2;
    case LSTMRT_LAYER_RNN:
    case LSTMRT_LAYER_DENSE:
    case LSTMRT_LAYER_ACTIVATION: return 1;
    default: return 0;
    }
}

static lstmrt_status validate_layer(const lstmrt_layer_desc *d, int32_t index)
{
    if ((int)d->kind < 0 || d->kind >= LSTMRT_LAYER_KIND_COUNT)
        return FAIL("layer %d: unknown layer kind %d", index, (int)d->kind);
    /* a parameter nothing reads is refused rather than ignored: the caller meant something else */
    for (int a = 0; a < 3; a++) {
        const float alpha = d->activation_alpha[a];
        if (a >= activation_slots(d->kind) && alpha != 0.0f)
            return FAIL("layer %d: activation_alpha[%d] = %g in a slot this kind of layer does not read (0 there)",
                        index, a, (double)alpha);
        if (a < activation_slots(d->kind) && !activation_alpha_ok(d->activations[a], alpha))
            return FAIL("layer %d: activation_alpha[%d] = %g is not a parameter activation %d takes (0 where it "
                        "takes none)",
                        index, a, (double)alpha, (int)d->activations[a]);
    }
    if (!dim_ok(d->input_size))
        return FAIL("layer %d: input_size %d out of range [1, %d]", index, d->input_size, LSTMRT_MAX_DIM);
    if (d->num_directions != 1 && !(d->num_directions == 2 && is_recurrent(d->kind)))
        return FAIL("layer %d: num_directions %d (1, or 2 for a recurrent layer)", index, d->num_directions);
    if ((int)d->merge_mode < 0 || d->merge_mode > LSTMRT_MERGE_AVE)
        return FAIL("layer %d: unknown merge mode %d", index, (int)d->merge_mode);
    if (d->proj_size != 0 && (d->kind != LSTMRT_LAYER_LSTM || !dim_ok(d->proj_size)))
        return FAIL("layer %d: proj_size %d (only an LSTM has a projection, size in [1, %d])", index, d->proj_size,
                    LSTMRT_MAX_DIM);
    if (d->kind == LSTMRT_LAYER_ACTIVATION || d->kind == LSTMRT_LAYER_AFFINE) {
        if (d->kind == LSTMRT_LAYER_ACTIVATION && !activation_ok(d->activations[0], 1))
            return FAIL("layer %d: unknown activation %d", index, (int)d->activations[0]);
        return LSTMRT_STATUS_OK;
    }
    if (d->kind == LSTMRT_LAYER_PRELU) {
        if (!d->weights[0].weight_ih) /* unlike an affine's scale, a slope has no neutral value to default to */
            return FAIL("layer %d: prelu slope (weight_ih) is NULL", index);
        return LSTMRT_STATUS_OK;
    }
    if (d->kind == LSTMRT_LAYER_NORM) {
        if (!(d->epsilon >= 0.0f && d->epsilon <= FLT_MAX)) /* also rejects NaN */
            return FAIL("layer %d: norm epsilon must be finite and >= 0", index);
        if ((int)d->norm_mode < 0 || d->norm_mode >= LSTMRT_NORM_MODE_COUNT)
            return FAIL("layer %d: unknown norm mode %d", index, (int)d->norm_mode);
        if (d->norm_mode != LSTMRT_NORM_LAYER && d->weights[0].bias_ih)
            return FAIL("layer %d: norm mode %d has no shift (bias_ih must be NULL)", index, (int)d->norm_mode);
        return LSTMRT_STATUS_OK;
    }
    if (d->kind == LSTMRT_LAYER_GLOBAL_POOL) {
        if ((int)d->pool_mode < 0 || d->pool_mode >= LSTMRT_POOL_MODE_COUNT)
            return FAIL("layer %d: unknown pool mode %d", index, (int)d->pool_mode);
        return LSTMRT_STATUS_OK;
    }
    if (d->kind == LSTMRT_LAYER_ADD || d->kind == LSTMRT_LAYER_ATTENTION_POOL) {
        if (d->kind == LSTMRT_LAYER_ATTENTION_POOL &&
            (!dim_ok(d->hidden_size) || (d->input_size != 1 && d->input_size != d->hidden_size)))
            return FAIL("layer %d: an attention pool's hidden_size %d (the features it pools) must be in [1, %d] and "
                        "its input_size %d (scores per step) 1 or hidden_size",
                        index, d->hidden_size, LSTMRT_MAX_DIM, d->input_size);
        if (d->add_from < 0 || d->add_from > index)
            return FAIL("layer %d: add_from %d must be in [0, %d] (the model input or an earlier layer's output)",
                        index, d->add_from, index);
        if (d->add_offset < 0)
            return FAIL("layer %d: add_offset %d is negative", index, d->add_offset);
        return LSTMRT_STATUS_OK;
    }
    if (!dim_ok(d->hidden_size))
        return FAIL("layer %d: hidden_size %d out of range [1, %d]", index, d->hidden_size, LSTMRT_MAX_DIM);
    if (d->kind == LSTMRT_LAYER_EMBEDDING) {
        if (index != 0)
            return FAIL("layer %d: an embedding must be the first layer", index);
        if (d->input_size != 1 || !dim_ok(d->num_embeddings))
            return FAIL("layer %d: embedding needs input_size 1 and num_embeddings in [1, %d]", index, LSTMRT_MAX_DIM);
        if (!d->weights[0].weight_ih)
            return FAIL("layer %d: embedding table is NULL", index);
        return LSTMRT_STATUS_OK;
    }
    if (d->kind == LSTMRT_LAYER_DENSE) {
        if (!d->weights[0].weight_ih)
            return FAIL("layer %d: dense weight is NULL", index);
        if (!activation_ok(d->activations[0], 1))
            return FAIL("layer %d: unknown activation %d", index, (int)d->activations[0]);
        return LSTMRT_STATUS_OK;
    }
    const int nact = d->kind == LSTMRT_LAYER_LSTM ? 3 : d->kind == LSTMRT_LAYER_GRU ? 2 : 1;
    for (int a = 0; a < nact; a++)
        if (!activation_ok(d->activations[a], 0))
            return FAIL("layer %d: activation %d (%d) is not an element-wise activation", index, a,
                        (int)d->activations[a]);
    if (!(d->cell_clip >= 0.0f)) /* also rejects NaN */
        return FAIL("layer %d: cell_clip must be >= 0 (0 = no clip)", index);
    if (d->cell_clip > 0.0f && d->cell_clip < FLT_MIN) /* a step flushes it to 0, which is no clip */
        return FAIL("layer %d: cell_clip is below FLT_MIN, which a step would read as 0 (no clip)", index);
    if (d->go_backwards && d->num_directions != 1)
        return FAIL("layer %d: go_backwards applies to a single-direction layer", index);
    if (d->linear_before_reset != 0 && d->linear_before_reset != 1)
        return FAIL("layer %d: linear_before_reset must be 0 or 1", index);
    for (int dir = 0; dir < d->num_directions; dir++) {
        const lstmrt_direction_weights *w = &d->weights[dir];
        if (!w->weight_ih || !w->weight_hh)
            return FAIL("layer %d direction %d: weight_ih and weight_hh are required", index, dir);
        if (d->proj_size > 0 && !w->weight_proj)
            return FAIL("layer %d direction %d: proj_size %d but weight_proj is NULL", index, dir, d->proj_size);
    }
    return LSTMRT_STATUS_OK;
}

static int32_t layer_output_size(const lstmrt_layer_desc *d)
{
    if (keeps_width(d->kind))
        return d->input_size;
    if (d->kind == LSTMRT_LAYER_DENSE || d->kind == LSTMRT_LAYER_EMBEDDING || d->kind == LSTMRT_LAYER_ATTENTION_POOL)
        return d->hidden_size;
    const int32_t hr = d->proj_size > 0 ? d->proj_size : d->hidden_size;
    return (d->num_directions == 2 && d->merge_mode == LSTMRT_MERGE_CONCAT) ? 2 * hr : hr;
}

int64_t lstmrt_layer_weight_floats(const lstmrt_layer_desc *d, int32_t direction, int32_t slot)
{
    if (!d || (int)d->kind < 0 || d->kind >= LSTMRT_LAYER_KIND_COUNT || !dim_ok(d->input_size))
        return -1;
    if (direction < 0 || direction > 1 || slot < 0 || slot > 5)
        return 0;
    const int64_t I = d->input_size, H = d->hidden_size, P = d->proj_size;
    switch (d->kind) {
    case LSTMRT_LAYER_LSTM:
    case LSTMRT_LAYER_GRU:
    case LSTMRT_LAYER_RNN: {
        const int lstm = d->kind == LSTMRT_LAYER_LSTM; /* only an LSTM has peepholes and a projection */
        if (!dim_ok(H) || (lstm && P != 0 && !dim_ok(P)) || d->num_directions < 1 || d->num_directions > 2)
            return -1;
        if (direction >= d->num_directions)
            return 0;
        const int64_t G = gate_count(d->kind) * H, Hr = lstm && P > 0 ? P : H;
        const int64_t per_slot[6] = {G * I, G * Hr, G, G, lstm ? 3 * H : 0, lstm ? P * H : 0};
        return per_slot[slot];
    }
    case LSTMRT_LAYER_DENSE:
        if (!dim_ok(H))
            return -1;
        return direction != 0 ? 0 : slot == 0 ? H * I : slot == 2 ? H : 0;
    case LSTMRT_LAYER_AFFINE: return direction == 0 && (slot == 0 || slot == 2) ? I : 0;
    case LSTMRT_LAYER_PRELU: return direction == 0 && slot == 0 ? I : 0;
    case LSTMRT_LAYER_NORM: /* the RMS modes have no shift */
        return direction == 0 && (slot == 0 || (slot == 2 && d->norm_mode == LSTMRT_NORM_LAYER)) ? I : 0;
    case LSTMRT_LAYER_EMBEDDING:
        if (!dim_ok(H) || !dim_ok(d->num_embeddings))
            return -1;
        return direction == 0 && slot == 0 ? (int64_t)d->num_embeddings * H : 0;
    default: return 0;
    }
}

static float *copy_floats(const float *src, int64_t n, int64_t *bytes)
{
    float *dst = lstmrt__alloc_floats(n);
    if (dst) {
        if (src)
            memcpy(dst, src, (size_t)n * sizeof(float));
        else
            memset(dst, 0, (size_t)n * sizeof(float));
        *bytes += n * (int64_t)sizeof(float);
    }
    return dst;
}

static void free_layer(layer *L)
{
    for (int dir = 0; dir < 2; dir++) {
        packed_direction *d = &L->dir[dir];
        free_packed_matrix(&d->w_ih);
        free_packed_matrix(&d->w_hh);
        free_packed_matrix(&d->w_hn);
        free_packed_matrix(&d->w_proj);
        lstmrt__aligned_free(d->bias_x);
        lstmrt__aligned_free(d->bias_hn);
        lstmrt__aligned_free(d->peephole);
    }
    free_packed_matrix(&L->dense);
    lstmrt__aligned_free(L->vec_a);
    lstmrt__aligned_free(L->vec_b);
}

#define PACK(dst, src, r, c)                                                                                           \
    do {                                                                                                               \
        lstmrt_status s_ = pack_matrix(dst, src, r, c);                                                                \
        if (s_ != LSTMRT_STATUS_OK)                                                                                    \
            return s_;                                                                                                 \
        *bytes += packed_floats(r, c) * (int64_t)sizeof(float);                                                        \
    } while (0)
#define ALLOC(dst, src, n)                                                                                             \
    do {                                                                                                               \
        if (!((dst) = copy_floats(src, n, bytes)))                                                                     \
            return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate %lld floats", (long long)(n));           \
    } while (0)

static lstmrt_status pack_direction(const lstmrt_layer_desc *d, const lstmrt_direction_weights *w, layer *L,
                                    packed_direction *p, int64_t *bytes)
{
    const int64_t H = d->hidden_size, G = L->gates * H, I = d->input_size, Hr = L->state_h_size;
    ALLOC(p->bias_x, w->bias_ih, G);
    if (d->kind == LSTMRT_LAYER_GRU) {
        /* r, z: both biases fold into the input part; b_hn stays behind the reset gate */
        if (w->bias_hh)
            for (int64_t j = 0; j < 2 * H; j++)
                p->bias_x[j] += w->bias_hh[j];
        if (d->linear_before_reset) {
            ALLOC(p->bias_hn, NULL, G);
            if (w->bias_hh)
                memcpy(p->bias_hn + 2 * H, w->bias_hh + 2 * H, (size_t)H * sizeof(float));
            PACK(&p->w_hh, w->weight_hh, G, Hr);
        } else {
            ALLOC(p->bias_hn, w->bias_hh ? w->bias_hh + 2 * H : NULL, H);
            PACK(&p->w_hh, w->weight_hh, 2 * H, Hr);
            PACK(&p->w_hn, w->weight_hh + 2 * H * Hr, H, Hr);
        }
    } else {
        if (w->bias_hh)
            for (int64_t j = 0; j < G; j++)
                p->bias_x[j] += w->bias_hh[j];
        PACK(&p->w_hh, w->weight_hh, G, Hr);
    }
    PACK(&p->w_ih, w->weight_ih, G, I);
    if (d->kind == LSTMRT_LAYER_LSTM) {
        if (w->weight_peephole)
            ALLOC(p->peephole, w->weight_peephole, 3 * H);
        if (d->proj_size > 0)
            PACK(&p->w_proj, w->weight_proj, d->proj_size, H);
    }
    return LSTMRT_STATUS_OK;
}

static lstmrt_status build_layer(const lstmrt_layer_desc *d, layer *L, int64_t *bytes)
{
    L->kind = d->kind;
    L->input_size = d->input_size;
    L->hidden_size = keeps_width(d->kind) ? d->input_size : d->hidden_size;
    L->proj_size = d->proj_size;
    L->state_h_size = d->proj_size > 0 ? d->proj_size : L->hidden_size;
    L->output_size = layer_output_size(d);
    L->gates = gate_count(d->kind);
    L->num_directions = d->num_directions;
    L->num_embeddings = d->num_embeddings;
    L->merge_mode = d->merge_mode;
    for (int a = 0; a < 3; a++)
        L->act[a] = (activation){d->activations[a], d->activation_alpha[a]};
    L->cell_clip = d->cell_clip;
    L->linear_before_reset = d->linear_before_reset;
    L->hold_masked_output = d->hold_masked_output != 0;
    L->go_backwards = d->go_backwards != 0 && d->kind <= LSTMRT_LAYER_RNN;
    L->final_only = d->final_only != 0 && d->kind <= LSTMRT_LAYER_RNN;
    const int std_gates = d->activations[0] == LSTMRT_ACT_SIGMOID && d->activations[1] == LSTMRT_ACT_TANH;
    if (d->kind == LSTMRT_LAYER_LSTM)
        L->fused_default = std_gates && d->activations[2] == LSTMRT_ACT_TANH && d->cell_clip == 0.0f &&
                           !d->weights[0].weight_peephole && !d->weights[1].weight_peephole;
    else if (d->kind == LSTMRT_LAYER_GRU)
        L->fused_default = std_gates && d->linear_before_reset;

    const lstmrt_direction_weights *w = &d->weights[0];
    switch (d->kind) {
    case LSTMRT_LAYER_DENSE:
        PACK(&L->dense, w->weight_ih, d->hidden_size, d->input_size);
        if (w->bias_ih)
            ALLOC(L->vec_a, w->bias_ih, d->hidden_size);
        return LSTMRT_STATUS_OK;
    case LSTMRT_LAYER_NORM:
    case LSTMRT_LAYER_AFFINE:
        L->epsilon = d->epsilon;
        L->norm_mode = d->norm_mode;
        ALLOC(L->vec_a, w->weight_ih, d->input_size);
        if (!w->weight_ih)
            for (int32_t j = 0; j < d->input_size; j++)
                L->vec_a[j] = 1.0f;
        ALLOC(L->vec_b, w->bias_ih, d->input_size);
        return LSTMRT_STATUS_OK;
    case LSTMRT_LAYER_PRELU: ALLOC(L->vec_a, w->weight_ih, d->input_size); return LSTMRT_STATUS_OK;
    case LSTMRT_LAYER_EMBEDDING:
        ALLOC(L->vec_a, w->weight_ih, (int64_t)d->num_embeddings * d->hidden_size);
        return LSTMRT_STATUS_OK;
    case LSTMRT_LAYER_GLOBAL_POOL: L->pool_mode = d->pool_mode; return LSTMRT_STATUS_OK;
    case LSTMRT_LAYER_ADD:
    case LSTMRT_LAYER_ATTENTION_POOL:
        L->add_from = d->add_from;
        L->add_offset = d->add_offset;
        return LSTMRT_STATUS_OK;
    case LSTMRT_LAYER_ACTIVATION: return LSTMRT_STATUS_OK;
    default:
        for (int dir = 0; dir < d->num_directions; dir++) {
            lstmrt_status s = pack_direction(d, &d->weights[dir], L, &L->dir[dir], bytes);
            if (s != LSTMRT_STATUS_OK)
                return s;
        }
        return LSTMRT_STATUS_OK;
    }
}

/* A layer whose output a later LSTMRT_LAYER_ADD or ATTENTION_POOL reads writes it to a slot of its own in the
 * workspace's kept buffer, where the ping-pong buffers cannot overwrite it before that layer runs. */
static void keep_add_sources(lstmrt_model_t *m)
{
    for (int32_t l = 0; l < m->num_layers; l++) {
        const layer *A = &m->layers[l];
        if ((A->kind != LSTMRT_LAYER_ADD && A->kind != LSTMRT_LAYER_ATTENTION_POOL) || A->add_from == 0)
            continue;
        layer *S = &m->layers[A->add_from - 1];
        if (S->kept_at < 0) {
            S->kept_at = m->kept_width;
            m->kept_width += S->output_size;
        }
    }
}

lstmrt_status lstmrt__validate_layers(const lstmrt_layer_desc *layers, int32_t num_layers)
{
    if (num_layers < 1 || num_layers > LSTMRT_MAX_LAYERS)
        return FAIL("need between 1 and %d layers, got %d", LSTMRT_MAX_LAYERS, num_layers);
    for (int32_t l = 0; l < num_layers; l++) {
        lstmrt_status s = validate_layer(&layers[l], l);
        if (s != LSTMRT_STATUS_OK)
            return s;
        if (l > 0 && layers[l].input_size != layer_output_size(&layers[l - 1]))
            return FAIL("layer %d: input_size %d but layer %d outputs %d features", l, layers[l].input_size, l - 1,
                        layer_output_size(&layers[l - 1]));
        if (layers[l].kind == LSTMRT_LAYER_ADD || layers[l].kind == LSTMRT_LAYER_ATTENTION_POOL) {
            const int32_t from = layers[l].add_from;
            const int64_t width = from == 0 ? layers[0].input_size : layer_output_size(&layers[from - 1]);
            const int64_t read = layers[l].kind == LSTMRT_LAYER_ADD ? layers[l].input_size : layers[l].hidden_size;
            if ((int64_t)layers[l].add_offset + read > width)
                return FAIL("layer %d: %s features [%d, %lld) of %s, which has %lld", l,
                            layers[l].kind == LSTMRT_LAYER_ADD ? "adds" : "attends to", layers[l].add_offset,
                            (long long)layers[l].add_offset + read, from == 0 ? "the model input" : "a layer's output",
                            (long long)width);
        }
    }
    return LSTMRT_STATUS_OK;
}

void lstmrt_model_free(lstmrt_model_t *m)
{
    if (!m)
        return;
    if (m->layers)
        for (int32_t l = 0; l < m->num_layers; l++)
            free_layer(&m->layers[l]);
    free(m->layers);
    team_slot_clear(m->predict_team);
    free(m->predict_team);
    free(m);
}

lstmrt_status lstmrt_model_create(const lstmrt_layer_desc *layers, int32_t num_layers, lstmrt_model_t **out)
{
    lstmrt__clear_error();
    if (!out)
        return FAIL("out is NULL");
    *out = NULL;
    if (!layers)
        return FAIL("layers is NULL");
    lstmrt_status status = lstmrt__validate_layers(layers, num_layers);
    if (status != LSTMRT_STATUS_OK)
        return status;
    lstmrt_model_t *m = calloc(1, sizeof *m);
    if (!m || !(m->layers = calloc((size_t)num_layers, sizeof(layer))) ||
        !(m->predict_team = calloc(1, sizeof(team_slot)))) {
        if (m)
            free(m->layers);
        free(m);
        return lstmrt__fail(LSTMRT_STATUS_OUT_OF_MEMORY, "cannot allocate the model");
    }
    m->num_layers = num_layers;
    m->kernels = lstmrt__kernels();
    m->input_size = layers[0].input_size;
    m->max_width = m->input_size;
    m->max_hidden = 1;
    m->max_gate_width = 1;
    for (int32_t l = 0; l < num_layers; l++) {
        layer *L = &m->layers[l];
        lstmrt_status s = build_layer(&layers[l], L, &m->weight_bytes);
        if (s != LSTMRT_STATUS_OK) {
            lstmrt_model_free(m);
            return s;
        }
        if (L->output_size > m->max_width)
            m->max_width = L->output_size;
        if (L->gates * L->hidden_size > m->max_gate_width && L->kind <= LSTMRT_LAYER_RNN)
            m->max_gate_width = L->gates * L->hidden_size;
        if (L->hidden_size > m->max_hidden && L->kind <= LSTMRT_LAYER_RNN)
            m->max_hidden = L->hidden_size;
        L->kept_at = -1;
        L->state_floats = layer_state_floats(L);
        m->state_size += L->state_floats;
        if (L->kind <= LSTMRT_LAYER_RNN)
            m->bidirectional |= L->num_directions == 2 || L->go_backwards;
    }
    m->output_size = m->layers[num_layers - 1].output_size;
    keep_add_sources(m);
    *out = m;
    return LSTMRT_STATUS_OK;
}

/* The getters have no status to return: a NULL model answers 0 rather than crashing. */
int32_t lstmrt_model_input_size(const lstmrt_model_t *m)
{
    return m ? m->input_size : 0;
}
int32_t lstmrt_model_output_size(const lstmrt_model_t *m)
{
    return m ? m->output_size : 0;
}
int32_t lstmrt_model_is_bidirectional(const lstmrt_model_t *m)
{
    return m ? m->bidirectional : 0;
}
int64_t lstmrt_model_state_size(const lstmrt_model_t *m)
{
    return m ? m->state_size : 0;
}
int64_t lstmrt_model_weight_bytes(const lstmrt_model_t *m)
{
    return m ? m->weight_bytes : 0;
}
