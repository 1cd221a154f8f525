/* A team kept for reuse (team.h): starting a team costs 60-80 µs, waking a kept one far less. One caller holds the
 * kept team at a time; a concurrent caller gets a team of its own, so callers never wait for each other. */
#include "team.h"

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
static int try_take(int *busy)
{
    int free_now = 0;
    return __atomic_compare_exchange_n(busy, &free_now, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void give_back(int *busy)
{
    __atomic_store_n(busy, 0, __ATOMIC_RELEASE);
}
#else /* no atomics known here: keep nothing, every caller starts its own team */
static int try_take(int *busy)
{
    (void)busy;
    return 0;
}

static void give_back(int *busy)
{
    (void)busy;
}
#endif

team *team_slot_acquire(team_slot *s, int members, int start_own, int *kept)
{
    *kept = 0;
    if (!s || !try_take(&s->busy))
        return start_own ? team_create(members) : NULL;
    if (!team_alive(s->team) || team_members(s->team) != members) {
        team_destroy(s->team); /* in a forked child: freed without joining workers that are not there */
        s->team = team_create(members);
    }
    if (!s->team) {
        give_back(&s->busy);
        return NULL;
    }
    *kept = 1;
    return s->team;
}

void team_slot_release(team_slot *s, team *t, int kept)
{
    if (kept)
        give_back(&s->busy);
    else
        team_destroy(t);
}

void team_slot_clear(team_slot *s)
{
    if (!s)
        return;
    team_destroy(s->team);
    s->team = NULL;
}
