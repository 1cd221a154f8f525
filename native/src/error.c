/* Per-thread error message: the status says what kind of failure, the message says which argument and why. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

#if defined(_MSC_VER)
#define LSTMRT_THREAD_LOCAL __declspec(thread)
#else
#define LSTMRT_THREAD_LOCAL __thread
#endif

static LSTMRT_THREAD_LOCAL char last_error[512];

lstmrt_status lstmrt__fail(lstmrt_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return status;
}

void lstmrt__clear_error(void)
{
    last_error[0] = '\0';
}

const char *lstmrt_last_error(void)
{
    return last_error;
}

const char *lstmrt_status_string(lstmrt_status status)
{
    switch (status) {
    case LSTMRT_STATUS_OK: return "ok";
    case LSTMRT_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case LSTMRT_STATUS_OUT_OF_MEMORY: return "out of memory";
    case LSTMRT_STATUS_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}
