/*
 * ratelimit.c - per-token token buckets in a bounded table.  See ratelimit.h.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct
{
	uint64_t	key;			/* 0: free */
	double		tokens;
	double		at;				/* when tokens was computed */
} bucket;

struct ratelimit
{
	pthread_mutex_t mu;
	double		rate,
				burst;
	int			nslots;
	bucket	   *slots;
};

/* FNV-1a, never 0. */
static uint64_t
hash_token(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s; s++)
	{
		h ^= (unsigned char) *s;
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

ratelimit *
ratelimit_new(double rate, double burst, int slots)
{
	ratelimit  *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return NULL;
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
	rl->nslots = slots > 0 ? slots : 4096;
	rl->slots = calloc(rl->nslots, sizeof(bucket));
	if (!rl->slots)
	{
		free(rl);
		return NULL;
	}
	pthread_mutex_init(&rl->mu, NULL);
	return rl;
}

void
ratelimit_free(ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->mu);
	free(rl->slots);
	free(rl);
}

bool
ratelimit_take(ratelimit *rl, const char *token, double now, double *retry_after)
{
	uint64_t	key = hash_token(token);
	bucket	   *b;
	bool		ok;

	*retry_after = 0;
	if (rl->rate <= 0)
		return true;
	pthread_mutex_lock(&rl->mu);
	b = &rl->slots[key % (uint64_t) rl->nslots];
	if (b->key != key)
	{
		double		t = b->tokens + (now - b->at) * rl->rate;

		/* a free slot, or one whose bucket has refilled (idle): take it over */
		if (b->key == 0 || t >= rl->burst)
		{
			b->key = key;
			b->tokens = rl->burst;
			b->at = now;
		}
	}
	b->tokens += (now - b->at) * rl->rate;
	if (b->tokens > rl->burst)
		b->tokens = rl->burst;
	b->at = now;
	ok = b->tokens >= 1;
	if (ok)
		b->tokens -= 1;
	else
		*retry_after = (1 - b->tokens) / rl->rate;
	pthread_mutex_unlock(&rl->mu);
	return ok;
}
