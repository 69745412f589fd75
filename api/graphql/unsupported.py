"""Schema fields ccstream does not answer yet: each is refused with an error naming it, never a silent null."""

from __future__ import annotations

from typing import Any

from ariadne import QueryType
from graphql import GraphQLResolveInfo

#: Query fields of cc-backend's schema without a resolver here yet.
NOT_SUPPORTED_YET = (
    "jobsMetricStats", "jobsFootprints", "rooflineHeatmap", "nodeMetrics", "nodeMetricsList", "clusterMetrics",
)


class NotSupportedYet(Exception):
    pass


def _refuse(_: Any, info: GraphQLResolveInfo, **_kwargs: Any) -> None:
    raise NotSupportedYet(f"{info.field_name} is not supported yet by ccstream")


def not_supported_yet() -> QueryType:
    """A binding that refuses each of NOT_SUPPORTED_YET."""
    query = QueryType()
    for name in NOT_SUPPORTED_YET:
        query.set_field(name, _refuse)
    return query
