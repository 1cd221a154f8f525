/* A team: the calling thread plus worker threads that share one sequence's recurrent steps. A one-row step is
 * bound by the bandwidth of the cache its weights sit in, and every core has its own L1 and L2: split a step's
 * hidden-unit blocks over the cores and each reads only its share of the weights (docs/kernels.md, "Teams").
 * The members meet at a barrier after every step, since the next one reads the whole new h. */
#ifndef LSTMRT_TEAM_H
#define LSTMRT_TEAM_H

#include <stdint.h>

typedef struct team team;

/* fn(arg, member, members) runs once on every member, the caller being member 0. */
typedef void (*team_job)(void *arg, int member, int members);

/* A team of `members` threads in all (members - 1 workers), or NULL when threads cannot be had (no POSIX
 * threads, out of memory): callers then run alone. Workers spin briefly after a job, for the next one of a
 * stream that is stepped in a loop, then sleep. */
team *team_create(int members);
void team_destroy(team *t);
/* Whether t can run jobs: not NULL, and not inherited through fork() (whose child has none of the workers). */
int team_alive(const team *t);
int team_members(const team *t);

/* Runs fn on every member and returns when all are done: everything they wrote is then visible to the caller. */
void team_run(team *t, team_job fn, void *arg);

/* Whether every worker is awake (polling for a job, or running one): a job then starts at once. A sleeping worker
 * takes ~100 µs to wake in a VM, which only large jobs repay. */
int team_awake(const team *t);
/* Jobs run so far (for tests: whether a call used the team). */
uint64_t team_jobs(const team *t);
/* For a caller that decides call by call whether the team is worth a job (streams, predict): returns team_awake.
 * Workers keep polling while a caller is checked in, and for their idle spin after it checks out; when they sleep
 * although the previous call ended less than that ago (calls come faster than they wait), this wakes them
 * without a job, for the calls that follow. Pair with team_check_out at the end of the call. */
int team_check_in(team *t);
void team_check_out(team *t);

/* Inside a job: returns once every member has called it as often as this one (what they wrote before is then
 * visible to all). */
void team_barrier(team *t, int member);

/* A team kept for reuse by one caller at a time (a model's predict calls); zero-initialised when empty. */
typedef struct team_slot {
    team *team;
    int busy;
} team_slot;
/* The kept team, of `members` (started or replaced as needed; *kept = 1), or when another caller holds it a new team
 * of the caller's own if start_own (*kept = 0); NULL when threads cannot be had. Hand it back with
 * team_slot_release. */
team *team_slot_acquire(team_slot *s, int members, int start_own, int *kept);
void team_slot_release(team_slot *s, team *t, int kept);
/* Stops the kept team; nobody may hold it. */
void team_slot_clear(team_slot *s);

/* The hidden units [*j0, *j1) of member m: blocks of `unit` (a multiple of which n is) dealt out evenly. */
void team_share(int64_t n, int64_t unit, int member, int members, int64_t *j0, int64_t *j1);

#endif
