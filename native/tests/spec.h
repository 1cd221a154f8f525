/* Model specs: layer descriptors with random weights (in the arena), the catalogue of every layer kind and
 * option (make_spec), inputs for them, and the model they make. */
#ifndef LSTMRT_TESTS_SPEC_H
#define LSTMRT_TESTS_SPEC_H

#include "harness.h"

typedef struct spec {
    char name[80];
    int n;
    lstmrt_layer_desc layers[MAX_LAYERS];
    uint8_t peephole[MAX_LAYERS];
    uint8_t no_bias[MAX_LAYERS];
    double scale; /* weight range: scale / sqrt(fan-in) */
} spec;

enum { NUM_SPECS = 37 }; /* make_spec's catalogue: 0 .. NUM_SPECS - 1 */

enum { PB = 3, PT = 100 }; /* predict shape: batch 3 gives 85-step blocks, so 100 steps cross a block boundary */

int gate_count(lstmrt_layer_kind k);
int is_recurrent(lstmrt_layer_kind k);
int state_h(const lstmrt_layer_desc *d); /* the recurrent state h: proj_size if projected */
int layer_out(const lstmrt_layer_desc *d);
/* The pieces of state a layer keeps per sequence, in lstmrt_stream_get_state's order: their sizes, and how many. */
int state_parts(const lstmrt_layer_desc *d, int sizes[4]);

lstmrt_layer_desc *push(spec *s, lstmrt_layer_kind kind, int in, int hidden);
lstmrt_layer_desc *set_act(lstmrt_layer_desc *d, int slot, lstmrt_activation a, float alpha); /* returns d */
void add_weights(spec *s);
void blank_spec(spec *s, uint64_t seed);
void start_spec(spec *s, uint64_t seed, const char *name);
void make_spec(int which, spec *s);

int spec_is_tokens(const spec *s);
int spec_in(const spec *s);
int spec_out(const spec *s);
int point_width(const spec *s, int point); /* an add's add_from: 0 the model input, k layer k - 1's output */
float *make_inputs(const spec *s, int64_t batch, int64_t steps);
lstmrt_model_t *create_model(const spec *s); /* a failure is a failed check, and NULL */
/* make_spec, its name as the check context, create_model: how a case over the specs takes each one. */
lstmrt_model_t *open_spec(int which, spec *s);

#endif
