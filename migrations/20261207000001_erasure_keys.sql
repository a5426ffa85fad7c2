-- Each project's key for the keyed hash an erasure's audit record keeps of
-- the user id (ADR-037): HMAC-SHA256 under this key, so a record's hash
-- cannot be matched against hashes of guessed ids without the key, and the
-- same user id gives unrelated hashes in two projects or deployments.
-- 32 bytes from PostgreSQL's strong random source (two v4 UUIDs, 244
-- random bits). Records made before this migration keep their plain
-- SHA-256.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS erasure_key bytea;
UPDATE projects SET erasure_key = uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
 WHERE erasure_key IS NULL;
ALTER TABLE projects
    ALTER COLUMN erasure_key SET DEFAULT (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())),
    ALTER COLUMN erasure_key SET NOT NULL;
