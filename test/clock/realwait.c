/*
 * realwait.c: preloaded ahead of libfaketime in the clock-proof test runs
 * (make test-clock).
 *
 * libfaketime (0.9.10, Debian 12) wraps the blocking waits (select, poll,
 * epoll_wait, nanosleep, ...) and stops faking the clock while the real call
 * blocks.  A signal handler that runs during the wait therefore reads the
 * real clock, and a process forked from such a handler keeps the real clock
 * for good.  PostgreSQL 15's postmaster forks its auxiliary processes and
 * background workers from signal handlers while it waits in select(), and
 * a backend's SIGALRM handler (statement, lock and deadlock timeouts)
 * compares the clock with deadlines while the backend waits in epoll_wait():
 * both would mix the real and the faked clock.  The runs set a constant
 * offset (no speed-up), so libfaketime has nothing to adjust in a wait: these
 * definitions call the C library's directly, and the clock stays faked in
 * every process and handler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

static void *
libc_symbol(const char *name)
{
	static void *libc;

	if (libc == NULL)
		libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	if (libc == NULL)
		libc = dlopen("libc.so.6", RTLD_LAZY);
	return libc ? dlsym(libc, name) : NULL;
}

/* the C library's definition of name, looked up once */
#define REAL(name) \
	({ static __typeof__(&name) fn; \
	   if (fn == NULL) \
		   fn = (__typeof__(&name)) libc_symbol(#name); \
	   fn; })

int
select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
	return REAL(select)(nfds, r, w, e, timeout);
}

int
pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout, const sigset_t *mask)
{
	return REAL(pselect)(nfds, r, w, e, timeout, mask);
}

int
poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return REAL(poll)(fds, n, timeout);
}

int
ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask)
{
	return REAL(ppoll)(fds, n, timeout, mask);
}

int
epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	return REAL(epoll_wait)(epfd, events, maxevents, timeout);
}

int
epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout, const sigset_t *mask)
{
	return REAL(epoll_pwait)(epfd, events, maxevents, timeout, mask);
}

int
nanosleep(const struct timespec *req, struct timespec *rem)
{
	return REAL(nanosleep)(req, rem);
}

int
clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem)
{
	return REAL(clock_nanosleep)(clock, flags, req, rem);
}

int
usleep(useconds_t usec)
{
	return REAL(usleep)(usec);
}

unsigned int
sleep(unsigned int seconds)
{
	return REAL(sleep)(seconds);
}
