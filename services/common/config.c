/*
 * config.c - defaults < environment < flags, from one table.
 */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Store a value into an option; false if it does not parse. */
static bool
set_value(const cfg_option *o, const char *v)
{
	if (o->type == CFG_STR)
	{
		*(const char **) o->ptr = v;
		return true;
	}
	else
	{
		char	   *end;
		long		n;

		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || *end || end == v)
			return false;
		*(long *) o->ptr = n;
		return true;
	}
}

int
config_parse(const cfg_option *opts, int nopts, int argc, char **argv, const char *usage)
{
	for (int i = 0; i < nopts; i++)
	{
		const char *e = getenv(opts[i].env);

		if (!set_value(&opts[i], opts[i].def))
			return -1;
		if (e && *e && !set_value(&opts[i], e))
		{
			fprintf(stderr, "invalid value for %s: %s\n", opts[i].env, e);
			return -1;
		}
	}
	for (int a = 1; a < argc; a++)
	{
		const char *arg = argv[a],
				   *val = NULL;
		char		name[64];
		const char *eq;
		int			found = 0;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
		{
			printf("%s\n\nOptions (flag / environment / default):\n", usage);
			for (int i = 0; i < nopts; i++)
				printf("  --%-18s %-26s %-14s %s\n", opts[i].name, opts[i].env,
					   opts[i].def[0] ? opts[i].def : "\"\"", opts[i].help);
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0)
		{
			fprintf(stderr, "unexpected argument: %s\n", arg);
			return -1;
		}
		eq = strchr(arg, '=');
		snprintf(name, sizeof(name), "%.*s", (int) (eq ? eq - arg - 2 : (long) strlen(arg) - 2), arg + 2);
		if (eq)
			val = eq + 1;
		else if (a + 1 < argc)
			val = argv[++a];
		for (int i = 0; i < nopts && !found; i++)
			if (strcmp(opts[i].name, name) == 0)
			{
				found = 1;
				if (!val || !set_value(&opts[i], val))
				{
					fprintf(stderr, "invalid value for --%s\n", name);
					return -1;
				}
			}
		if (!found)
		{
			fprintf(stderr, "unknown option --%s (see --help)\n", name);
			return -1;
		}
	}
	return 0;
}

void
config_log(const cfg_option *opts, int nopts)
{
	char		line[2048];
	size_t		pos = 0;

	for (int i = 0; i < nopts && pos < sizeof(line) - 1; i++)
	{
		if (opts[i].type == CFG_INT)
			pos += snprintf(line + pos, sizeof(line) - pos, "%s%s=%ld", pos ? " " : "",
							opts[i].name, *(long *) opts[i].ptr);
		else if (strstr(opts[i].name, "dsn") || strstr(opts[i].name, "secret"))
			pos += snprintf(line + pos, sizeof(line) - pos, "%s%s=<redacted>", pos ? " " : "", opts[i].name);
		else
			pos += snprintf(line + pos, sizeof(line) - pos, "%s%s=\"%s\"", pos ? " " : "",
							opts[i].name, *(const char **) opts[i].ptr);
	}
	log_msg(LOG_INFO, "configuration", "%s", line);
}
