/* Kernel selection: detect CPU features once, pick the best kernel table the CPU *and* the OS support (an
 * AVX-512 CPU under an OS that does not save zmm state must not run zmm code), let LSTMRT_ISA lower (never
 * raise) the tier. Also the floating-point environment the kernels run under (flush-to-zero). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define LSTMRT_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#if defined(__SSE__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 1)
#include <xmmintrin.h>
#define LSTMRT_MXCSR 1
#endif
#endif

static const lstmrt_kernels *selected;
static char features[160];

static void add_feature(const char *name)
{
    if (features[0])
        strcat(features, " ");
    strcat(features, name);
}

#if defined(LSTMRT_X86)
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
#if defined(_MSC_VER)
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++)
        r[i] = (unsigned)v[i];
#else
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

/* XCR0: which register state the OS saves on a context switch. Only valid when CPUID reports OSXSAVE. */
static unsigned long long xcr0(void)
{
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
#endif
}

/* Fills `features` and returns the best tier: 0 scalar, 1 avx2, 2 avx512. */
static int detect_x86(void)
{
    unsigned r[4], max_leaf;
    cpuid(0, 0, r);
    max_leaf = r[0];
    cpuid(1, 0, r);
    const unsigned ecx1 = r[2];
    unsigned ebx7 = 0, ecx7 = 0, eax71 = 0;
    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        ebx7 = r[1];
        ecx7 = r[2];
        const unsigned sub_leaves = r[0];
        if (sub_leaves >= 1) {
            cpuid(7, 1, r);
            eax71 = r[0];
        }
    }
    const int fma = (ecx1 >> 12) & 1, osxsave = (ecx1 >> 27) & 1, avx = (ecx1 >> 28) & 1, f16c = (ecx1 >> 29) & 1;
    const int avx2 = (ebx7 >> 5) & 1, avx512f = (ebx7 >> 16) & 1, avx512dq = (ebx7 >> 17) & 1;
    const int avx512bw = (ebx7 >> 30) & 1, avx512vl = (ebx7 >> 31) & 1, vnni = (ecx7 >> 11) & 1;
    const int bf16 = (eax71 >> 5) & 1;
    const unsigned long long xcr = osxsave ? xcr0() : 0;
    const int os_avx = (xcr & 0x6) == 0x6;                /* XMM and YMM state */
    const int os_avx512 = os_avx && (xcr & 0xE0) == 0xE0; /* opmask, ZMM_Hi256, Hi16_ZMM state */

    const struct {
        int have;
        const char *name;
    } seen[] = {
        {1, "sse2"},
        {avx, "avx"},
        {fma, "fma"},
        {f16c, "f16c"},
        {avx2, "avx2"},
        {avx512f, "avx512f"},
        {avx512dq, "avx512dq"},
        {avx512bw, "avx512bw"},
        {avx512vl, "avx512vl"},
        {vnni, "avx512vnni"},
        {bf16, "avx512bf16"},
        {os_avx, "os-avx"},
        {os_avx512, "os-avx512"},
    };
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++)
        if (seen[i].have)
            add_feature(seen[i].name);

    if (os_avx512 && avx512f && avx512dq && avx512bw && avx512vl && fma)
        return 2;
    if (os_avx && avx && avx2 && fma)
        return 1;
    return 0;
}
#endif

/* Tier names in increasing order; LSTMRT_ISA may name any tier at or below the detected one. */
static int requested_tier(int best, const char *const *names, int count)
{
    const char *env = getenv("LSTMRT_ISA");
    if (!env || !env[0])
        return best;
    for (int t = 0; t < count; t++)
        if (strcmp(env, names[t]) == 0)
            return t < best ? t : best;
    return best; /* unknown name: ignored (the library never prints; lstmrt_kernel_tier() shows the choice) */
}

#if defined(LSTMRT_X86) && defined(LSTMRT_HAVE_X86_KERNELS)
static const char *const tier_names[] = {"scalar", "avx2", "avx512"};
static const lstmrt_kernels *const tier_tables[] = {&lstmrt_kernels__scalar, &lstmrt_kernels__avx2,
                                                    &lstmrt_kernels__avx512};
#elif defined(LSTMRT_HAVE_NEON_KERNELS)
static const char *const tier_names[] = {"scalar", "neon"};
static const lstmrt_kernels *const tier_tables[] = {&lstmrt_kernels__scalar, &lstmrt_kernels__neon};
#else
static const char *const tier_names[] = {"scalar"};
static const lstmrt_kernels *const tier_tables[] = {&lstmrt_kernels__scalar};
#endif
#define TIER_COUNT ((int)(sizeof tier_tables / sizeof tier_tables[0]))
static int best_tier; /* highest tier this CPU and OS can run */

static void detect(void)
{
    features[0] = '\0';
#if defined(LSTMRT_X86)
    best_tier = detect_x86();
#elif defined(LSTMRT_HAVE_NEON_KERNELS)
    add_feature("asimd"); /* Advanced SIMD is mandatory on AArch64: no run-time check needed */
    best_tier = 1;
#endif
    if (best_tier >= TIER_COUNT)
        best_tier = TIER_COUNT - 1; /* e.g. an x86 build without the ISA files */
    selected = tier_tables[requested_tier(best_tier, tier_names, TIER_COUNT)];
}

/* Once-init without a threads library: the first caller detects, concurrent callers wait for it. */
#if defined(__GNUC__) || defined(__clang__)
static int init_state; /* 0 not started, 1 running, 2 done */

const lstmrt_kernels *lstmrt__kernels(void)
{
    if (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2) {
        int expected = 0;
        if (__atomic_compare_exchange_n(&init_state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            detect();
            __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
        } else {
            while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2)
                ; /* detection takes microseconds */
        }
    }
    return selected;
}
#elif defined(_MSC_VER)
#include <windows.h>
static INIT_ONCE once = INIT_ONCE_STATIC_INIT;
static BOOL CALLBACK run_detect(PINIT_ONCE o, PVOID p, PVOID *c)
{
    (void)o, (void)p, (void)c;
    detect();
    return TRUE;
}
const lstmrt_kernels *lstmrt__kernels(void)
{
    InitOnceExecuteOnce(&once, run_detect, NULL, NULL);
    return selected;
}
#else
const lstmrt_kernels *lstmrt__kernels(void)
{
    if (!selected)
        detect(); /* no known atomics: single-threaded targets */
    return selected;
}
#endif

const char *lstmrt_kernel_tier(void)
{
    return lstmrt__kernels()->name;
}

const char *lstmrt_cpu_features(void)
{
    lstmrt__kernels();
    return features;
}

int lstmrt__supported_kernels(const lstmrt_kernels **tables, int max)
{
    lstmrt__kernels();
    int n = 0;
    for (int t = 0; t <= best_tier && n < max; t++)
        tables[n++] = tier_tables[t];
    return n;
}

/* Flush-to-zero + denormals-are-zero while kernels run: a denormal operand costs ~100 cycles on many cores, and
 * a decaying state (c, h -> 0) produces them. The caller's mode is restored on the way out. Elsewhere a no-op
 * (AArch64: FPCR.FZ, which covers both inputs and outputs of Advanced SIMD and scalar FP). */
#define FTZ_DAZ 0x8040u /* MXCSR bit 15 FTZ, bit 6 DAZ */

unsigned lstmrt__fp_enter(void)
{
#if defined(LSTMRT_MXCSR)
    const unsigned old = _mm_getcsr();
    if ((old & FTZ_DAZ) != FTZ_DAZ)
        _mm_setcsr(old | FTZ_DAZ);
    return old;
#elif defined(__aarch64__) && defined(__GNUC__)
    unsigned long old;
    __asm__ volatile("mrs %0, fpcr" : "=r"(old));
    if (!(old & (1ul << 24)))
        __asm__ volatile("msr fpcr, %0" : : "r"(old | (1ul << 24)));
    return (unsigned)old;
#else
    return 0;
#endif
}

void lstmrt__fp_leave(unsigned saved)
{
#if defined(LSTMRT_MXCSR)
    if ((saved & FTZ_DAZ) != FTZ_DAZ)
        _mm_setcsr(saved);
#elif defined(__aarch64__) && defined(__GNUC__)
    if (!(saved & (1u << 24))) {
        const unsigned long v = saved;
        __asm__ volatile("msr fpcr, %0" : : "r"(v));
    }
#else
    (void)saved;
#endif
}
