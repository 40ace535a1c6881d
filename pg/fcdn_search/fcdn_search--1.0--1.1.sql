-- fcdn_search 1.1: topk is no longer executable by every role (issue 13, item 8). It reads the
-- table it is given only when the caller may SELECT it (checked in fcdn_search.c since 1.1's
-- library), but it is the service's tool, not every login's: the extension's owner (the role that
-- ran CREATE EXTENSION) keeps EXECUTE, and scripts/install-fcdn-search.sh grants it to the role
-- that owns the service's tables where that is another role. pack_case / pack_block only compute
-- on their arguments and stay public.
\echo Use "ALTER EXTENSION fcdn_search UPDATE TO '1.1'" to load this file. \quit

REVOKE ALL ON FUNCTION @extschema@.topk(
  regclass, int4, int8[], int8, int8[], float8, float8, float8, int4,
  int4, int4[], int4, float8, float8, bool, int4, int4[]) FROM PUBLIC;
