/* 64-byte aligned allocation without C11 aligned_alloc (not on every embedded libc): over-allocate and keep
 * the original pointer just below the aligned block. */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

#define ALIGNMENT 64

void *lstmrt__aligned_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - ALIGNMENT - sizeof(void *))
        return NULL;
    void *raw = malloc(bytes + ALIGNMENT + sizeof(void *));
    if (!raw)
        return NULL;
    uintptr_t start = (uintptr_t)raw + sizeof(void *);
    uintptr_t aligned = (start + ALIGNMENT - 1) & ~(uintptr_t)(ALIGNMENT - 1);
    ((void **)aligned)[-1] = raw;
    return (void *)aligned;
}

/* A count of floats is an int64 product of sizes; on a 32-bit target its byte count can exceed size_t, and cast
 * down it would wrap to a small block that the caller then overruns. Such a count fails like malloc. */
float *lstmrt__alloc_floats(int64_t n)
{
    if (n < 0 || (uint64_t)n > (SIZE_MAX - ALIGNMENT - sizeof(void *)) / sizeof(float))
        return NULL;
    return lstmrt__aligned_alloc((size_t)n * sizeof(float));
}

void lstmrt__aligned_free(void *p)
{
    if (p)
        free(((void **)p)[-1]);
}
