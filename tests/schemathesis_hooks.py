"""Schemathesis hooks for tests/it/openapi.rs.

The stats endpoints take a day range whose two ends depend on each other:
`from` must not be after `to`, and the range may span at most
STRATA_MAX_QUERY_DAYS days (3,660 by default). OpenAPI cannot state a
constraint between two query parameters, so the document says it in the
parameters' descriptions, and a client generator must honour it the way a
person reading those descriptions would. This hook does exactly that to the
generated queries, and nothing else: when both ends are well-formed dates,
they are put in order and the range is cut to the documented maximum. Every
other generated value (including malformed dates, for the negative checks)
goes through untouched.
"""

import datetime
import re

import schemathesis

MAX_QUERY_DAYS = 3660


def _day(value):
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


@schemathesis.hook
def map_query(context, query):
    if not query:
        return query
    start, end = _day(query.get("from")), _day(query.get("to"))
    if start is None or end is None:
        return query
    start, end = min(start, end), max(start, end)
    if (end - start).days >= MAX_QUERY_DAYS:
        end = start + datetime.timedelta(days=MAX_QUERY_DAYS - 1)
    return {**query, "from": start.isoformat(), "to": end.isoformat()}
