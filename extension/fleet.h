/*-------------------------------------------------------------------------
 *
 * fleet.h
 *	  Declarations shared by the C files of the fleet extension.
 *
 * Each subsystem owns one .c file and exposes an Init function that
 * _PG_init (fleet.c) calls; the list of those calls is the extension's table
 * of contents.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLEET_H
#define FLEET_H

#include "postgres.h"

/* tenant.c: tenant context (fleet.tenant) */
extern void FleetTenantInit(void);
extern bool FleetTenantIsSet(void);
extern int64 FleetCurrentTenant(void);

/* guard.c: utility hook around DDL on fleet itself */
extern void FleetGuardInit(void);

/* owner.c: running internal SQL as the extension owner */
extern Oid	FleetExtensionOwner(void);

#endif							/* FLEET_H */
