#!/bin/sh
# Run once by the postgres image's entrypoint when it creates the cluster:
# the settings of strata.conf (mounted at /etc/postgresql/strata.conf) apply
# from the server's first real start, after the image's own tuning.
echo "include_if_exists = '/etc/postgresql/strata.conf'" >> "$PGDATA/postgresql.conf"
