"""Fixed-frequency float32 storage for all series of one cluster and frequency, in time chunks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROW_SLACK = 64  # rows allocated beyond the current count when a chunk is created


class Chunk:
    """`chunk_len` consecutive slots of many rows. `rows` is None when row r lives at data[r] (dense);
    otherwise it lists, sorted, the rows kept after retention or a free (sparse)."""

    __slots__ = ("archived", "data", "number", "rows")

    def __init__(self, number: int, data: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.number = number
        self.data = data
        self.rows = rows
        self.archived = False  # set once its data went to the Parquet archive (data is final by then)

    def row_ids(self) -> np.ndarray:
        """Rows this chunk holds storage for."""
        return np.arange(self.data.shape[0]) if self.rows is None else self.rows

    def positions(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of rows present, their positions in `data`)."""
        if self.rows is None:
            present = rows < self.data.shape[0]
            return present, rows[present]
        pos = np.searchsorted(self.rows, rows)
        pos_clip = np.minimum(pos, len(self.rows) - 1) if len(self.rows) else pos
        present = (pos < len(self.rows)) & (self.rows[pos_clip] == rows) if len(self.rows) else pos < 0
        return present, pos[present]

    def ensure_rows(self, rows: np.ndarray) -> None:
        """Make room for `rows` (growing a dense chunk, or merging rows into a sparse one)."""
        width = self.data.shape[1]
        if self.rows is None:
            need = int(rows.max()) + 1
            if need > self.data.shape[0]:
                grown = np.full((need + ROW_SLACK, width), np.nan, np.float32)
                grown[: self.data.shape[0]] = self.data
                self.data = grown
            return
        missing = np.setdiff1d(rows, self.rows)
        if missing.size:
            merged = np.union1d(self.rows, missing).astype(np.int64)
            data = np.full((len(merged), width), np.nan, np.float32)
            data[np.searchsorted(merged, self.rows)] = self.data
            self.rows, self.data = merged, data

    def keep_only(self, keep: np.ndarray) -> int:
        """Restrict the chunk to the sorted rows `keep`; returns how many stored rows were freed."""
        all_rows = self.row_ids()
        keep = np.intersect1d(all_rows, keep)
        freed = len(all_rows) - len(keep)
        if freed:
            present, pos = self.positions(keep)
            self.data = np.ascontiguousarray(self.data[pos])
            self.rows = keep[present].astype(np.int64)
        return freed

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes + (self.rows.nbytes if self.rows is not None else 0))


@dataclass(slots=True)
class WriteResult:
    accepted: int
    too_old: int


class Block:
    """Rows share one time axis of slots (slot k of row r covers k*f + phase[r] ± f/2), so a row costs
    4 bytes per slot plus 12 bytes of bookkeeping: its phase and the slot of its newest sample."""

    def __init__(self, cluster: str, frequency: int, window_seconds: int) -> None:
        self.cluster = cluster
        self.frequency = frequency
        self.chunk_len = max(1, 3600 // frequency)
        self.window = max(1, window_seconds // frequency)
        self.nrows = 0
        self.phase = np.full(0, -1, np.int32)
        self.last = np.full(0, -1, np.int64)
        self.chunks: dict[int, Chunk] = {}
        self.head = -1  # newest slot written

    def add_rows(self, count: int) -> int:
        """Reserve `count` new rows; returns the first new row id."""
        first = self.nrows
        self.nrows += count
        if self.nrows > len(self.phase):
            cap = max(self.nrows, len(self.phase) * 3 // 2, 1024)
            self.phase = np.concatenate([self.phase, np.full(cap - len(self.phase), -1, np.int32)])
            self.last = np.concatenate([self.last, np.full(cap - len(self.last), -1, np.int64)])
        return first

    def slots_for(self, rows: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Slot of each (row, time), fixing the phase of rows seen for the first time."""
        phase = self.phase[rows]
        unset = phase < 0
        if unset.any():
            new_rows, first = np.unique(rows[unset], return_index=True)
            self.phase[new_rows] = times[unset][first] % self.frequency
            phase = self.phase[rows]
        return (times - phase + self.frequency // 2) // self.frequency

    def oldest_allowed(self, head: int) -> int:
        return head - self.window + 1

    def write(self, rows: np.ndarray, slots: np.ndarray, values: np.ndarray) -> WriteResult:
        """Store samples at their slots; late and repeated samples overwrite, too-old ones are refused."""
        if rows.size == 0:
            return WriteResult(0, 0)
        head = max(self.head, int(slots.max()))
        ok = slots >= self.oldest_allowed(head)
        too_old = int(rows.size - np.count_nonzero(ok))
        if too_old:
            rows, slots, values = rows[ok], slots[ok], values[ok]
            if rows.size == 0:
                return WriteResult(0, too_old)
        self.head = head
        numbers = slots // self.chunk_len
        lo, hi = int(numbers.min()), int(numbers.max())
        if lo == hi:
            self._write_chunk(lo, rows, slots, values)
        else:
            for number in np.unique(numbers):
                sel = numbers == number
                self._write_chunk(int(number), rows[sel], slots[sel], values[sel])
        np.maximum.at(self.last, rows, slots)
        return WriteResult(int(rows.size), too_old)

    def _write_chunk(self, number: int, rows: np.ndarray, slots: np.ndarray, values: np.ndarray) -> None:
        chunk = self.chunks.get(number)
        if chunk is None:
            data = np.full((self.nrows + ROW_SLACK, self.chunk_len), np.nan, np.float32)
            chunk = self.chunks[number] = Chunk(number, data)
        cols = slots - number * self.chunk_len
        if chunk.rows is None:
            if int(rows.max()) >= chunk.data.shape[0]:
                chunk.ensure_rows(rows)
            chunk.data[rows, cols] = values
            return
        chunk.ensure_rows(np.unique(rows))
        _, pos = chunk.positions(rows)
        chunk.data[pos, cols] = values

    def read(self, rows: np.ndarray, first_slot: np.ndarray, count: int) -> np.ndarray:
        """Values of `rows` for `count` slots starting at each row's `first_slot`; NaN where absent."""
        out = np.full((len(rows), count), np.nan, np.float32)
        if count <= 0 or len(rows) == 0:
            return out
        starts = np.unique(first_slot)
        if len(starts) == 1:  # the usual case: all rows share a phase
            self._read_into(out, None, rows, int(starts[0]), count)
            return out
        for start in starts:
            sel = np.nonzero(first_slot == start)[0]
            self._read_into(out, sel, rows[sel], int(start), count)
        return out

    def _read_into(self, out: np.ndarray, out_rows: np.ndarray | None, rows: np.ndarray, start: int,
                   count: int) -> None:
        end = start + count
        contiguous = bool(len(rows) and rows[-1] - rows[0] + 1 == len(rows) and (np.diff(rows) == 1).all())
        top = int(rows.max()) if len(rows) else -1  # dense chunks with more rows than this hold them all
        for number in range(start // self.chunk_len, (end - 1) // self.chunk_len + 1):
            chunk = self.chunks.get(number)
            if chunk is None:
                continue
            c0 = number * self.chunk_len
            a, b = max(start, c0), min(end, c0 + self.chunk_len)
            if contiguous and chunk.rows is None and out_rows is None:
                stop = min(int(rows[-1]) + 1, chunk.data.shape[0])  # slices copy faster than gathers
                if stop > rows[0]:
                    out[: stop - int(rows[0]), a - start : b - start] = chunk.data[int(rows[0]) : stop, a - c0 : b - c0]
                continue
            if chunk.rows is None and out_rows is None and top < chunk.data.shape[0]:
                # Every row is stored at its own index: gather directly, without positions()' masks
                # (a job's node metrics are rows hundreds apart, read from each of 24 hourly chunks).
                out[:, a - start : b - start] = chunk.data[rows, a - c0 : b - c0]
                continue
            present, pos = chunk.positions(rows)
            if not pos.size:
                continue
            target = np.nonzero(present)[0] if out_rows is None else out_rows[present]
            if pos.size == len(rows) and out_rows is None:
                out[:, a - start : b - start] = chunk.data[pos, a - c0 : b - c0]
            else:
                out[target, a - start : b - start] = chunk.data[pos, a - c0 : b - c0]

    def sum_groups(self, starts: np.ndarray, size: int, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(sum, number of present values) per step for groups of `size` consecutive rows beginning at
        `starts` (all rows sharing `first`). Reads chunk slices in place, without gathering the rows:
        the fast path for "hwthread metric at node scope", which otherwise copies every hwthread row."""
        groups = len(starts)
        sums = np.zeros((groups, count), np.float64)
        counts = np.zeros((groups, count), np.int64)
        end = first + count
        stride = np.diff(starts)
        uniform = groups > 1 and (stride == stride[0]).all() and stride[0] >= size
        for number in range(first // self.chunk_len, (end - 1) // self.chunk_len + 1):
            chunk = self.chunks.get(number)
            if chunk is None:
                continue
            c0 = number * self.chunk_len
            a, b = max(first, c0), min(end, c0 + self.chunk_len)
            if chunk.rows is not None or int(starts[-1]) + size > chunk.data.shape[0]:
                for g, r0 in enumerate(starts.tolist()):  # sparse or short chunk: gather per group
                    rows = np.arange(r0, r0 + size)
                    _present, pos = chunk.positions(rows)
                    if pos.size:
                        _accumulate(chunk.data[pos, a - c0 : b - c0][None], sums[g : g + 1, a - first : b - first],
                                    counts[g : g + 1, a - first : b - first])
                continue
            window = chunk.data[:, a - c0 : b - c0]
            if uniform:
                view = np.lib.stride_tricks.as_strided(
                    window[int(starts[0]) :], shape=(groups, size, b - a),
                    strides=(int(stride[0]) * window.strides[0], window.strides[0], window.strides[1]),
                    writeable=False)
                _accumulate(view, sums[:, a - first : b - first], counts[:, a - first : b - first])
            else:
                for g, r0 in enumerate(starts.tolist()):
                    _accumulate(window[r0 : r0 + size][None], sums[g : g + 1, a - first : b - first],
                                counts[g : g + 1, a - first : b - first])
        return sums, counts

    def oldest_slot(self) -> int | None:
        """First slot of the oldest chunk held."""
        return min(self.chunks) * self.chunk_len if self.chunks else None

    def chunk_end(self, number: int) -> int:
        return (number + 1) * self.chunk_len

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.chunks.values()) + self.phase.nbytes + self.last.nbytes


def _accumulate(view: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
    """Add a [groups, rows, steps] view into sums/counts; NaN-aware only where a NaN shows up."""
    total = view.sum(axis=1, dtype=np.float64)
    if not np.isnan(total).any():
        sums += total
        counts += view.shape[1]
        return
    present = ~np.isnan(view)
    sums += np.where(present, view, np.float32(0)).sum(axis=1, dtype=np.float64)
    counts += present.sum(axis=1)
