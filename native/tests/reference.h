/* Reference: float64, one sequence at a time, straight from the equations (docs/math.md, lstmrt.h). */
#ifndef LSTMRT_TESTS_REFERENCE_H
#define LSTMRT_TESTS_REFERENCE_H

#include "spec.h"

/* The model over (batch, steps): y (batch, steps, O) in double. lengths and mask may be NULL. */
void ref_predict(const spec *s, const float *x, int batch, int steps, const int32_t *lengths, const uint8_t *mask,
                 double *y);
double max_err_ref(const float *got, const double *want, int64_t n); /* NaN counts as infinitely wrong */

#endif
