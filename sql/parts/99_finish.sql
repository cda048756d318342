-- 99_finish: nothing for PUBLIC; grants for the fleet roles that exist.
--
-- Functions are executable by PUBLIC by default: revoke that for every fleet
-- function, then grant from fleet.role_grant to whichever fleet roles
-- already exist (on a first install, usually none: run fleet.create_roles()).

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA fleet FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA fleet FROM PUBLIC;
SELECT fleet.apply_grants();
