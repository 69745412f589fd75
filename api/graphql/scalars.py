"""The schema's scalars, with cc-backend's output: RFC 3339 times, NaN as null, enums as lower-case strings."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from ariadne import ScalarType
from graphql import GraphQLError, GraphQLScalarType, GraphQLSchema, IntValueNode

from streams.events.bounds import INT64_MAX
from streams.events.payloads import JobState
from streams.ingest.requests import normalise_job_state

time_scalar = ScalarType("Time")
any_scalar = ScalarType("Any")
nullable_float = ScalarType("NullableFloat")
metric_scope = ScalarType("MetricScope")
job_state = ScalarType("JobState")
scheduler_state = ScalarType("SchedulerState")
monitoring_state = ScalarType("MonitoringState")

JOB_STATES: frozenset[str] = frozenset(JobState.__args__)  # type: ignore[attr-defined]
METRIC_SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")


@time_scalar.serializer
def serialize_time(value: Any) -> str:
    """Unix seconds as RFC 3339 in UTC, as Go's time.Time marshals them."""
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@time_scalar.value_parser
def parse_time(value: Any) -> int:
    """An RFC 3339 time (or unix seconds, which cc-backend's gqlgen also takes) as unix seconds."""
    if isinstance(value, bool):
        raise GraphQLError("Time: expected an RFC 3339 string")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise GraphQLError(f"Time: {value[:64]!r} is not an RFC 3339 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = int(parsed.timestamp())
    else:
        raise GraphQLError("Time: expected an RFC 3339 string")
    if not 0 <= seconds <= INT64_MAX:
        raise GraphQLError(f"Time: {value!r} is out of range")
    return seconds


@nullable_float.serializer
def serialize_nullable_float(value: Any) -> float:
    """A number, or NaN for a gap, which the answer's JSON writes as null (orjson does for NaN and infinity).

    The schema types the items of series `[NullableFloat!]!`: gqlgen writes null for NaN inside a non-null
    list, and GraphQL execution would turn a None here into an error, so the gap stays NaN until encoding."""
    return math.nan if value is None else float(value)


@any_scalar.serializer
def serialize_any(value: Any) -> Any:
    return value


@metric_scope.value_parser
def parse_metric_scope(value: Any) -> str:
    if value not in METRIC_SCOPES:
        raise GraphQLError(f"MetricScope: {str(value)[:64]!r} is not one of {', '.join(METRIC_SCOPES)}")
    return str(value)


@job_state.value_parser
def parse_job_state(value: Any) -> str:
    """A job state as the job table spells it; cc-lib's `out_of_memory` is taken for `out-of-memory`."""
    value = normalise_job_state(value)
    if value not in JOB_STATES:
        raise GraphQLError(f"JobState: {str(value)[:64]!r} is not one of {', '.join(sorted(JOB_STATES))}")
    return str(value)


def _string(name: str) -> Any:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or len(value) > 255:
            raise GraphQLError(f"{name}: expected a string of at most 255 characters")
        return value
    return parse


scheduler_state.set_value_parser(_string("SchedulerState"))
monitoring_state.set_value_parser(_string("MonitoringState"))

SCALARS = [time_scalar, any_scalar, nullable_float, metric_scope, job_state, scheduler_state, monitoring_state]


def serialize_int64(value: Any) -> int:
    """An Int as gqlgen writes it: Go's int, 64 bits (totals such as `totalCoreHours` pass 2^31 at big sites)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise GraphQLError(f"Int cannot represent non-integer value: {str(value)[:64]}")
    number = int(value)
    if not -(2**63) <= number <= INT64_MAX:
        raise GraphQLError(f"Int cannot represent {number}: outside 64 bits")
    return number


def parse_int64(value: Any, *_options: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphQLError(f"Int cannot represent non-integer value: {str(value)[:64]}")
    if not -(2**63) <= value <= INT64_MAX:
        raise GraphQLError(f"Int cannot represent {value}: outside 64 bits")
    return value


def parse_int64_literal(node: Any, _variables: Any = None) -> int:
    if not isinstance(node, IntValueNode):
        raise GraphQLError("Int cannot represent a non-integer value")
    return parse_int64(int(node.value))


def widen_int(schema: GraphQLSchema) -> None:
    """Make the schema's Int 64 bits wide, as cc-backend's (gqlgen maps Int to Go's int).

    GraphQL's own Int is 32 bits; with it, a cluster's `totalCoreHours` over 2,147,483,647 would be an
    error instead of a number. graphql-core shares one Int type object between schemas, so this widens
    it for the whole process, which serves this one schema."""
    int_type = schema.type_map["Int"]
    if not isinstance(int_type, GraphQLScalarType):
        raise TypeError("the schema has no Int scalar")
    # graphql-core 3.2 names the three functions serialize/parse_value/parse_literal, 3.3 coerce_*; set both.
    for name, function in (("serialize", serialize_int64), ("coerce_output_value", serialize_int64),
                           ("parse_value", parse_int64), ("coerce_input_value", parse_int64),
                           ("parse_literal", parse_int64_literal), ("coerce_input_literal", parse_int64_literal)):
        setattr(int_type, name, function)
