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

/* Inside a job: returns once every member has called it as often as this one (what they wrote before is then
 * visible to all). */
void team_barrier(team *t, int member);

/* The hidden units [*j0, *j1) of member m: blocks of `unit` (a multiple of which n is) dealt out evenly. */
void team_share(int64_t n, int64_t unit, int member, int members, int64_t *j0, int64_t *j1);

#endif
