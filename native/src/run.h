/* Shared by predict.c and stream.c. */
#ifndef LSTMRT_RUN_H
#define LSTMRT_RUN_H

#include "internal.h"

/* Steps per block for causal models: long sequences run block by block (state carried), so scratch stays
 * bounded; a block is still long enough for the input projection to be an efficient GEMM. */
int64_t block_steps(int64_t batch);

/* forward_layers over `steps` steps in blocks of at most `block` steps (whole_sequence: one block). */
void run_blocks(const lstmrt_model_t *m, const workspace *ws, int64_t block, int64_t batch, int64_t steps, seq_view x,
                const uint8_t *active, int64_t active_stride, float *state, seq_view y, int whole_sequence,
                const int32_t *lengths);

/* Checks embedding token ids (the only input values that can be invalid) before anything runs: x holds `batch`
 * rows of `steps` ids; the message names the first bad id by row and step. */
lstmrt_status check_tokens(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps);

/* predict's argument checks (sizes, lengths, token ids), also run by the threaded predict before it splits. */
lstmrt_status predict_check_args(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps,
                                 const int32_t *lengths, float *y);

/* lstmrt_model_predict with its steps shared by a team (team.h; NULL: alone): the hidden units of one row, or
 * the rows of a batch. */
lstmrt_status predict_in_team(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps,
                              const int32_t *lengths, const uint8_t *mask, float *y, struct team *team);

#endif
