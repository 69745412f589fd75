"""Child process of the crash test: ingests at a steady rate and acknowledges each batch on stdout."""

from __future__ import annotations

import sys
import time

from metricstore.settings import MetricStoreSettings
from metricstore.store import MetricStore

HOSTS = 5


def settings(directory: str) -> MetricStoreSettings:
    return MetricStoreSettings.model_validate({
        "checkpoints": {"directory": directory, "interval": "1s"},
        "metrics": {"seq": {"frequency": 1, "aggregation": "sum"}},
        "flush-interval": "1s",
    })


def main() -> None:
    directory, base = sys.argv[1], int(sys.argv[2])
    store = MetricStore(settings(directory), [])
    store.start()
    k = 0
    while True:
        body = "".join(f"seq,cluster=c,hostname=h{i} value={k} {base + k}\n" for i in range(HOSTS))
        report = store.ingest_lines(body.encode())
        assert report.accepted == HOSTS, report
        print(f"{k} {time.time():.3f}", flush=True)
        k += 1
        time.sleep(0.01)


if __name__ == "__main__":
    main()
