/*
 * The harness of test_lstmrt, no framework: a test case is a function; CHECK records a failure with its line and
 * the current context and goes on, so one run reports every broken invariant. Also what every case uses: the
 * tolerances, a scratch arena, fixed-seed random numbers and float comparisons.
 */
#ifndef LSTMRT_TESTS_HARNESS_H
#define LSTMRT_TESTS_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lstmrt.h"

/* float32 runtime vs float64 reference, sizes up to 33 and 300 steps: the engine issue's contract. */
#define REF_TOL 1e-5
/* Same computation, different batch / block shapes (stream vs predict): kernels may take other tails or
 * contract differently, so allow a few ulps of O(1) values instead of bitwise equality. */
#define SAME_TOL 1e-6
/* Layers in one model spec (spec.h). */
#define MAX_LAYERS 10

/* Counters and the case being run (harness.c). */
extern int cases_passed, cases_failed, case_failures;
extern long checks_run;
extern const char *case_name;
extern char context[160]; /* which model / variant the current checks are about */

int check_(int ok, int line, const char *expr);
#define CHECK(cond) check_((cond) ? 1 : 0, __LINE__, #cond)

void run_case(void (*fn)(void), const char *name);
#define RUN(fn) run_case(fn, #fn)

/* Every failing call: the expected status and a message for this thread. */
int expect_status(lstmrt_status got, lstmrt_status want, int line, const char *what);
#define EXPECT_FAIL(call, want) expect_status((call), (want), __LINE__, #call)
#define INVALID LSTMRT_STATUS_INVALID_ARGUMENT

/* Scratch owned by the current test: weights, inputs, outputs, zeroed. Freed between models by arena_reset. */
void *arena_alloc(size_t bytes);
void arena_reset(void);
float *new_floats(int64_t n);
double *new_doubles(int64_t n);

/* xorshift64*: fixed seeds, identical on every platform. */
void rng_seed(uint64_t s);
double rng_unit(void);                         /* [0, 1) */
float *random_floats(int64_t n, double scale); /* uniform [-scale, scale], in the arena */

double max_abs_diff(const float *a, const float *b, int64_t n); /* NaN counts as infinitely wrong */
double max_rel_diff(const float *a, const float *b, int64_t n); /* relative to |b| where it is above 1 */
int same_bits(const float *a, const float *b, int64_t n);

#endif
