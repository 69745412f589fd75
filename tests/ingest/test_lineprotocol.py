"""The line-protocol parser: cc-backend's NATS event lines, escapes, and precise errors per line."""

from __future__ import annotations

import orjson
import pytest

from streams.ingest.lineprotocol import Line, LineError, LineProtocolError, parse_batch, parse_line, timestamp_seconds
from tests.support.specs import find_specs

EXAMPLES = find_specs() / "examples"


def test_reference_job_events_parse_with_their_json_intact() -> None:
    start, stop = parse_batch((EXAMPLES / "nats-job-events.lp").read_bytes())
    assert isinstance(start, Line) and isinstance(stop, Line)
    assert start.measurement == "job" and start.tags["function"] == "start_job"
    assert start.tags == {"function": "start_job", "hostname": "slurmctl01", "type": "node", "type-id": "0"}
    assert start.timestamp == 1675954353000000000 and start.number == 1
    job = orjson.loads(str(start.fields["event"]))
    # `\\n` in the line is `\n` in the JSON, which decodes to a newline in the value.
    assert job["metaData"]["slurmInfo"] == "JobId=398764\nJobName=ams_pipeline\nPartition=singlenode"
    assert job["jobId"] == 398764 and job["resources"][0]["hwthreads"][-1] == 71
    assert stop.tags["function"] == "stop_job" and stop.number == 2
    assert orjson.loads(str(stop.fields["event"])) == {
        "jobId": 398764, "cluster": "fritz", "jobState": "completed", "stopTime": 1675954530,
    }


def test_reference_nodestate_parses() -> None:
    [line] = parse_batch((EXAMPLES / "nats-nodestate.lp").read_bytes())
    assert isinstance(line, Line) and line.measurement == "nodestate" and line.tags == {}
    assert orjson.loads(str(line.fields["event"]))["nodes"][1]["hostname"] == "f0651"


def test_field_types_and_escapes() -> None:
    line = parse_line(r'm\,x\ y,t\=k=v\ 1,u=w a=1.5,b=-3i,c=7u,d=t,e=FALSE,f="q\"uo\\te",g=1e3 -12')
    assert line.measurement == "m,x y"
    assert line.tags == {"t=k": "v 1", "u": "w"}
    assert line.fields == {"a": 1.5, "b": -3, "c": 7, "d": True, "e": False, "f": 'q"uo\\te', "g": 1000.0}
    assert line.timestamp == -12


def test_timestamp_is_optional_and_trailing_spaces_are_fine() -> None:
    assert parse_line('nodestate event="{}"').timestamp is None
    assert parse_line('nodestate event="{}"   ').timestamp is None
    assert parse_line('nodestate event="{}" 5  ').timestamp == 5


def test_blank_lines_comments_and_crlf() -> None:
    items = parse_batch(b'\n# a comment\njob,function=stop_job event="{}" 1\r\n\r\njob event="x" 2\n')
    assert [i.number for i in items] == [3, 5]
    assert all(isinstance(i, Line) for i in items)


def test_string_values_may_span_lines() -> None:
    [line, after] = parse_batch(b'm s="a\nb" 1\nm x=1i 2')
    assert isinstance(line, Line) and line.fields["s"] == "a\nb"
    assert isinstance(after, Line) and after.number == 3


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("job", 4, "missing fields"),
        ("job,function start_job", 13, "'=' after tag key 'function'"),
        ("job,=x a=1", 5, "missing tag key"),
        ("job,a= b=1", 7, "missing value of tag 'a'"),
        ("job a", 6, "'=' after field key 'a'"),
        ("job a=", 7, "missing value of field 'a'"),
        ("job a=xyz", 7, "invalid value 'xyz' of field 'a'"),
        ("job a=1 12x", 9, "invalid timestamp '12x'"),
        ("job a=1 1 2", 11, "unexpected character '2'"),
        ('job event="abc', 11, "unterminated string field value"),
        ("job,a=b", 8, "missing fields"),
    ],
)
def test_malformed_lines_name_column_and_problem(text: str, column: int, fragment: str) -> None:
    with pytest.raises(LineProtocolError) as info:
        parse_line(text)
    assert info.value.column == column, info.value
    assert fragment in info.value.message


def test_one_bad_line_does_not_spoil_its_neighbours() -> None:
    data = b'job,function=start_job event="ok" 1\njob,function=stop_job event="unterminated 2\njob x=1i 3\n'
    first, bad, third = parse_batch(data)
    assert isinstance(first, Line) and isinstance(third, Line) and third.number == 3
    assert isinstance(bad, LineError) and bad.number == 2 and bad.column == 29
    assert bad.raw == 'job,function=stop_job event="unterminated 2'
    assert "line 2, column 29: unterminated string" in bad.describe()


def test_invalid_utf8_is_one_error() -> None:
    [error] = parse_batch(b'job event="\xff" 1')
    assert isinstance(error, LineError) and "not valid UTF-8" in error.message


def test_raw_text_is_kept_for_ids_and_dead_letters() -> None:
    [line] = parse_batch(b'nodestate event="{}" 1675954413000000000\n')
    assert isinstance(line, Line) and line.raw == 'nodestate event="{}" 1675954413000000000'


@pytest.mark.parametrize(
    ("ts", "seconds"),
    [(1675954413, 1675954413), (1675954413123, 1675954413), (1675954413123456, 1675954413),
     (1675954413123456789, 1675954413)],
)
def test_timestamps_in_any_unit_become_seconds(ts: int, seconds: int) -> None:
    assert timestamp_seconds(ts) == seconds
