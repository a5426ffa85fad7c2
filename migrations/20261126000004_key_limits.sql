-- Per-key rate limits (token bucket in Redis); NULL = the server's defaults.
ALTER TABLE api_keys
    ADD COLUMN rate_per_sec double precision CHECK (rate_per_sec > 0),
    ADD COLUMN burst integer CHECK (burst > 0),
    ADD CONSTRAINT api_keys_limit_whole CHECK ((rate_per_sec IS NULL) = (burst IS NULL));
