/*
 * lstmrt — a CPU inference runtime for recurrent networks (LSTM, GRU, simple RNN, dense heads).
 *
 * C99, no dependencies. The equations, the canonical weight layout and the gate order are those of
 * docs/math.md (PyTorch's layout: weight_ih (G*H, I), weight_hh (G*H, H or P), LSTM gates i,f,g,o,
 * GRU gates r,z,n).
 *
 * Objects:
 *   lstmrt_model_t   immutable after creation (weights packed once); shareable between threads.
 *   lstmrt_stream_t  recurrent state + scratch for N independent sequences stepped together; one thread at
 *                    a time. All memory is allocated at creation: a step never allocates.
 * Errors: every function that can fail returns an lstmrt_status; lstmrt_last_error() gives a message for the
 * calling thread. Nothing aborts or prints. A failed step/run leaves the stream's state untouched.
 */
#ifndef LSTMRT_H
#define LSTMRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSTMRT_VERSION_MAJOR 0
#define LSTMRT_VERSION_MINOR 1
#define LSTMRT_VERSION_PATCH 0

/* Limits: sequences stepped together in one stream, threads sharing a stream or a predict call. */
#define LSTMRT_MAX_STREAM_BATCH (1 << 24)
#define LSTMRT_MAX_THREADS 64

typedef enum lstmrt_status {
    LSTMRT_STATUS_OK = 0,
    LSTMRT_STATUS_INVALID_ARGUMENT = 1, /* a size, pointer or option is wrong */
    LSTMRT_STATUS_OUT_OF_MEMORY = 2,
    LSTMRT_STATUS_UNSUPPORTED = 3, /* valid request this object cannot do (e.g. stepping a bidirectional model) */
} lstmrt_status;

/* Element-wise activations. Definitions in docs/math.md. */
typedef enum lstmrt_activation {
    LSTMRT_ACT_SIGMOID = 0,
    LSTMRT_ACT_TANH,
    LSTMRT_ACT_RELU,
    LSTMRT_ACT_LINEAR,
    LSTMRT_ACT_HARD_SIGMOID,    /* Keras 2 / ONNX: clip(0.2x + 0.5, 0, 1) */
    LSTMRT_ACT_HARD_SIGMOID_V3, /* Keras 3: relu6(x + 3) / 6 */
    LSTMRT_ACT_ELU,             /* alpha = 1 */
    LSTMRT_ACT_SOFTSIGN,
    LSTMRT_ACT_SOFTPLUS,
    LSTMRT_ACT_SELU,
    LSTMRT_ACT_EXPONENTIAL,
    LSTMRT_ACT_RELU6,
    LSTMRT_ACT_SILU,      /* a.k.a. swish: x * sigmoid(x) */
    LSTMRT_ACT_GELU,      /* exact (erf) form */
    LSTMRT_ACT_GELU_TANH, /* tanh approximation */
    LSTMRT_ACT_HARD_SILU, /* x * relu6(x + 3) / 6 */
    LSTMRT_ACT_MISH,
    LSTMRT_ACT_SOFTMAX,     /* over the feature axis; Dense/Activation layers only */
    LSTMRT_ACT_LOG_SOFTMAX, /* over the feature axis; Dense/Activation layers only */
    /* Activations with a parameter read it from activation_alpha (the value in brackets is Keras's default). */
    LSTMRT_ACT_LEAKY_RELU,     /* x >= 0 ? x : alpha x (negative slope alpha, 0.2) */
    LSTMRT_ACT_CELU,           /* x > 0 ? x : alpha (exp(x / alpha) - 1) (alpha != 0, 1) */
    LSTMRT_ACT_HARD_SHRINK,    /* |x| > alpha ? x : 0 (alpha >= 0, 0.5) */
    LSTMRT_ACT_SOFT_SHRINK,    /* x - alpha, x + alpha or 0, as |x| > alpha (alpha >= 0, 0.5) */
    LSTMRT_ACT_SQUAREPLUS,     /* (x + sqrt(x^2 + alpha)) / 2 (alpha >= 0, 4) */
    LSTMRT_ACT_HARD_TANH,      /* clip(x, -1, 1) */
    LSTMRT_ACT_TANH_SHRINK,    /* x - tanh(x) */
    LSTMRT_ACT_LOG_SIGMOID,    /* log(sigmoid(x)) */
    LSTMRT_ACT_SPARSE_PLUS,    /* 0, (x + 1)^2 / 4, x (Keras) */
    LSTMRT_ACT_SPARSE_SIGMOID, /* clip((x + 1) / 2, 0, 1) (Keras) */
    LSTMRT_ACT_CLIP_MIN,       /* x < alpha ? alpha : x, NaN kept (torch clamp_min; 0) */
    LSTMRT_ACT_CLIP_MAX,       /* x > alpha ? alpha : x, NaN kept (torch clamp_max; 0) */
    LSTMRT_ACT_COUNT
} lstmrt_activation;

typedef enum lstmrt_layer_kind {
    LSTMRT_LAYER_LSTM = 0,
    LSTMRT_LAYER_GRU,
    LSTMRT_LAYER_RNN,         /* Elman: h = act(W x + b_ih + U h + b_hh) */
    LSTMRT_LAYER_DENSE,       /* y = act(W x + b), per time step */
    LSTMRT_LAYER_ACTIVATION,  /* y = act(x) */
    LSTMRT_LAYER_AFFINE,      /* y = x * scale + shift, per feature (normalisation) */
    LSTMRT_LAYER_EMBEDDING,   /* input: one token id per step (as float); y = table[id] */
    LSTMRT_LAYER_NORM,        /* over the features of each step: y = (x - mean) / sqrt(var + epsilon) * scale + shift,
                                 or a variant of norm_mode */
    LSTMRT_LAYER_GLOBAL_POOL, /* over the steps so far: y(t) = mean or max of x(0..t) (pool_mode); the running value
                                 is state, so a stream's step returns the pool of its sequence so far */
    LSTMRT_LAYER_ADD,         /* a residual / skip connection: y = x + s[add_offset, add_offset + input_size) of the
                                 same step, s an earlier point of the chain (add_from) */
    LSTMRT_LAYER_PRELU,       /* y = x >= 0 ? x : slope * x, per feature (a learned leaky ReLU) */
    LSTMRT_LAYER_ATTENTION_POOL, /* softmax attention over the steps so far: y(t) = sum of softmax(e)(tau) v(tau),
                                    tau <= t, with scores e the layer's input (input_size 1, shared by the
                                    features, or hidden_size, one per feature) and values v the slice
                                    [add_offset, add_offset + hidden_size) of an earlier point of the chain
                                    (add_from, as an add's); the running softmax is state, as a global pool's */
    LSTMRT_LAYER_KIND_COUNT
} lstmrt_layer_kind;

/* What a LSTMRT_LAYER_NORM divides by, and whether it centres (statistics over the features of one step). */
typedef enum lstmrt_norm_mode {
    LSTMRT_NORM_LAYER = 0,      /* (x - mean) / sqrt(var + eps) * scale + shift (torch LayerNorm, Keras) */
    LSTMRT_NORM_RMS,            /* x / sqrt(mean(x^2) + eps) * scale (torch RMSNorm); shift must be NULL */
    LSTMRT_NORM_VARIANCE_SCALE, /* x / sqrt(var + eps) * scale (Keras 3 LayerNormalization(rms_scaling=True));
                                   shift must be NULL */
    LSTMRT_NORM_MODE_COUNT
} lstmrt_norm_mode;

/* What a LSTMRT_LAYER_GLOBAL_POOL keeps of the steps so far (Keras GlobalAveragePooling1D / GlobalMaxPooling1D, torch
 * mean / max over the time axis). */
typedef enum lstmrt_pool_mode {
    LSTMRT_POOL_AVERAGE = 0, /* mean of the active steps (a masked step is not counted, as Keras does); before any
                                active step: NaN, Keras's 0 / 0 */
    LSTMRT_POOL_MAX,         /* max of every step, masked or not (Keras's GlobalMaxPooling1D ignores the mask);
                                NaN once a NaN is seen */
    LSTMRT_POOL_MODE_COUNT
} lstmrt_pool_mode;

/* How the two directions of a bidirectional layer are merged (Keras names). */
typedef enum lstmrt_merge_mode {
    LSTMRT_MERGE_CONCAT = 0, /* [forward, backward] */
    LSTMRT_MERGE_SUM,
    LSTMRT_MERGE_MUL,
    LSTMRT_MERGE_AVE,
} lstmrt_merge_mode;

/* Weights of one direction of a layer, canonical layout, row-major, float32. Copied at model creation:
 * the caller may free them afterwards. NULL biases mean zero. */
typedef struct lstmrt_direction_weights {
    const float *weight_ih;       /* recurrent: (G*H, I); dense: (O, I); affine, norm: scale (I), NULL = ones;
                                     embedding: (V, E); prelu: slope (I), required */
    const float *weight_hh;       /* recurrent: (G*H, Hr) with Hr = P if projected, else H */
    const float *bias_ih;         /* recurrent: (G*H); dense: (O); affine, norm: shift (I) */
    const float *bias_hh;         /* recurrent: (G*H) */
    const float *weight_peephole; /* LSTM only, optional: (3, H) for gates i, f, o */
    const float *weight_proj;     /* LSTM only, when proj_size > 0: (P, H) */
} lstmrt_direction_weights;

typedef struct lstmrt_layer_desc {
    lstmrt_layer_kind kind;
    int32_t input_size;     /* features in; 1 for an embedding (the token id) */
    int32_t hidden_size;    /* H for recurrent layers; features out for dense/embedding */
    int32_t proj_size;      /* LSTM projection P (0 = none) */
    int32_t num_embeddings; /* embedding only: V */
    int32_t num_directions; /* 1 for every layer (dense, activation, ... too: 0 is refused); 2 for a
                               bidirectional recurrent layer */
    lstmrt_merge_mode merge_mode;
    /* LSTM: [gate f, candidate g, output h]; GRU: [gate f, candidate g]; RNN, dense, activation: [0].
       Every slot used must be set: 0 is LSTMRT_ACT_SIGMOID, so a zeroed dense layer is a sigmoid one. */
    lstmrt_activation activations[3];
    float cell_clip;                     /* LSTM: > 0 clips the gate pre-activations to [-clip, clip] (ONNX) */
    int32_t linear_before_reset;         /* GRU: 1 = r * (W_hn h + b_hn) (PyTorch, Keras reset_after=True);
                                            0 = W_hn (r * h) + b_hn (Keras reset_after=False) */
    int32_t hold_masked_output;          /* recurrent: at a masked step, repeat the previous output instead of 0 */
    int32_t go_backwards;                /* recurrent, one direction: process the sequence last step first (Keras);
                                            outputs stay aligned with their input step. Not streamable. */
    int32_t final_only;                  /* recurrent, predict only: every step outputs the layer's final output,
                                            Keras return_sequences=False: each direction's output at the last step
                                            it ran within the sequence's length (0 there if masked and not
                                            hold_masked_output), as Keras's last_output. */
    lstmrt_direction_weights weights[2]; /* [forward, backward] */
    float epsilon;                       /* norm: added to the statistic before the square root; finite, >= 0 */
    lstmrt_norm_mode norm_mode;          /* norm only */
    lstmrt_pool_mode pool_mode;          /* global pool only */
    int32_t add_from;   /* add, attention pool: 0 = the model's input, k >= 1 = the output of layer k - 1 (k <= this
                           layer) */
    int32_t add_offset; /* add, attention pool: first feature of that point read; the slice must fit in its width */
    float activation_alpha[3]; /* the parameter of activations[k] when it takes one (leaky_relu ... squareplus);
                                  0 in every other slot */
} lstmrt_layer_desc;

typedef struct lstmrt_model lstmrt_model_t;
typedef struct lstmrt_stream lstmrt_stream_t;

/* Message for the last error on this thread ("" if none). Valid until the thread's next lstmrt call. */
const char *lstmrt_last_error(void);
const char *lstmrt_status_string(lstmrt_status status);

/* Validates the chain of layers (each layer's input_size equals the previous layer's output) and packs the
 * weights. *out receives the model, owned by the caller (lstmrt_model_free). */
lstmrt_status lstmrt_model_create(const lstmrt_layer_desc *layers, int32_t num_layers, lstmrt_model_t **out);
void lstmrt_model_free(lstmrt_model_t *model);
int32_t lstmrt_model_input_size(const lstmrt_model_t *model);
int32_t lstmrt_model_output_size(const lstmrt_model_t *model);
/* 1 when some layer is bidirectional or goes backwards: such a model can predict but not stream. */
int32_t lstmrt_model_is_bidirectional(const lstmrt_model_t *model);
/* Number of floats of recurrent state per sequence (layout: lstmrt_stream_get_state). */
int64_t lstmrt_model_state_size(const lstmrt_model_t *model);
/* Bytes of packed weights held by the model. */
int64_t lstmrt_model_weight_bytes(const lstmrt_model_t *model);

/* Floats that weight array `slot` (0 weight_ih, 1 weight_hh, 2 bias_ih, 3 bias_hh, 4 weight_peephole, 5 weight_proj,
 * the order of lstmrt_direction_weights) of direction `direction` holds for this desc when given; 0 for an array the
 * layer does not read, -1 when the kind or a size it depends on is out of range. */
int64_t lstmrt_layer_weight_floats(const lstmrt_layer_desc *layer, int32_t direction, int32_t slot);

/* Model files (.lstmrt): a model's layer descs and float32 weights in one little-endian file, written by the Python
 * package (Model.save, `lstmrt export`); layout in docs/model-file.md. Every offset, count and size is checked and
 * the descs pass lstmrt_model_create's validation before a weight is read: a damaged file fails with
 * INVALID_ARGUMENT and a message (a file of a newer format version: UNSUPPORTED). */
typedef struct lstmrt_file_info {
    int32_t num_layers;
    const char *options;  /* the Python package's Model options, UTF-8 JSON (not NUL-terminated); C needs none */
    size_t options_bytes; /* 0 when the file has none */
} lstmrt_file_info;

/* A model from a file's bytes (copied: data may be freed afterwards; any alignment). */
lstmrt_status lstmrt_model_load(const void *data, size_t size, lstmrt_model_t **out);
/* A model from a file on disk (read whole, then as lstmrt_model_load). */
lstmrt_status lstmrt_model_load_file(const char *path, lstmrt_model_t **out);
/* The descs of a file without creating a model: their weight pointers point into `data`, which must be 4-byte
 * aligned and outlive them. With layers NULL only the header is checked (not the checksum) and info->num_layers set;
 * then call again with capacity >= num_layers. */
lstmrt_status lstmrt_file_read(const void *data, size_t size, lstmrt_layer_desc *layers, int32_t capacity,
                               lstmrt_file_info *info);

/* Whole sequences from a zero state. x: (batch, steps, input_size); y: (batch, steps, output_size).
 * lengths (batch) optional: steps t >= lengths[b] are padding (state carried, final outputs zero; the
 * backward direction starts at each sequence's own last step). mask (batch, steps) optional: 0 marks a
 * step to skip (Keras masking). Allocates its own scratch; thread-safe on a shared model. */
lstmrt_status lstmrt_model_predict(const lstmrt_model_t *model, const float *x, int64_t batch, int64_t steps,
                                   const int32_t *lengths, const uint8_t *mask, float *y);

/* predict with the batch rows split over up to num_threads threads, at least 8 rows each (fewer threads when
 * the batch is small; POSIX builds: elsewhere the calling thread does it all). Results equal lstmrt_model_predict's up
 * to float rounding: a slice of rows may block its steps differently, which can change a sum's order.
 * A single sequence (batch 1) of at least 64 steps instead shares every step of its LSTM/GRU layers of at least
 * 48 KB of recurrent weights between num_threads threads, each computing a slice of the hidden units: then the
 * result is bit-identical to lstmrt_model_predict's. */
lstmrt_status lstmrt_model_predict_threads(const lstmrt_model_t *model, const float *x, int64_t batch, int64_t steps,
                                           const int32_t *lengths, const uint8_t *mask, float *y, int32_t num_threads);

/* A stream for `batch` independent sequences, zero state. Fails with UNSUPPORTED for bidirectional (or
 * go_backwards) models. final_only is ignored: a step's output is the one for the sequence ending there.
 * The model must outlive the stream. */
lstmrt_status lstmrt_stream_create(const lstmrt_model_t *model, int32_t batch, lstmrt_stream_t **out);
void lstmrt_stream_free(lstmrt_stream_t *stream);
int32_t lstmrt_stream_batch(const lstmrt_stream_t *stream);

/* Share the steps of a stream between `threads` threads (1..LSTMRT_MAX_THREADS; 1: the caller alone, the default), as
 * lstmrt_model_predict_threads does for few rows: bit-identical results. Batch 1 shares the hidden units of LSTM/GRU
 * layers (a step from 128 KB of W_ih + W_hh, a run from 48 KB of W_hh), batch 4 or more the rows (from 64 KB of
 * weights read per step). Hidden units are split in whole blocks of the fused kernels: H a multiple of 16, no
 * projection, peephole or cell clip, default activations, GRU reset-after. Without such a layer the stream stays
 * single-threaded and this still succeeds (see lstmrt_stream_threads). The workers poll for ~50 µs after a step, so a
 * stream stepped in a loop never waits for one to wake, then sleep. Not for a stream stepped from several threads at
 * once. */
lstmrt_status lstmrt_stream_set_threads(lstmrt_stream_t *stream, int32_t threads);
/* Threads that share each step: 1, or the count set_threads started. */
int32_t lstmrt_stream_threads(const lstmrt_stream_t *stream);

/* One step. x: (batch, input_size); y: (batch, output_size). active (batch) optional: 0 skips that row in the
 * recurrent layers (state carried; such a layer outputs 0, or its previous output with hold_masked_output) while
 * the layers after them still apply, as with Keras masking: a Dense head then outputs act(bias). No allocation. */
lstmrt_status lstmrt_stream_step(lstmrt_stream_t *stream, const float *x, const uint8_t *active, float *y);

/* `steps` steps, state carried. x: (batch, steps, input_size); y: (batch, steps, output_size). */
lstmrt_status lstmrt_stream_run(lstmrt_stream_t *stream, const float *x, int64_t steps, float *y);

/* Back to the zero state. */
void lstmrt_stream_reset(lstmrt_stream_t *stream);

/* State as batch * lstmrt_model_state_size floats, layer by layer: for each recurrent layer, each direction: h
 * (batch, Hr), then for an LSTM c (batch, H); for a global pool, the pooled value (batch, F), for an average the
 * part of the mean below float32 precision (batch, F) (the mean is their sum), then the steps pooled (batch): a whole
 * number in [0, 2^24] (it stops at 2^24, from where the mean moves as an average over the last ~2^24 steps). set_state
 * copies in after checking those counts; the stream is unchanged when it fails. */
lstmrt_status lstmrt_stream_get_state(const lstmrt_stream_t *stream, float *state);
lstmrt_status lstmrt_stream_set_state(lstmrt_stream_t *stream, const float *state);

/* An independent stream with the same model, a copy of the state and the same threads. */
lstmrt_status lstmrt_stream_copy(const lstmrt_stream_t *stream, lstmrt_stream_t **out);

/* Kernel tier in use ("scalar", "avx2", "avx512", "neon") and the CPU features seen (space-separated). */
const char *lstmrt_kernel_tier(void);
const char *lstmrt_cpu_features(void);

/* Benchmark probes: the floor of a one-row step on this machine (probe.c). A probe holds a buffer of
 * `stream_bytes` (rounded down to 64) and an L1-resident GEMM tile; the caller times the passes. stream: reads
 * the whole buffer once per pass; compute: one GEMM of lstmrt_probe_compute_flops FLOPs per pass. Both use the
 * current kernel tier. A probe is not thread-safe (one per thread). */
typedef struct lstmrt_probe lstmrt_probe_t;
lstmrt_status lstmrt_probe_create(int64_t stream_bytes, lstmrt_probe_t **out);
void lstmrt_probe_free(lstmrt_probe_t *probe);
int64_t lstmrt_probe_stream_bytes(const lstmrt_probe_t *probe);
int64_t lstmrt_probe_compute_flops(const lstmrt_probe_t *probe);
void lstmrt_probe_stream(lstmrt_probe_t *probe, int64_t passes);
void lstmrt_probe_compute(lstmrt_probe_t *probe, int64_t passes);

#ifdef __cplusplus
}
#endif

#endif /* LSTMRT_H */
