/* predict with the batch rows split over threads. Rows are independent sequences, so each thread runs the
 * ordinary predict on its slice (its own scratch, same kernels). The result matches the serial one up to
 * rounding: predict blocks steps by batch size, and a different blocking can change a GEMM's summation order.
 * Fewer than 16 rows instead share each step with a team (team.h): the hidden units of a single sequence's
 * steps, or the rows of a small batch; bit-identical. */
#include <stdlib.h>

#include "run.h"
#include "team.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define LSTMRT_HAVE_PTHREADS 1
#endif

/* Below this many rows per thread a thread costs more than it saves. */
#define MIN_ROWS_PER_THREAD 8
#define MAX_THREADS LSTMRT_MAX_THREADS
#if LSTMRT_HAVE_PTHREADS
/* Too few rows for slices: a team of n threads shares the hidden units of each step (batch 1) or the rows. The
 * model keeps one team for this; the first call starts it (60-80 µs). A call uses it when its workers are awake
 * (calls in quick succession) or when it is long enough to repay waking them (team_worth); a call that finds the
 * kept team in use by another thread starts its own only if it is that long. shared: team_shared_bytes. */
static lstmrt_status predict_few_rows(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps,
                                      const int32_t *lengths, const uint8_t *mask, float *y, int n, int64_t shared)
{
    int kept;
    team *t = team_slot_acquire(m->predict_team, n, team_worth(shared, steps, 0), &kept);
    const int use = t && team_worth(shared, steps, team_check_in(t));
    const lstmrt_status s = predict_in_team(m, x, batch, steps, lengths, mask, y, use ? t : NULL);
    team_check_out(t);
    team_slot_release(m->predict_team, t, kept);
    return s;
}

typedef struct slice {
    const lstmrt_model_t *model;
    const float *x;
    int64_t batch, steps;
    const int32_t *lengths;
    const uint8_t *mask;
    float *y;
    lstmrt_status status;
} slice;

static void *run_slice(void *arg)
{
    slice *s = arg;
    s->status = lstmrt_model_predict(s->model, s->x, s->batch, s->steps, s->lengths, s->mask, s->y);
    return NULL;
}
#endif

lstmrt_status lstmrt_model_predict_threads(const lstmrt_model_t *m, const float *x, int64_t batch, int64_t steps,
                                           const int32_t *lengths, const uint8_t *mask, float *y, int32_t num_threads)
{
    int64_t n = num_threads < 1 ? 1 : (num_threads > MAX_THREADS ? MAX_THREADS : num_threads);
    if (m && batch / MIN_ROWS_PER_THREAD < n)
        n = batch / MIN_ROWS_PER_THREAD > 0 ? batch / MIN_ROWS_PER_THREAD : 1;
#if LSTMRT_HAVE_PTHREADS
    const int64_t shared = n == 1 && num_threads > 1 && m && x && y && batch >= 1 ? team_shared_bytes(m, batch) : 0;
    if (shared > 0 && steps > 0)
        return predict_few_rows(m, x, batch, steps, lengths, mask, y,
                                (int)(num_threads < MAX_THREADS ? num_threads : MAX_THREADS), shared);
    if (n > 1 && m && x && y && steps > 0) {
        /* Validate here, where the caller reads the message: workers can then only run out of memory. */
        lstmrt__clear_error();
        const lstmrt_status st = predict_check_args(m, x, batch, steps, lengths, y);
        if (st != LSTMRT_STATUS_OK)
            return st;
        slice parts[MAX_THREADS];
        pthread_t ids[MAX_THREADS];
        int started[MAX_THREADS] = {0};
        const int64_t I = m->input_size, O = m->output_size;
        for (int64_t k = 0, b0 = 0; k < n; k++) {
            const int64_t rows = batch / n + (k < batch % n);
            parts[k] = (slice){m,
                               x + b0 * steps * I,
                               rows,
                               steps,
                               lengths ? lengths + b0 : NULL,
                               mask ? mask + b0 * steps : NULL,
                               y + b0 * steps * O,
                               LSTMRT_STATUS_OK};
            b0 += rows;
        }
        for (int64_t k = 1; k < n; k++) /* slice 0 runs on the calling thread */
            started[k] = pthread_create(&ids[k], NULL, run_slice, &parts[k]) == 0;
        run_slice(&parts[0]);
        for (int64_t k = 1; k < n; k++) {
            if (started[k])
                pthread_join(ids[k], NULL);
            else
                run_slice(&parts[k]); /* no thread to be had: do it here */
        }
        for (int64_t k = 0; k < n; k++)
            if (parts[k].status != LSTMRT_STATUS_OK)
                return lstmrt__fail(parts[k].status, "predict of slice %lld of %lld (%lld rows) failed: %s",
                                    (long long)k, (long long)n, (long long)parts[k].batch,
                                    lstmrt_status_string(parts[k].status));
        lstmrt__clear_error();
        return LSTMRT_STATUS_OK;
    }
#endif
    return lstmrt_model_predict(m, x, batch, steps, lengths, mask, y);
}
