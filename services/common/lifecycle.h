/*
 * lifecycle.h - a service's shutdown signals.
 *
 * Usage, in main():
 *     lifecycle_init();      before any thread starts (the threads inherit the mask)
 *     ... start the service ...
 *     lifecycle_wait();      returns on the first SIGTERM or SIGINT
 *     ... drain and stop ...  (a second signal exits at once)
 */
#ifndef FLEET_LIFECYCLE_H
#define FLEET_LIFECYCLE_H

void		lifecycle_init(void);
void		lifecycle_wait(void);

#endif
