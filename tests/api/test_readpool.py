"""The read pool: reads run on its workers, not the event loop; a bounded number at once, within a time
budget, large answers streamed; every wait here is for a condition (a gate, an answer), never a sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient

import api.readpool as readpool
from api.config import ReadSettings
from api.errors import ApiError, install_error_handlers
from api.readpool import ChunkedAnswer, ReadPool, ReadRoute, checkpoint, json_array
from api.responses import JSON
from tests.api.conftest import assert_error
from tests.support.asgi import uvicorn_in_thread

WAIT = 10.0  # seconds any condition below is waited for before the test fails


class Gate:
    """Holds reads until the test opens it; counts the reads that reached it."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Semaphore(0)
        self.closed = threading.Event()  # set by a streamed answer's producer when it is closed

    def hold(self) -> None:
        self.entered.release()
        assert self.opened.wait(WAIT), "the test never opened the gate"

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "no read reached the gate"


def make_app(gate: Gate, give_way_to: Callable[[], bool] | None = None, **settings: Any) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.read_pool = ReadPool(ReadSettings.model_validate(settings), give_way_to=give_way_to)
    router = APIRouter(route_class=ReadRoute)

    @router.get("/blocked")
    def blocked(request: Request) -> JSON:
        gate.hold()
        return JSON({"thread": threading.current_thread().name})

    @router.get("/quick")
    def quick(request: Request) -> JSON:
        return JSON({"thread": threading.current_thread().name})

    @router.get("/loop")
    async def on_loop() -> JSON:
        return JSON({"thread": threading.current_thread().name})

    @router.get("/stream")
    def stream(request: Request, pieces: int, hold_after: int = -1) -> ChunkedAnswer:
        def produce() -> Iterator[bytes]:
            try:
                for n in range(pieces):
                    if n == hold_after:
                        gate.hold()
                    yield b"piece %d;" % n
            finally:
                gate.closed.set()

        return ChunkedAnswer(produce(), media_type="text/plain")

    @router.get("/checkpoints")
    def checkpoints(request: Request, steps: int) -> JSON:
        for _ in range(steps):
            checkpoint()
        return JSON({"steps": steps})

    app.include_router(router)
    return app


@pytest.fixture
def background() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def test_reads_run_on_the_pools_workers_and_leave_the_loop_free(background: ThreadPoolExecutor) -> None:
    gate = Gate()
    with TestClient(make_app(gate)) as http:
        assert http.get("/quick").json()["thread"].startswith("ccstream-read")
        held = background.submit(http.get, "/blocked")
        gate.wait_entered()
        loop = http.get("/loop")  # answered while the read is still held on its worker
        assert loop.status_code == 200 and not held.done()
        gate.opened.set()
        assert held.result(WAIT).status_code == 200


def test_reads_beyond_the_workers_wait_then_get_503(background: ThreadPoolExecutor) -> None:
    gate = Gate()
    with TestClient(make_app(gate, workers=1, **{"queue-wait": 0})) as http:
        held = background.submit(http.get, "/blocked")
        gate.wait_entered()
        assert_error(http.get("/quick"), 503, "reads.workers", "reads.queue-wait")
        gate.opened.set()
        assert held.result(WAIT).status_code == 200
        assert http.get("/quick").status_code == 200  # the slot came back


def test_a_read_over_its_budget_gets_504_and_keeps_its_worker_until_it_ends() -> None:
    gate = Gate()
    with TestClient(make_app(gate, workers=1, timeout=0.2, **{"queue-wait": 0})) as http:
        assert_error(http.get("/blocked"), 504, "reads.timeout")
        # The abandoned work still holds the only worker: the bound holds for it too.
        assert_error(http.get("/quick"), 503, "reads.workers")
        gate.opened.set()
        deadline = time.monotonic() + WAIT
        while (answer := http.get("/quick")).status_code == 503:
            assert time.monotonic() < deadline, "the abandoned read never gave its worker back"
        assert answer.status_code == 200


def test_an_abandoned_read_stops_at_its_next_checkpoint() -> None:
    gate = Gate()
    stopped = threading.Event()
    app = make_app(gate, timeout=0.2)
    router = APIRouter(route_class=ReadRoute)

    @router.get("/long")
    def long(request: Request) -> JSON:
        gate.hold()  # until the test has its 504
        try:
            checkpoint()
        except ApiError as exc:
            assert exc.status == 504
            stopped.set()
            raise
        return JSON({})

    app.include_router(router)
    with TestClient(app) as http:
        assert_error(http.get("/long"), 504, "reads.timeout")
        gate.opened.set()
        assert stopped.wait(WAIT), "the read went on past its budget"


def test_a_large_answer_is_streamed_whole_and_frees_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate()
    with TestClient(make_app(gate, workers=1)) as http:
        answer = http.get("/stream", params={"pieces": 50})
        assert answer.text == "".join(f"piece {n};" for n in range(50))
        assert "content-length" not in answer.headers  # streamed
        assert gate.closed.is_set()
        assert http.get("/quick").status_code == 200
        one = http.get("/stream", params={"pieces": 1})
        assert (one.text, one.headers["content-length"]) == ("piece 0;", "8")  # one piece: a plain answer


def test_a_client_gone_mid_stream_closes_the_producer_and_frees_the_worker() -> None:
    gate = Gate()
    with uvicorn_in_thread(make_app(gate, workers=1)) as url, httpx.Client(base_url=url, timeout=WAIT) as http:
        # Pieces 0 and 1 are made before the answer starts; the next one is asked for right after them
        # and held at the gate: the producer holds the only worker, mid-answer.
        with http.stream("GET", "/stream", params={"pieces": 10, "hold_after": 2}) as answer:
            assert next(answer.iter_raw()).startswith(b"piece 0;")
            gate.wait_entered()
        # The client hung up; once the piece in hand is made, the producer is closed and the slot freed.
        gate.opened.set()
        assert gate.closed.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while (again := http.get("/quick")).status_code == 503:
            assert time.monotonic() < deadline, "the worker was not given back"
        assert again.status_code == 200


def test_reads_pause_at_checkpoints_while_the_intake_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readpool, "WORK_SLICE", 0.0)
    monkeypatch.setattr(readpool, "PAUSE", WAIT)
    busy = threading.Event()
    busy.set()
    asked = threading.Semaphore(0)

    def intake_busy() -> bool:
        asked.release()
        return busy.is_set()

    with TestClient(make_app(Gate(), give_way_to=intake_busy)) as http, ThreadPoolExecutor(1) as background:
        read = background.submit(http.get, "/checkpoints", params={"steps": 3})
        for _ in range(3):  # the read keeps asking: it is paused, not working
            assert asked.acquire(timeout=WAIT)
        assert not read.done()
        busy.clear()  # the burst is over: the read goes on at once
        assert read.result(WAIT).json() == {"steps": 3}


def test_json_array_writes_the_bytes_of_the_whole_document(monkeypatch: pytest.MonkeyPatch) -> None:
    import orjson

    monkeypatch.setattr(readpool, "CHUNK_BYTES", 16)
    items = [{"n": n, "name": "x" * n} for n in range(20)]
    pieces = list(json_array(b'{"items":[', iter(items), b"]}", orjson.dumps))
    assert len(pieces) > 5
    assert b"".join(pieces) == orjson.dumps({"items": items})
    assert b"".join(json_array(b"[", iter([]), b"]", orjson.dumps)) == b"[]"
