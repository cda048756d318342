/*
 * lifecycle.c - a service's shutdown signals: SIGTERM or SIGINT starts the
 * drain, a second one exits at once; SIGPIPE is ignored (a client that
 * went away is an error return, not a signal).
 *
 * SIGTERM/SIGINT are blocked in every thread (the mask is inherited by the
 * threads the service starts after lifecycle_init) and taken only by the
 * main thread in sigsuspend(): a process-directed signal handled by another
 * thread would not wake the main thread's wait, and shutdown would hang
 * (seen under valgrind, test/tap/205_sanitizers.pl and 209_sync_sanitizers.pl).
 */
#include "lifecycle.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t signals_seen = 0;
static sigset_t old_mask;

/* Count signals; the second one exits at once. */
static void
on_signal(int sig)
{
	(void) sig;
	if (++signals_seen > 1)
		_exit(1);
}

void
lifecycle_init(void)
{
	struct sigaction sa;
	sigset_t	term;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	pthread_sigmask(SIG_BLOCK, &term, &old_mask);
}

void
lifecycle_wait(void)
{
	while (signals_seen == 0)
		sigsuspend(&old_mask);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);	/* a second signal exits at once */
}
