/*
 * config.h - one declarative table of settings per service.
 *
 * Each setting has a flag (--name), an environment variable (FLEET_NAME)
 * and a default; precedence: default < environment < flag.  --help prints
 * the table.  Secrets are not logged (config_log redacts "dsn" passwords).
 */
#ifndef FLEET_CONFIG_H
#define FLEET_CONFIG_H

#include <stdbool.h>

typedef enum { CFG_STR, CFG_INT } cfg_type;

typedef struct
{
	const char *name;			/* flag name, e.g. "osmand-port" */
	const char *env;			/* e.g. "FLEET_OSMAND_PORT" */
	cfg_type	type;
	void	   *ptr;			/* const char ** or long * */
	const char *def;
	const char *help;
} cfg_option;

/* Parse env then argv; returns 0, or 1 after --help, -1 on a bad flag. */
int config_parse(const cfg_option *opts, int nopts, int argc, char **argv, const char *usage);
void config_log(const cfg_option *opts, int nopts);

#endif
