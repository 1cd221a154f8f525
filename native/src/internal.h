/* Internal types shared by the runtime's translation units. Not part of the public API. */
#ifndef LSTMRT_INTERNAL_H
#define LSTMRT_INTERNAL_H

#include "kernels/kernels.h"
#include "lstmrt.h"

/* Sizes are bounded so that every product of two of them fits comfortably in int64 and a float index. */
#define LSTMRT_MAX_DIM (1 << 24)
#define LSTMRT_MAX_LAYERS 4096

/* A sequence of feature rows: row (b, t) starts at data + b * batch_stride + t * time_stride. */
typedef struct seq_view {
    float *data;
    int64_t batch_stride;
    int64_t time_stride;
} seq_view;

/* One direction of a recurrent layer, packed for the kernels. */
typedef struct packed_direction {
    packed_matrix w_ih;   /* (G*H) x I */
    packed_matrix w_hh;   /* (G*H) x Hr; for a GRU with linear_before_reset == 0: only the r,z rows */
    packed_matrix w_hn;   /* GRU with linear_before_reset == 0: the n rows, H x H */
    packed_matrix w_proj; /* LSTM projection, P x H */
    float *bias_x;        /* (G*H): every bias that can be added before the recurrent product */
    float *bias_hn;       /* GRU: b_hn (H), added after the recurrent product */
    float *peephole;      /* LSTM: (3, H) or NULL */
} packed_direction;

/* An activation as a layer applies it: its kind and, for the kinds that take one, its parameter. */
typedef struct activation {
    lstmrt_activation kind;
    float alpha;
} activation;

typedef struct layer {
    lstmrt_layer_kind kind;
    int32_t input_size;
    int32_t hidden_size;
    int32_t proj_size;    /* LSTM projection P, 0 = none */
    int32_t state_h_size; /* Hr: P if projected else H */
    int32_t output_size;
    int32_t gates; /* G: 4 LSTM, 3 GRU, 1 RNN */
    int32_t num_directions;
    int32_t num_embeddings;
    lstmrt_merge_mode merge_mode;
    activation act[3];
    float cell_clip;
    int32_t linear_before_reset;
    int32_t hold_masked_output;
    int32_t go_backwards;
    int32_t final_only;
    int32_t fused_default; /* LSTM/GRU with standard activations, no clip, no peephole: fused kernel */
    packed_direction dir[2];
    packed_matrix dense; /* dense: O x I */
    float *vec_a;        /* dense bias (O) | affine, norm scale (I) | prelu slope (I) | embedding table (V x E) */
    float *vec_b;        /* affine, norm shift (I) */
    float epsilon;       /* norm */
    lstmrt_norm_mode norm_mode;
    lstmrt_pool_mode pool_mode;
    int32_t add_from;     /* add: 0 = the model input, k = layer k - 1's output */
    int32_t add_offset;   /* add: first feature of that point added */
    int64_t kept_at;      /* read by a later add: its output's slot in workspace.kept (floats per row and step
                             before it), else -1 */
    int64_t state_floats; /* per sequence: layer_state_floats, set at model creation */
} layer;

/* Floats of state one sequence keeps for this layer (layout: lstmrt_stream_get_state); model creation stores it in
 * layer.state_floats, which the steps read. */
static inline int64_t layer_state_floats(const layer *L)
{
    if (L->kind <= LSTMRT_LAYER_RNN)
        return (int64_t)L->num_directions * (L->state_h_size + (L->kind == LSTMRT_LAYER_LSTM ? L->hidden_size : 0));
    if (L->kind == LSTMRT_LAYER_GLOBAL_POOL) /* value, the mean's low part, count */
        return (int64_t)L->input_size * (L->pool_mode == LSTMRT_POOL_AVERAGE ? 2 : 1) + 1;
    if (L->kind == LSTMRT_LAYER_ATTENTION_POOL) /* mean, its low part; per score: the largest, the weight sum */
        return 2 * (int64_t)L->output_size + 2 * (int64_t)L->input_size;
    return 0;
}

struct lstmrt_model {
    int32_t num_layers;
    layer *layers;
    int32_t input_size;
    int32_t output_size;
    int32_t max_width;      /* widest activation row between layers */
    int32_t max_gate_width; /* widest G*H */
    int32_t max_hidden;     /* widest H */
    int64_t kept_width;     /* features per row and step of the outputs later adds read (layer.kept_at) */
    int32_t bidirectional;
    int64_t state_size; /* floats of state per sequence */
    int64_t weight_bytes;
    const lstmrt_kernels *kernels;
    struct team_slot *predict_team; /* team.h: the threads predict keeps for sequences too few to slice */
};

/* Scratch for running `steps` steps of `batch` rows through the model. */
typedef struct workspace {
    float *gates;      /* batch * steps * max_gate_width */
    float *aux;        /* batch * max(3H, Hr, H) * 2: recurrent products, candidates */
    float *act_a;      /* batch * steps * max_width: ping */
    float *act_b;      /* batch * steps * max_width: pong */
    float *dirbuf;     /* batch * steps * max_width: backward direction before merging */
    float *kept;       /* batch * steps * kept_width: outputs later adds read, a slot per such layer */
    uint64_t *sweep;   /* steps run so far with this scratch: one-row products visit the weights backwards on odd
                          steps, reading first what the previous step read last (cache reuse; f32_gemv) */
    struct team *team; /* threads that split one-row steps (team.h), or NULL: run alone */
} workspace;

struct lstmrt_stream {
    const lstmrt_model_t *model;
    int32_t batch;
    int64_t chunk;      /* steps the workspace holds */
    float *state;       /* batch * state_size */
    workspace ws;       /* ws.team: threads sharing each step (lstmrt_stream_set_threads), owned by the stream */
    int64_t team_bytes; /* with a team: team_shared_bytes(model, batch) */
    void *block;        /* one allocation behind state and the workspace */
};

/* error.c */
lstmrt_status lstmrt__fail(lstmrt_status status, const char *fmt, ...);
/* The checks of lstmrt_model_create on a chain of descs, weights not read (model.c; also for model files). */
lstmrt_status lstmrt__validate_layers(const lstmrt_layer_desc *layers, int32_t num_layers);
void lstmrt__clear_error(void);

/* memory.c: 64-byte aligned blocks */
void *lstmrt__aligned_alloc(size_t bytes);
float *lstmrt__alloc_floats(int64_t n); /* NULL if n floats do not fit in size_t */
void lstmrt__aligned_free(void *p);

/* pack.c */
/* Floats a packed (rows x cols) matrix holds: whole panels of rows (kernels/kernels.h). */
static inline int64_t packed_floats(int64_t rows, int64_t cols)
{
    return (rows + LSTMRT_PANEL - 1) / LSTMRT_PANEL * LSTMRT_PANEL * cols;
}
lstmrt_status pack_matrix(packed_matrix *dst, const float *w, int64_t rows, int64_t cols);
void free_packed_matrix(packed_matrix *m);

/* norm.c: LSTMRT_LAYER_NORM over one step's features; y may be x. */
void norm_row(const layer *L, const float *x, float *y);

/* pool.c: LSTMRT_LAYER_GLOBAL_POOL over `steps` steps of `batch` rows; state: this layer's (batch, F) values, for a
 * mean its (batch, F) low parts, then its (batch) counts. active as forward_layers takes it. */
void pool_steps(const layer *L, int64_t batch, int64_t steps, seq_view x, const uint8_t *active, int64_t active_stride,
                float *state, seq_view y);
/* The first pool count in a whole state (batch rows) that is not a whole number in [0, 2^24], or attention weight
 * sum not in [0, 2^24], as an index into state, or -1 when every one is fine. */
int64_t pool_bad_state(const lstmrt_model_t *m, int64_t batch, const float *state);

/* attention.c: LSTMRT_LAYER_ATTENTION_POOL over `steps` steps of `batch` rows: scores e (the layer's input), values
 * v (the slice of an earlier point); state: this layer's (batch, F) means, (batch, F) low parts, (batch, C) largest
 * scores, (batch, C) weight sums, C the scores per step. active as forward_layers takes it. */
void attention_steps(const layer *L, int64_t batch, int64_t steps, seq_view e, seq_view v, const uint8_t *active,
                     int64_t active_stride, float *state, seq_view y);

/* activations.c: in-place element-wise (or row-wise for softmax) activation of rows x n. */
void apply_activation(const lstmrt_kernels *k, activation a, float *v, int64_t rows, int64_t n, int64_t row_stride);
/* Whether alpha is a valid parameter of kind (0 for the activations without one). */
int activation_alpha_ok(lstmrt_activation kind, float alpha);

/* workspace.c */
size_t workspace_floats(const lstmrt_model_t *m, int64_t batch, int64_t steps);
int scratch_fits(const lstmrt_model_t *m, int64_t batch, int64_t steps, double extra_bytes);
void workspace_bind(workspace *ws, const lstmrt_model_t *m, int64_t batch, int64_t steps, float *base);

/* forward.c: run all layers over `steps` steps. x, y batch-major views. state may be updated in place.
 * active (batch x steps, batch-major) or NULL. whole_sequence: these are all the steps (predict), so final_only
 * layers apply; lengths (batch) or NULL then says where each sequence ends (its last output is at length - 1). */
void forward_layers(const lstmrt_model_t *m, const workspace *ws, int64_t batch, int64_t steps, seq_view x,
                    const uint8_t *active, int64_t active_stride, float *state, seq_view y, int whole_sequence,
                    const int32_t *lengths);

/* team_policy.c. Weight bytes a step of `batch` rows reads in the layers that would share it with a team (0: none
 * would); whether the rows of this layer's batch are worth sharing (batch >= 4); whether the one-row steps of this
 * direction are (fused, big enough; a single step needs more); whether a call of `steps` steps that reads
 * shared_bytes per step should take a team whose workers are awake or not (waking them costs ~100 µs). */
int64_t team_shared_bytes(const lstmrt_model_t *m, int64_t batch);
int team_rows_gain(const layer *L, int64_t batch);
int team_splits_steps(const layer *L, const packed_direction *d, int64_t steps);
int team_worth(int64_t shared_bytes, int64_t steps, int awake);

/* one_row.c. The steps of a fused LSTM (G = 4, c its cell state) or GRU (G = 3, c NULL) direction at batch 1, H a
 * multiple of PANEL: the cell inside the product. Shared by ws->team when it has one and the layer is big enough to
 * gain. Arguments as the directions below. */
void fused_one_row(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws,
                   int64_t steps, int reverse, seq_view x, const uint8_t *active, int64_t active_stride, float *h,
                   float *c, seq_view y);

/* lstm.c, gru.c, rnn.c: one direction of a recurrent layer over a sequence (forward or reverse in time).
 * h, c: state (batch x Hr, batch x H); y: where outputs go (Hr features). */
void lstm_direction(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws,
                    int64_t batch, int64_t steps, int reverse, seq_view x, const uint8_t *active, int64_t active_stride,
                    float *h, float *c, seq_view y);
void gru_direction(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws,
                   int64_t batch, int64_t steps, int reverse, seq_view x, const uint8_t *active, int64_t active_stride,
                   float *h, seq_view y);
void rnn_direction(const lstmrt_kernels *k, const layer *L, const packed_direction *d, const workspace *ws,
                   int64_t batch, int64_t steps, int reverse, seq_view x, const uint8_t *active, int64_t active_stride,
                   float *h, seq_view y);

/* Input projection for every step: gates(b, t) = x(b, t) W_ih^T + bias_x, gates batch-major and dense. */
void project_inputs(const lstmrt_kernels *k, const packed_matrix *w, const float *bias, int64_t batch, int64_t steps,
                    seq_view x, float *gates);

/* dispatch.c */
const lstmrt_kernels *lstmrt__kernels(void);
/* Flush-to-zero/denormals-are-zero around the kernels of one API call: saved = enter(); ...; leave(saved). */
unsigned lstmrt__fp_enter(void);
void lstmrt__fp_leave(unsigned saved);

#endif
