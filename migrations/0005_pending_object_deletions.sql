-- An outbox of object-store deletions, so that no image outlives its slice row (and none is lost).
--
-- The object store is not part of the database transaction, so every key that may need removing
-- is written here first, in the database, and removed from the store by a background loop
-- (src/services/object-janitor.ts) that retries until the store answers:
--   * ingest writes the keys of the images it is about to upload, due after a grace period,
--     BEFORE uploading; its transaction deletes them again when the case commits. An ingest that
--     failed, or a process killed between upload and commit, leaves them here, and they are
--     removed once due (a key is only ever removed when no slice references it);
--   * deleteCase and a re-ingest that replaces a case write the old keys, due now, in the same
--     transaction that deletes the slice rows.
CREATE TABLE pending_object_deletions (
  object_key  text PRIMARY KEY,
  due_at      timestamptz NOT NULL DEFAULT now(),
  attempts    integer NOT NULL DEFAULT 0,
  last_error  text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_object_deletions_due_idx ON pending_object_deletions (due_at);
-- The janitor asks "does any slice still reference this key?" before removing an object.
CREATE INDEX slices_image_key_idx ON slices (image_key);
