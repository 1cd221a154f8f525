/* Teams of threads for one sequence (team.h). Jobs are handed over by a generation counter and barriers are
 * per-member arrival counters, each on its own cache line: a handover between two cores costs one line
 * transfer (a round trip is 55 ns here), which is what makes a barrier per step affordable from H = 64 up. */
#if defined(__linux__)
#define _GNU_SOURCE /* sched_getcpu, sched_setaffinity: see move_off */
#endif
#include "team.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#include <time.h>
#define LSTMRT_HAVE_TEAMS 1
#endif

void team_share(int64_t n, int64_t unit, int member, int members, int64_t *j0, int64_t *j1)
{
    const int64_t blocks = n / unit;
    *j0 = blocks * member / members * unit;
    *j1 = blocks * (member + 1) / members * unit;
}

#if LSTMRT_HAVE_TEAMS

#define MAX_MEMBERS LSTMRT_MAX_THREADS
/* After a job a worker keeps polling this long for the next one before it sleeps: a stream stepped in a loop
 * then never waits for a wake-up, and an idle one stops burning its core soon after. */
#define IDLE_SPIN_NS 50000
/* Spins between looks at the clock, and before a wait starts yielding the core: when two members share a core
 * (more threads than cores, or the scheduler put them together), the one being waited for needs it to finish. */
#define SPINS_PER_CLOCK 256
#define SPINS_BEFORE_YIELD 256

typedef struct counter {
    uint64_t value;
    char pad[64 - sizeof(uint64_t)];
} counter;

/* Bumped in the child of a fork: a team's workers do not exist there, so the team must not be run or joined. */
static unsigned forks;
static pthread_once_t fork_watch = PTHREAD_ONCE_INIT;

static void count_fork(void)
{
    __atomic_add_fetch(&forks, 1, __ATOMIC_RELAXED);
}

static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, count_fork);
}

struct team {
    counter generation; /* jobs started */
    counter done;       /* worker completions, over all jobs */
    counter sleepers;   /* workers blocked on wake */
    counter arrive[MAX_MEMBERS];
    uint64_t alarms;     /* team_check_in's wake-ups without a job (under lock) */
    int unwoken;         /* sleepers no broadcast has reached yet (under lock) */
    int in_call;         /* a caller has checked in and not yet out */
    int64_t checked_out; /* when the last call that checked in ended (team_check_out), in ns */
    team_job fn;
    void *arg;
    int members;
    int stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t workers[MAX_MEMBERS];
    int master_cpu; /* where the caller ran when it last checked in or woke the workers, or -1 */
    int started;    /* workers created */
    unsigned born;  /* forks at creation */
};

typedef struct worker_arg {
    team *t;
    int member;
} worker_arg;

static inline uint64_t load(const counter *c)
{
    return __atomic_load_n(&c->value, __ATOMIC_ACQUIRE);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until c reaches at least target (by polling: a handover costs a cache line, not a system call). */
static void wait_for(const counter *c, uint64_t target)
{
    for (uint64_t spins = 0; load(c) < target; spins++) {
        cpu_relax();
        if (spins >= SPINS_BEFORE_YIELD)
            sched_yield();
    }
}

static int current_cpu(void)
{
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

/* Linux starts a new thread, and may wake a sleeping one, on the CPU of the thread that made it runnable: the
 * caller's. Two members on one core turn every barrier into a context switch (a step took 25 us instead of 0.3)
 * until the load balancer separates them, milliseconds later. So a worker that finds itself on the caller's CPU
 * moves off it: it forbids that CPU (the kernel migrates it at once), then allows every CPU again, where it stays.
 * Nothing stays pinned. */
static void move_off(int cpu)
{
#if defined(__linux__)
    cpu_set_t allowed, others;
    if (cpu < 0 || current_cpu() != cpu || sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return;
    others = allowed;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) > 0 && sched_setaffinity(0, sizeof others, &others) == 0)
        sched_setaffinity(0, sizeof allowed, &allowed);
#else
    (void)cpu;
#endif
}

/* Whether a worker that has polled since `since` should stop and sleep: after IDLE_SPIN_NS, unless a caller that
 * checked in is still in its call or checked out less than that ago (its next call may well bring a job). */
static int idle_too_long(const team *t, int64_t since)
{
    const int64_t now = now_ns();
    if (now - since < IDLE_SPIN_NS || __atomic_load_n(&t->in_call, __ATOMIC_RELAXED))
        return 0;
    return now - __atomic_load_n(&t->checked_out, __ATOMIC_RELAXED) >= IDLE_SPIN_NS;
}

static uint64_t next_job(team *t, uint64_t seen)
{
    for (;;) {
        const int64_t since = now_ns();
        for (int spins = 0; load(&t->generation) == seen; spins++) {
            cpu_relax();
            if (spins % SPINS_PER_CLOCK != 0)
                continue;
            if (idle_too_long(t, since))
                break;
            /* polling through a caller's call: never on the caller's core, where it would take half its time */
            move_off(__atomic_load_n(&t->master_cpu, __ATOMIC_RELAXED));
        }
        if (load(&t->generation) != seen)
            return load(&t->generation);
        /* Sleep. run() bumps the generation, then looks at sleepers; this adds itself to sleepers, then looks at
         * the generation (both sequentially consistent): one of the two sees the other, so no wake-up is lost.
         * A wake-up without a job (an alarm) means jobs are coming: spin again. */
        pthread_mutex_lock(&t->lock);
        __atomic_add_fetch(&t->sleepers.value, 1, __ATOMIC_SEQ_CST);
        t->unwoken++;
        const uint64_t alarms = t->alarms;
        while (__atomic_load_n(&t->generation.value, __ATOMIC_SEQ_CST) == seen && t->alarms == alarms)
            pthread_cond_wait(&t->wake, &t->lock);
        __atomic_sub_fetch(&t->sleepers.value, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&t->lock);
        move_off(__atomic_load_n(&t->master_cpu, __ATOMIC_RELAXED));
    }
}

/* Wakes every sleeping worker that no broadcast has reached yet (a broadcast costs the caller ~12 µs in a VM
 * when a worker sleeps, so it is sent once per sleep). alarm: without a job. */
static void wake_sleepers(team *t, int alarm)
{
    __atomic_store_n(&t->master_cpu, current_cpu(), __ATOMIC_RELAXED);
    pthread_mutex_lock(&t->lock);
    if (t->unwoken > 0) {
        t->unwoken = 0;
        t->alarms += (uint64_t)alarm;
        pthread_cond_broadcast(&t->wake);
    }
    pthread_mutex_unlock(&t->lock);
}

static void *worker_main(void *p)
{
    worker_arg a = *(worker_arg *)p;
    free(p);
    team *t = a.t;
    (void)lstmrt__fp_enter(); /* flush-to-zero is per thread: this one only ever runs kernels */
    move_off(__atomic_load_n(&t->master_cpu, __ATOMIC_RELAXED));
    for (uint64_t seen = 0;;) {
        seen = next_job(t, seen);
        if (__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE))
            return NULL;
        t->fn(t->arg, a.member, t->members);
        __atomic_add_fetch(&t->done.value, 1, __ATOMIC_RELEASE);
    }
}

team *team_create(int members)
{
    if (members < 2 || members > MAX_MEMBERS)
        return NULL;
    team *t = lstmrt__aligned_alloc(sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->members = members;
    t->master_cpu = current_cpu();
    pthread_once(&fork_watch, watch_forks);
    t->born = __atomic_load_n(&forks, __ATOMIC_RELAXED);
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        lstmrt__aligned_free(t);
        return NULL;
    }
    if (pthread_cond_init(&t->wake, NULL) != 0) {
        pthread_mutex_destroy(&t->lock);
        lstmrt__aligned_free(t);
        return NULL;
    }
    for (int m = 1; m < members; m++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a)
            break;
        *a = (worker_arg){t, m};
        if (pthread_create(&t->workers[m], NULL, worker_main, a) != 0) {
            free(a);
            break;
        }
        t->started++;
    }
    if (t->started != members - 1) { /* all or nothing: a job's shares assume every member runs */
        team_destroy(t);
        return NULL;
    }
    return t;
}

int team_alive(const team *t)
{
    return t && t->born == __atomic_load_n(&forks, __ATOMIC_RELAXED);
}

void team_destroy(team *t)
{
    if (!t)
        return;
    if (!team_alive(t)) { /* a forked child: no workers to stop, and the lock may have been held at the fork */
        lstmrt__aligned_free(t);
        return;
    }
    __atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&t->generation.value, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&t->lock);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    for (int m = 1; m <= t->started; m++)
        pthread_join(t->workers[m], NULL);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    lstmrt__aligned_free(t);
}

int team_members(const team *t)
{
    return t ? t->members : 1;
}

void team_run(team *t, team_job fn, void *arg)
{
    const uint64_t target = load(&t->done) + (uint64_t)(t->members - 1);
    t->fn = fn;
    t->arg = arg;
    __atomic_add_fetch(&t->generation.value, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&t->sleepers.value, __ATOMIC_SEQ_CST) > 0)
        wake_sleepers(t, 0);
    fn(arg, 0, t->members);
    wait_for(&t->done, target);
}

uint64_t team_jobs(const team *t)
{
    return t ? load(&t->generation) : 0;
}

int team_awake(const team *t)
{
    return team_alive(t) && __atomic_load_n(&t->sleepers.value, __ATOMIC_SEQ_CST) == 0;
}

int team_check_in(team *t)
{
    if (!team_alive(t))
        return 0;
    __atomic_store_n(&t->in_call, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&t->master_cpu, current_cpu(), __ATOMIC_RELAXED);
    if (__atomic_load_n(&t->sleepers.value, __ATOMIC_SEQ_CST) == 0)
        return 1;
    /* calls are coming faster than the workers wait for them: wake them (they then poll until this call is over,
     * and a while after) for the next ones */
    if (now_ns() - __atomic_load_n(&t->checked_out, __ATOMIC_RELAXED) < IDLE_SPIN_NS)
        wake_sleepers(t, 1);
    return 0;
}

void team_check_out(team *t)
{
    if (!team_alive(t))
        return;
    __atomic_store_n(&t->checked_out, now_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&t->in_call, 0, __ATOMIC_RELAXED);
}

void team_barrier(team *t, int member)
{
    const uint64_t mine = __atomic_add_fetch(&t->arrive[member].value, 1, __ATOMIC_RELEASE);
    for (int m = 0; m < t->members; m++)
        if (m != member)
            wait_for(&t->arrive[m], mine);
}

#else /* no POSIX threads: every caller runs alone */

int team_alive(const team *t)
{
    (void)t;
    return 0;
}

team *team_create(int members)
{
    (void)members;
    return NULL;
}

void team_destroy(team *t)
{
    (void)t;
}

int team_members(const team *t)
{
    (void)t;
    return 1;
}

void team_run(team *t, team_job fn, void *arg)
{
    (void)t;
    fn(arg, 0, 1);
}

uint64_t team_jobs(const team *t)
{
    (void)t;
    return 0;
}

int team_awake(const team *t)
{
    (void)t;
    return 0;
}

int team_check_in(team *t)
{
    (void)t;
    return 0;
}

void team_check_out(team *t)
{
    (void)t;
}

void team_barrier(team *t, int member)
{
    (void)t, (void)member;
}

#endif
