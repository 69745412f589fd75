"""The ranges every stored value must lie in: what SQLite, cc-backend's job table and JSON can hold.

An event is validated against these bounds before it is appended, so a payload the read models cannot
store never enters the log: a read model that fails on an acknowledged event is stuck or wrong. The
types are used by both the request models (the error names the field the client sent) and the payload
models (every producer, agents included, is held to them).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from streams.nodelist import host_name_problem

#: SQLite's INTEGER is a signed 64-bit number, as are cc-backend's BIGINT columns.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: cc-backend's name columns (hpc_user, project, cluster, subcluster, partition, tag type/name/scope) are
#: VARCHAR(255); host names and metadata keys are held to the same.
NAME_MAX = 255
#: A metadata value (a job script is the largest there is) or a free-text field.
TEXT_MAX = 4 * 1024 * 1024
#: Nesting of free-form JSON (statistics): deep enough for any real document, far from the recursion limit.
JSON_DEPTH_MAX = 16
#: Bytes of one NATS message of job events or node states taken in, as large as the default start_job
#: body: a larger one is not processed but dead-lettered (kind `too_large`) with this limit named.
MESSAGE_MAX = 64 * 1024 * 1024
#: Bytes of an over-size NATS message kept in its dead letter: enough to see what and who sent it.
MESSAGE_KEPT = 64 * 1024


Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
#: Unix seconds: never negative, within a 64-bit column.
Timestamp = NonNegativeInt64
#: Node, core and accelerator counts, walltimes: cc-backend's INT columns (32 bits on PostgreSQL and MySQL).
INT32_MAX = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
#: What such a column can hold at all: payload models allow what history holds (an archive's -1),
#: request models (`Count`) only what a scheduler may send.
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _no_control_characters(value: str) -> str:
    """A name has no control characters: a NUL truncates it for every C consumer, a newline forges log lines."""
    if value.isascii() and value.isprintable():  # the common case, at C speed
        return value
    for char in value:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise ValueError(f"contains a control character (U+{ord(char):04X})")
    return value


Name = Annotated[str, StringConstraints(max_length=NAME_MAX), AfterValidator(_no_control_characters)]
NonEmptyName = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX),
                         AfterValidator(_no_control_characters)]
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX)]


def _host_name(value: str) -> str:
    problem = host_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


#: A node's name as a scheduler or collector sends it (streams.nodelist.host_name_problem).
HostName = Annotated[str, StringConstraints(max_length=NAME_MAX), AfterValidator(_host_name)]


def check_json_value(value: Any, depth: int = 0) -> Any:
    """A free-form JSON value the log and the read models can store as it is, or ValueError naming the fault.

    Integers within int64, floats finite (JSON has no NaN: stored, it would come back as null), strings
    within TEXT_MAX, nesting within JSON_DEPTH_MAX.
    """
    if depth > JSON_DEPTH_MAX:
        raise ValueError(f"nested deeper than {JSON_DEPTH_MAX} levels")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"integer {value} is outside the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return value
    if isinstance(value, str):
        if len(value) > TEXT_MAX:
            raise ValueError(f"a string is longer than {TEXT_MAX} characters")
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or len(key) > NAME_MAX:
                raise ValueError(f"key {str(key)[:40]!r} is not a name of at most {NAME_MAX} characters")
            check_json_value(item, depth + 1)
        return value
    if isinstance(value, list):
        for item in value:
            check_json_value(item, depth + 1)
        return value
    raise ValueError(f"{type(value).__name__} is not a JSON value")


#: A free-form JSON object (statistics), held to `check_json_value`.
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_value)]
