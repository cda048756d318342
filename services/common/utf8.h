/*
 * utf8.h - one UTF-8 sequence checked as PostgreSQL's UTF8 encoding accepts
 * it (shortest form, no surrogates, at most U+10FFFF).
 */
#ifndef FLEET_UTF8_H
#define FLEET_UTF8_H

#include <stddef.h>

/* the length of the valid UTF-8 sequence at s[i] (of n bytes), 0 if malformed */
size_t		utf8_seq(const unsigned char *s, size_t n, size_t i);

#endif
