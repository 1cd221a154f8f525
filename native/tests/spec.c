/* Model specs (spec.h): layer descriptors with random weights, the catalogue of every layer kind, inputs. */
#include "spec.h"

int gate_count(lstmrt_layer_kind k)
{
    return k == LSTMRT_LAYER_LSTM ? 4 : k == LSTMRT_LAYER_GRU ? 3 : 1;
}
int is_recurrent(lstmrt_layer_kind k)
{
    return k <= LSTMRT_LAYER_RNN;
}
int state_h(const lstmrt_layer_desc *d)
{
    return d->proj_size > 0 ? d->proj_size : d->hidden_size;
}

int layer_out(const lstmrt_layer_desc *d)
{
    switch (d->kind) {
    case LSTMRT_LAYER_ACTIVATION:
    case LSTMRT_LAYER_AFFINE:
    case LSTMRT_LAYER_PRELU:
    case LSTMRT_LAYER_NORM:
    case LSTMRT_LAYER_GLOBAL_POOL:
    case LSTMRT_LAYER_ADD: return d->input_size;
    case LSTMRT_LAYER_DENSE:
    case LSTMRT_LAYER_EMBEDDING:
    case LSTMRT_LAYER_ATTENTION_POOL: return d->hidden_size;
    default: return d->num_directions == 2 && d->merge_mode == LSTMRT_MERGE_CONCAT ? 2 * state_h(d) : state_h(d);
    }
}

int state_parts(const lstmrt_layer_desc *d, int sizes[4])
{
    int n = 0;
    if (d->kind == LSTMRT_LAYER_GLOBAL_POOL) {
        sizes[n++] = d->input_size; /* pooled values */
        if (d->pool_mode == LSTMRT_POOL_AVERAGE)
            sizes[n++] = d->input_size; /* the mean's low parts */
        sizes[n++] = 1;                 /* steps pooled */
    } else if (d->kind == LSTMRT_LAYER_ATTENTION_POOL) {
        sizes[n++] = d->hidden_size; /* weighted means */
        sizes[n++] = d->hidden_size; /* their low parts */
        sizes[n++] = d->input_size;  /* largest scores */
        sizes[n++] = d->input_size;  /* weight sums */
    } else if (is_recurrent(d->kind))
        for (int dir = 0; dir < d->num_directions; dir++) {
            sizes[n++] = state_h(d);
            if (d->kind == LSTMRT_LAYER_LSTM)
                sizes[n++] = d->hidden_size;
        }
    return n;
}

lstmrt_layer_desc *push(spec *s, lstmrt_layer_kind kind, int in, int hidden)
{
    lstmrt_layer_desc *d = &s->layers[s->n++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->input_size = in;
    d->hidden_size = hidden;
    d->num_directions = 1;
    d->activations[0] = kind == LSTMRT_LAYER_RNN ? LSTMRT_ACT_TANH
                        : is_recurrent(kind)     ? LSTMRT_ACT_SIGMOID
                                                 : LSTMRT_ACT_LINEAR;
    d->activations[1] = LSTMRT_ACT_TANH;
    d->activations[2] = LSTMRT_ACT_TANH;
    d->linear_before_reset = kind == LSTMRT_LAYER_GRU;
    return d;
}

/* activations[slot] = a with its parameter alpha (0 for an activation that takes none) */
lstmrt_layer_desc *set_act(lstmrt_layer_desc *d, int slot, lstmrt_activation a, float alpha)
{
    d->activations[slot] = a;
    d->activation_alpha[slot] = alpha;
    return d;
}

/* Random weights for every layer, once the options that shape them (directions, projection) are set. */
void add_weights(spec *s)
{
    for (int l = 0; l < s->n; l++) {
        lstmrt_layer_desc *d = &s->layers[l];
        const int I = d->input_size, H = d->hidden_size, Hr = state_h(d), G = gate_count(d->kind) * H;
        const int bias = !s->no_bias[l];
        for (int dir = 0; dir < d->num_directions; dir++) {
            lstmrt_direction_weights *w = &d->weights[dir];
            const double a = s->scale / sqrt((double)(I + (is_recurrent(d->kind) ? Hr : 0)));
            switch (d->kind) {
            case LSTMRT_LAYER_DENSE:
                w->weight_ih = random_floats((int64_t)H * I, a);
                w->bias_ih = bias ? random_floats(H, 0.5) : NULL;
                break;
            case LSTMRT_LAYER_AFFINE:
                w->weight_ih = random_floats(I, 2.0);
                w->bias_ih = random_floats(I, 1.0);
                break;
            case LSTMRT_LAYER_PRELU: { /* slopes of both signs; with 2 features or more, a 0 (a relu) first */
                float *slope = random_floats(I, 1.5);
                if (I > 1)
                    slope[0] = 0.0f;
                w->weight_ih = slope;
                break;
            }
            case LSTMRT_LAYER_NORM: /* RMS modes have no shift */
                w->weight_ih = random_floats(I, 2.0);
                w->bias_ih = d->norm_mode == LSTMRT_NORM_LAYER ? random_floats(I, 1.0) : NULL;
                break;
            case LSTMRT_LAYER_EMBEDDING: w->weight_ih = random_floats((int64_t)d->num_embeddings * H, 1.0); break;
            case LSTMRT_LAYER_ACTIVATION:
            case LSTMRT_LAYER_GLOBAL_POOL:
            case LSTMRT_LAYER_ATTENTION_POOL:
            case LSTMRT_LAYER_ADD: break;
            default:
                w->weight_ih = random_floats((int64_t)G * I, a);
                w->weight_hh = random_floats((int64_t)G * Hr, a);
                w->bias_ih = bias ? random_floats(G, 0.5) : NULL;
                w->bias_hh = bias ? random_floats(G, 0.5) : NULL;
                if (d->kind == LSTMRT_LAYER_LSTM && s->peephole[l])
                    w->weight_peephole = random_floats(3 * H, 0.5);
                if (d->proj_size > 0)
                    w->weight_proj = random_floats((int64_t)d->proj_size * H, 1.0 / sqrt((double)H));
            }
        }
    }
}

/* An empty spec at the catalogue's weight scale, its random numbers from `seed`. */
void blank_spec(spec *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->scale = 1.5;
    rng_seed(seed);
}

/* A spec made by a test rather than by make_spec: it names itself and the checks that follow (context). */
void start_spec(spec *s, uint64_t seed, const char *name)
{
    blank_spec(s, seed);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(context, sizeof context, "%s", name);
}

/* The catalogue: every layer kind and option, at awkward sizes (1, 7, 17, 33). */
void make_spec(int which, spec *s)
{
    blank_spec(s, 1000 + (uint64_t)which);
    lstmrt_layer_desc *d;
    const char *name = "?";
    switch (which) {
    case 0:
        name = "lstm 7-17";
        push(s, LSTMRT_LAYER_LSTM, 7, 17);
        break;
    case 1:
        name = "lstm 7-17 proj 5";
        push(s, LSTMRT_LAYER_LSTM, 7, 17)->proj_size = 5;
        break;
    case 2:
        name = "lstm 5-7 peephole";
        push(s, LSTMRT_LAYER_LSTM, 5, 7);
        s->peephole[0] = 1;
        break;
    case 3:
        name = "lstm 4-6 clip 0.5 + peephole";
        push(s, LSTMRT_LAYER_LSTM, 4, 6)->cell_clip = 0.5f;
        s->peephole[0] = 1;
        s->scale = 4.0; /* pre-activations well beyond the clip */
        break;
    case 4:
        name = "lstm 3-8 hard_sigmoid/elu/softsign, hold masked";
        d = push(s, LSTMRT_LAYER_LSTM, 3, 8);
        d->activations[0] = LSTMRT_ACT_HARD_SIGMOID;
        d->activations[1] = LSTMRT_ACT_ELU;
        d->activations[2] = LSTMRT_ACT_SOFTSIGN;
        d->hold_masked_output = 1;
        break;
    case 5:
        name = "gru 7-17 reset after";
        push(s, LSTMRT_LAYER_GRU, 7, 17);
        break;
    case 6:
        name = "gru 7-17 reset before";
        push(s, LSTMRT_LAYER_GRU, 7, 17)->linear_before_reset = 0;
        break;
    case 7:
        name = "gru 1-1 reset after, hard_sigmoid/relu";
        d = push(s, LSTMRT_LAYER_GRU, 1, 1);
        d->activations[0] = LSTMRT_ACT_HARD_SIGMOID;
        d->activations[1] = LSTMRT_ACT_RELU;
        break;
    case 8:
        name = "gru 6-5 reset before, softsign, hold masked, no bias";
        d = push(s, LSTMRT_LAYER_GRU, 6, 5);
        d->linear_before_reset = 0;
        d->activations[1] = LSTMRT_ACT_SOFTSIGN;
        d->hold_masked_output = 1;
        s->no_bias[0] = 1;
        break;
    case 9:
        name = "rnn 7-33 tanh";
        push(s, LSTMRT_LAYER_RNN, 7, 33);
        break;
    case 10:
        name = "rnn 1-1 relu, no bias";
        push(s, LSTMRT_LAYER_RNN, 1, 1)->activations[0] = LSTMRT_ACT_RELU;
        s->no_bias[0] = 1;
        break;
    case 11:
        name = "dense 7-5 relu + dense 5-3 softmax (no bias)";
        push(s, LSTMRT_LAYER_DENSE, 7, 5)->activations[0] = LSTMRT_ACT_RELU;
        push(s, LSTMRT_LAYER_DENSE, 5, 3)->activations[0] = LSTMRT_ACT_SOFTMAX;
        s->no_bias[1] = 1;
        break;
    case 12:
        name = "bi-lstm 6-7 concat + dense 14-2";
        push(s, LSTMRT_LAYER_LSTM, 6, 7)->num_directions = 2;
        push(s, LSTMRT_LAYER_DENSE, 14, 2);
        break;
    case 13:
        name = "bi-gru 5-9 sum, reset before";
        d = push(s, LSTMRT_LAYER_GRU, 5, 9);
        d->num_directions = 2;
        d->merge_mode = LSTMRT_MERGE_SUM;
        d->linear_before_reset = 0;
        break;
    case 14:
        name = "bi-lstm 3-6 proj 4 mul + bi-rnn 4-5 ave";
        d = push(s, LSTMRT_LAYER_LSTM, 3, 6);
        d->num_directions = 2;
        d->merge_mode = LSTMRT_MERGE_MUL;
        d->proj_size = 4;
        d = push(s, LSTMRT_LAYER_RNN, 4, 5);
        d->num_directions = 2;
        d->merge_mode = LSTMRT_MERGE_AVE;
        break;
    case 15:
        name = "embedding 11x6 + lstm 6-9 + dense 9-4 log_softmax";
        push(s, LSTMRT_LAYER_EMBEDDING, 1, 6)->num_embeddings = 11;
        push(s, LSTMRT_LAYER_LSTM, 6, 9);
        push(s, LSTMRT_LAYER_DENSE, 9, 4)->activations[0] = LSTMRT_ACT_LOG_SOFTMAX;
        break;
    case 16:
        name = "affine 7 + gru 7-16 + activation tanh + rnn 16-3";
        push(s, LSTMRT_LAYER_AFFINE, 7, 0);
        push(s, LSTMRT_LAYER_GRU, 7, 16);
        push(s, LSTMRT_LAYER_ACTIVATION, 16, 0)->activations[0] = LSTMRT_ACT_TANH;
        push(s, LSTMRT_LAYER_RNN, 16, 3);
        break;
    case 17:
        name = "lstm 3-33 proj 17 + lstm 17-33 + dense 33-1";
        push(s, LSTMRT_LAYER_LSTM, 3, 33)->proj_size = 17;
        push(s, LSTMRT_LAYER_LSTM, 17, 33);
        push(s, LSTMRT_LAYER_DENSE, 33, 1);
        break;
    case 18:
        name = "gru 5-8 go_backwards + lstm 8-6 final only";
        push(s, LSTMRT_LAYER_GRU, 5, 8)->go_backwards = 1;
        push(s, LSTMRT_LAYER_LSTM, 8, 6)->final_only = 1;
        break;
    case 19:
        name = "lstm 4-5 final only + gru 5-3"; /* causal: predict runs it in blocks */
        push(s, LSTMRT_LAYER_LSTM, 4, 5)->final_only = 1;
        push(s, LSTMRT_LAYER_GRU, 5, 3);
        break;
    case 20:
        name = "bi-lstm 4-5 concat final only + dense 10-3";
        d = push(s, LSTMRT_LAYER_LSTM, 4, 5);
        d->num_directions = 2;
        d->final_only = 1;
        push(s, LSTMRT_LAYER_DENSE, 10, 3);
        break;
    case 21:
        name = "norm 7 rms + lstm 7-17 + norm 17 + dense 17-3";
        d = push(s, LSTMRT_LAYER_NORM, 7, 0);
        d->norm_mode = LSTMRT_NORM_RMS;
        d->epsilon = 1e-6f;
        push(s, LSTMRT_LAYER_LSTM, 7, 17);
        push(s, LSTMRT_LAYER_NORM, 17, 0)->epsilon = 1e-3f;
        push(s, LSTMRT_LAYER_DENSE, 17, 3);
        break;
    case 22:
        name = "lstm 5-9 + norm 9 variance scale + gru 9-4";
        push(s, LSTMRT_LAYER_LSTM, 5, 9);
        d = push(s, LSTMRT_LAYER_NORM, 9, 0);
        d->norm_mode = LSTMRT_NORM_VARIANCE_SCALE;
        d->epsilon = 1e-5f;
        push(s, LSTMRT_LAYER_GRU, 9, 4);
        break;
    case 23:
        name = "lstm 4-6 + average pool 6 + dense 6-3";
        push(s, LSTMRT_LAYER_LSTM, 4, 6);
        push(s, LSTMRT_LAYER_GLOBAL_POOL, 6, 0)->pool_mode = LSTMRT_POOL_AVERAGE;
        push(s, LSTMRT_LAYER_DENSE, 6, 3);
        break;
    case 24:
        name = "gru 3-5 + max pool 5 + dense 5-2 softmax";
        push(s, LSTMRT_LAYER_GRU, 3, 5);
        push(s, LSTMRT_LAYER_GLOBAL_POOL, 5, 0)->pool_mode = LSTMRT_POOL_MAX;
        push(s, LSTMRT_LAYER_DENSE, 5, 2)->activations[0] = LSTMRT_ACT_SOFTMAX;
        break;
    case 25:
        name = "bi-lstm 3-4 concat + average pool 8 + max pool 8";
        d = push(s, LSTMRT_LAYER_LSTM, 3, 4);
        d->num_directions = 2;
        push(s, LSTMRT_LAYER_GLOBAL_POOL, 8, 0)->pool_mode = LSTMRT_POOL_AVERAGE;
        push(s, LSTMRT_LAYER_GLOBAL_POOL, 8, 0)->pool_mode = LSTMRT_POOL_MAX;
        break;
    case 26:
        name = "lstm 3-7 + dense 7-1 + add input[2:3]"; /* an audio effect's skip: y = lin(lstm(x)) + x[..., 2] */
        push(s, LSTMRT_LAYER_LSTM, 3, 7);
        push(s, LSTMRT_LAYER_DENSE, 7, 1);
        push(s, LSTMRT_LAYER_ADD, 1, 0)->add_offset = 2;
        break;
    case 27:
        /* residual blocks: every output kept, one read twice, one read by a later add, the last add of its input */
        name = "gru 5-6, lstm, add 1, rnn, add 3, dense 6-2, add 1[4:6), add in[3:5), add 8";
        push(s, LSTMRT_LAYER_GRU, 5, 6);
        push(s, LSTMRT_LAYER_LSTM, 6, 6);
        push(s, LSTMRT_LAYER_ADD, 6, 0)->add_from = 1;
        push(s, LSTMRT_LAYER_RNN, 6, 6);
        push(s, LSTMRT_LAYER_ADD, 6, 0)->add_from = 3;
        d = push(s, LSTMRT_LAYER_DENSE, 6, 2);
        d = push(s, LSTMRT_LAYER_ADD, 2, 0);
        d->add_from = 1;
        d->add_offset = 4;
        push(s, LSTMRT_LAYER_ADD, 2, 0)->add_offset = 3;
        push(s, LSTMRT_LAYER_ADD, 2, 0)->add_from = 8;
        break;
    case 28:
        name = "bi-gru 4-3 concat final only + add out0 + dense 6-2"; /* adds the final output broadcast by predict */
        d = push(s, LSTMRT_LAYER_GRU, 4, 3);
        d->num_directions = 2;
        d->final_only = 1;
        push(s, LSTMRT_LAYER_ADD, 6, 0)->add_from = 1;
        push(s, LSTMRT_LAYER_DENSE, 6, 2);
        break;
    /* 29-33: the activations with a parameter, each at two values (0, or a negative one, where allowed), and the
       other new ones: each in a dense layer, an activation layer and a recurrent slot. The gates (slot 0 of an LSTM
       or GRU) are sparse_sigmoid, the one of them that keeps a gate in [0, 1]. */
    case 29:
        name = "lstm 5-7 sparse_sigmoid/soft_shrink(.7)/squareplus(4), leaky_relu(.01), (-.5)";
        d = push(s, LSTMRT_LAYER_LSTM, 5, 7);
        set_act(d, 0, LSTMRT_ACT_SPARSE_SIGMOID, 0.0f);
        set_act(d, 1, LSTMRT_ACT_SOFT_SHRINK, 0.7f);
        set_act(d, 2, LSTMRT_ACT_SQUAREPLUS, 4.0f);
        s->scale = 1.0; /* c integrates where the forget gate is exactly 1: smaller weights keep it O(1) (SAME_TOL) */
        set_act(push(s, LSTMRT_LAYER_DENSE, 7, 6), 0, LSTMRT_ACT_LEAKY_RELU, 0.01f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 6, 0), 0, LSTMRT_ACT_LEAKY_RELU, -0.5f);
        break;
    case 30:
        name = "gru 4-6 sparse_sigmoid/celu(-2), celu(.5), (-2), hard_shrink(.7), (0)";
        d = push(s, LSTMRT_LAYER_GRU, 4, 6);
        set_act(d, 0, LSTMRT_ACT_SPARSE_SIGMOID, 0.0f);
        set_act(d, 1, LSTMRT_ACT_CELU, -2.0f);
        set_act(push(s, LSTMRT_LAYER_DENSE, 6, 5), 0, LSTMRT_ACT_CELU, 0.5f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 5, 0), 0, LSTMRT_ACT_CELU, -2.0f);
        set_act(push(s, LSTMRT_LAYER_DENSE, 5, 5), 0, LSTMRT_ACT_HARD_SHRINK, 0.7f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 5, 0), 0, LSTMRT_ACT_HARD_SHRINK, 0.0f);
        break;
    case 31:
        name = "rnn leaky_relu(-.5), hard_shrink(.7), squareplus(0), soft_shrink(0), (.7), ...";
        set_act(push(s, LSTMRT_LAYER_RNN, 3, 7), 0, LSTMRT_ACT_LEAKY_RELU, -0.5f);
        set_act(push(s, LSTMRT_LAYER_RNN, 7, 6), 0, LSTMRT_ACT_HARD_SHRINK, 0.7f);
        set_act(push(s, LSTMRT_LAYER_RNN, 6, 5), 0, LSTMRT_ACT_SQUAREPLUS, 0.0f);
        /* soft_shrink(0) is the identity: squareplus(0), a relu, sees both signs */
        set_act(push(s, LSTMRT_LAYER_DENSE, 5, 6), 0, LSTMRT_ACT_SOFT_SHRINK, 0.0f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 6, 0), 0, LSTMRT_ACT_SQUAREPLUS, 0.0f);
        set_act(push(s, LSTMRT_LAYER_DENSE, 6, 4), 0, LSTMRT_ACT_SQUAREPLUS, 4.0f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 4, 0), 0, LSTMRT_ACT_SOFT_SHRINK, 0.7f);
        break;
    case 32: /* tanh_shrink (x^3 / 3 near 0) after hard_tanh, not after itself: the output stays O(0.1) */
        name = "gru 4-6 sparse_sigmoid/hard_tanh, rnn log_sigmoid, hard_tanh, tanh_shrink";
        s->scale = 2.5; /* pre-activations beyond hard_tanh's clip at +-1 */
        d = push(s, LSTMRT_LAYER_GRU, 4, 6);
        d->linear_before_reset = 0;
        set_act(d, 0, LSTMRT_ACT_SPARSE_SIGMOID, 0.0f);
        set_act(d, 1, LSTMRT_ACT_HARD_TANH, 0.0f);
        set_act(push(s, LSTMRT_LAYER_RNN, 6, 5), 0, LSTMRT_ACT_LOG_SIGMOID, 0.0f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 5, 0), 0, LSTMRT_ACT_HARD_TANH, 0.0f);
        set_act(push(s, LSTMRT_LAYER_DENSE, 5, 6), 0, LSTMRT_ACT_TANH_SHRINK, 0.0f);
        set_act(push(s, LSTMRT_LAYER_DENSE, 6, 5), 0, LSTMRT_ACT_HARD_TANH, 0.0f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 5, 0), 0, LSTMRT_ACT_TANH_SHRINK, 0.0f);
        break;
    case 33:
        name = "lstm sparse_sigmoid/leaky_relu(-.5)/soft_shrink(0), rnn sparse_plus, ...";
        d = push(s, LSTMRT_LAYER_LSTM, 4, 6);
        set_act(d, 0, LSTMRT_ACT_SPARSE_SIGMOID, 0.0f);
        set_act(d, 1, LSTMRT_ACT_LEAKY_RELU, -0.5f);
        set_act(d, 2, LSTMRT_ACT_SOFT_SHRINK, 0.0f);
        set_act(push(s, LSTMRT_LAYER_RNN, 6, 5), 0, LSTMRT_ACT_SPARSE_PLUS, 0.0f);
        set_act(push(s, LSTMRT_LAYER_RNN, 5, 5), 0, LSTMRT_ACT_CELU, 0.5f);
        set_act(push(s, LSTMRT_LAYER_RNN, 5, 5), 0, LSTMRT_ACT_TANH_SHRINK, 0.0f);
        set_act(push(s, LSTMRT_LAYER_DENSE, 5, 6), 0, LSTMRT_ACT_LOG_SIGMOID, 0.0f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 6, 0), 0, LSTMRT_ACT_LOG_SIGMOID, 0.0f);
        set_act(push(s, LSTMRT_LAYER_DENSE, 6, 4), 0, LSTMRT_ACT_SPARSE_PLUS, 0.0f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 4, 0), 0, LSTMRT_ACT_SPARSE_PLUS, 0.0f);
        set_act(push(s, LSTMRT_LAYER_DENSE, 4, 3), 0, LSTMRT_ACT_SPARSE_SIGMOID, 0.0f);
        set_act(push(s, LSTMRT_LAYER_ACTIVATION, 3, 0), 0, LSTMRT_ACT_SPARSE_SIGMOID, 0.0f);
        break;
    case 34: /* on the model input, on h, on a dense output of one feature */
        name = "prelu 7 + lstm 7-17 + prelu 17 + dense 17-1 + prelu 1";
        push(s, LSTMRT_LAYER_PRELU, 7, 0);
        push(s, LSTMRT_LAYER_LSTM, 7, 17);
        push(s, LSTMRT_LAYER_PRELU, 17, 0);
        push(s, LSTMRT_LAYER_DENSE, 17, 1);
        push(s, LSTMRT_LAYER_PRELU, 1, 0);
        break;
    case 35: /* torch's softmax(self.attn(out), dim=1), (w * out).sum(1), then a head */
        name = "lstm 4-6 + dense 6-1 + attention of 0 + dense 6-3";
        push(s, LSTMRT_LAYER_LSTM, 4, 6);
        push(s, LSTMRT_LAYER_DENSE, 6, 1);
        push(s, LSTMRT_LAYER_ATTENTION_POOL, 1, 6)->add_from = 1;
        push(s, LSTMRT_LAYER_DENSE, 6, 3);
        break;
    case 36: /* a score per feature; a score shared by a slice of the model input; scores large enough to rescale */
        name = "gru 3-5, dense 5-5 tanh, attention per feature of 0, dense 5-1, attend in[1:3)";
        s->scale = 4.0;
        push(s, LSTMRT_LAYER_GRU, 3, 5);
        push(s, LSTMRT_LAYER_DENSE, 5, 5)->activations[0] = LSTMRT_ACT_TANH;
        push(s, LSTMRT_LAYER_ATTENTION_POOL, 5, 5)->add_from = 1;
        push(s, LSTMRT_LAYER_DENSE, 5, 1);
        d = push(s, LSTMRT_LAYER_ATTENTION_POOL, 1, 2);
        d->add_offset = 1;
        break;
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    add_weights(s);
}

int spec_is_tokens(const spec *s)
{
    return s->layers[0].kind == LSTMRT_LAYER_EMBEDDING;
}
int spec_in(const spec *s)
{
    return s->layers[0].input_size;
}
int spec_out(const spec *s)
{
    return layer_out(&s->layers[s->n - 1]);
}
int point_width(const spec *s, int point)
{
    return point == 0 ? spec_in(s) : layer_out(&s->layers[point - 1]);
}

/* Inputs: uniform [-1, 1], or token ids for an embedding. */
float *make_inputs(const spec *s, int64_t batch, int64_t steps)
{
    const int64_t n = batch * steps * spec_in(s);
    float *x = new_floats(n);
    for (int64_t i = 0; i < n; i++)
        x[i] = spec_is_tokens(s) ? (float)(int)(rng_unit() * s->layers[0].num_embeddings)
                                 : (float)(2.0 * rng_unit() - 1.0);
    return x;
}

lstmrt_model_t *create_model(const spec *s)
{
    lstmrt_model_t *m = NULL;
    const lstmrt_status st = lstmrt_model_create(s->layers, s->n, &m);
    if (!CHECK(st == LSTMRT_STATUS_OK && m != NULL))
        printf("  model_create(%s): %s\n", s->name, lstmrt_last_error());
    return st == LSTMRT_STATUS_OK ? m : NULL;
}

lstmrt_model_t *open_spec(int which, spec *s)
{
    make_spec(which, s);
    snprintf(context, sizeof context, "%s", s->name);
    return create_model(s);
}
