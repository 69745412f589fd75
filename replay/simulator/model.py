"""The scheduler model: users, job arrivals and sizes, queueing, sharing, outcomes. Deterministic by seed."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass, field

from replay.simulator.topology import Machine

PROFILES = ("compute", "memory", "idle", "imbalance", "io", "gpu_idle")

#: Job-script lines that the application tagger's rules recognise, and one it does not.
APPS = {
    "gromacs": "srun gmx_mpi mdrun -s topol.tpr -maxh 23",
    "vasp": "srun vasp_std > vasp.out",
    "lammps": "srun lmp -in in.lj",
    "cp2k": "srun cp2k.psmp -i md.inp -o md.out",
    "openfoam": "source $FOAM_BASH  # openfoam\nsrun simpleFoam -parallel",
    "python": "module load python\npython train.py --epochs 40",
    "julia": "julia --project run.jl",
    "matlab": "matlab -batch main",
    "orca": "$ORCA_DIR/orca input.inp",
    "custom": "srun ./solver --config run.cfg",
}
WALLTIMES = (3600, 4 * 3600, 12 * 3600, 24 * 3600)
BACKFILL_WINDOW = 200


@dataclass
class SimJob:
    """One run of a batch job as the scheduler decided it."""

    job_id: int
    array_job_id: int
    user: str
    project: str
    partition: str
    num_nodes: int
    threads_per_node: int
    accelerators_per_node: int
    shared: str
    submit_time: int
    duration: int
    walltime: int
    final_state: str
    profile: str
    app: str
    start_time: int = 0
    hosts: tuple[str, ...] = ()
    hwthreads: dict[str, tuple[int, ...]] = field(default_factory=dict)
    accelerators: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def end_time(self) -> int:
        return self.start_time + self.duration

    def script(self, machine: Machine) -> str:
        return (
            "#!/bin/bash -l\n"
            f"#SBATCH --job-name={self.app}-{self.job_id}\n"
            f"#SBATCH --nodes={self.num_nodes}\n"
            f"#SBATCH --time={self.walltime // 3600:02d}:00:00\n"
            f"#SBATCH --partition={self.partition}\n"
            f"{APPS[self.app]}\n"
        )


@dataclass(frozen=True)
class Started:
    """A job began running at `at`."""

    job: SimJob
    at: int


@dataclass(frozen=True)
class Ended:
    """A job ended at `at` in `state`."""

    job: SimJob
    at: int
    state: str


SchedulerEvent = Started | Ended


class Scheduler:
    """A first-come-first-served batch scheduler with backfilling of what fits, over one machine."""

    def __init__(self, machine: Machine, *, seed: int, start: int, jobs_per_hour: float | None = None,
                 first_job_id: int = 1_000_000, users: int = 40, projects: int = 12) -> None:
        self.machine = machine
        self.rng = random.Random(seed)
        # By default about as many jobs as the machine can run, so it fills up and a queue forms.
        self.jobs_per_hour = jobs_per_hour or max(len(machine.hosts) * 0.25, 1.0)
        self.next_job_id = first_job_id
        self.now = start
        self.next_arrival = start + self._interarrival()
        self.projects = [f"p{self.rng.randrange(100, 999)}{chr(97 + i % 26)}" for i in range(projects)]
        self.users = [(f"u{self.rng.randrange(1000, 9999)}", self.rng.choice(self.projects)) for _ in range(users)]
        self.queue: list[SimJob] = []
        self.running: list[tuple[int, int, SimJob]] = []  # heap of (end_time, job_id, job)
        self.free_nodes: list[str] = list(machine.hosts)
        self.shared_free: dict[str, list[int]] = {}  # host -> free hwthreads on a node shared by jobs
        self.down = set(self.rng.sample(list(machine.hosts), k=max(len(machine.hosts) // 100, 0)))
        self.free_nodes = [h for h in self.free_nodes if h not in self.down]
        self.gpu = bool(machine.accelerators)

    # -- arrivals --------------------------------------------------------------------------------

    def _interarrival(self) -> int:
        return max(1, int(self.rng.expovariate(self.jobs_per_hour / 3600.0)))

    def _new_jobs(self, at: int) -> list[SimJob]:
        user, project = self.rng.choice(self.users)
        count = self.rng.randint(2, 10) if self.rng.random() < 0.1 else 1
        array_id = self.next_job_id if count > 1 else 0
        template = self._request(user, project, at)
        jobs = []
        for _ in range(count):
            job = SimJob(**{**template.__dict__, "job_id": self.next_job_id, "array_job_id": array_id})
            job.hwthreads, job.accelerators = {}, {}
            self.next_job_id += 1
            jobs.append(job)
        return jobs

    def _request(self, user: str, project: str, at: int) -> SimJob:
        rng = self.rng
        limit = max(1, min(64, len(self.machine.hosts) // 4))
        nodes = 1 if rng.random() < 0.55 else min(limit, 2 ** min(int(rng.expovariate(0.7)) + 1, 6))
        shared = nodes == 1 and rng.random() < 0.4
        threads = self.machine.threads_per_node // 2 if shared else self.machine.threads_per_node
        accels = len(self.machine.accelerators) // 2 if shared else len(self.machine.accelerators)
        duration = int(min(max(rng.lognormvariate(math.log(1800), 1.2), 60), 48 * 3600))
        walltime = next((w for w in WALLTIMES if w >= duration * 1.2), WALLTIMES[-1])
        state = self._outcome()
        if state == "timeout" or duration > walltime:
            state, duration = "timeout", walltime
        elif state in ("failed", "cancelled", "out-of-memory", "node_fail"):
            duration = max(60, int(duration * rng.uniform(0.05, 0.9)))
        profiles = PROFILES if self.gpu else PROFILES[:-1]
        profile = rng.choices(profiles, weights=(35, 25, 10, 10, 10, 10)[: len(profiles)])[0]
        return SimJob(
            job_id=0, array_job_id=0, user=user, project=project,
            partition="gpu" if self.gpu else ("singlenode" if nodes == 1 else "multinode"),
            num_nodes=nodes, threads_per_node=threads, accelerators_per_node=accels,
            shared="multi_user" if shared else "none", submit_time=at, duration=duration,
            walltime=walltime, final_state=state, profile=profile, app=rng.choice(list(APPS)),
        )

    def _outcome(self) -> str:
        r = self.rng.random()
        for state, p in (("failed", 0.05), ("cancelled", 0.03), ("out-of-memory", 0.02), ("node_fail", 0.01),
                         ("timeout", 0.05)):
            if r < p:
                return state
            r -= p
        return "completed"

    # -- the clock -------------------------------------------------------------------------------

    def advance(self, until: int) -> list[SchedulerEvent]:
        """Everything that happens up to `until`, in time order."""
        events: list[SchedulerEvent] = []
        while True:
            next_end = self.running[0][0] if self.running else None
            step = min(t for t in (self.next_arrival, next_end, until + 1) if t is not None)
            if step > until:
                break
            self.now = step
            while self.running and self.running[0][0] <= step:
                _, _, job = heapq.heappop(self.running)
                events.append(Ended(job, job.end_time, job.final_state))
                self._release(job)
                if job.final_state == "node_fail":
                    self.queue.append(self._requeued(job))
            if self.next_arrival <= step:
                self.queue.extend(self._new_jobs(step))
                self.next_arrival = step + self._interarrival()
            events.extend(self._schedule(step))
        self.now = until
        return events

    def _requeued(self, job: SimJob) -> SimJob:
        # Same job id, a new run: cc-backend tells them apart by start time.
        again = SimJob(**{**job.__dict__, "final_state": "completed", "submit_time": job.end_time})
        again.hosts, again.hwthreads, again.accelerators = (), {}, {}
        return again

    def _schedule(self, now: int) -> list[SchedulerEvent]:
        started: list[SchedulerEvent] = []
        if not self.free_nodes and not self.shared_free:
            return started
        placed = []
        # Look at the head of the queue only: a scheduler's backfill window, and O(window) per step.
        for index, job in enumerate(itertools.islice(self.queue, BACKFILL_WINDOW)):
            if self._place(job):
                job.start_time = now
                heapq.heappush(self.running, (job.end_time, job.job_id, job))
                started.append(Started(job, now))
                placed.append(index)
        for index in reversed(placed):
            del self.queue[index]
        return started

    def _place(self, job: SimJob) -> bool:
        if job.shared != "none":
            return self._place_shared(job)
        if len(self.free_nodes) < job.num_nodes:
            return False
        hosts = [self.free_nodes.pop(0) for _ in range(job.num_nodes)]
        job.hosts = tuple(hosts)
        job.hwthreads = {h: self.machine.hwthreads for h in hosts}
        job.accelerators = {h: self.machine.accelerators for h in hosts}
        return True

    def _place_shared(self, job: SimJob) -> bool:
        host = next((h for h, free in self.shared_free.items() if len(free) >= job.threads_per_node), None)
        if host is None:
            if not self.free_nodes:
                return False
            host = self.free_nodes.pop(0)
            self.shared_free[host] = list(self.machine.hwthreads)
        free = self.shared_free[host]
        free.sort()
        job.hosts = (host,)
        job.hwthreads = {host: tuple(free[: job.threads_per_node])}
        del free[: job.threads_per_node]
        # The accelerators next to the hardware threads the job got: first or second half of the node.
        half = self.machine.hwthreads.index(job.hwthreads[host][0]) // max(job.threads_per_node, 1)
        k = job.accelerators_per_node
        job.accelerators = {host: self.machine.accelerators[half * k : (half + 1) * k]}
        return True

    def _release(self, job: SimJob) -> None:
        if job.shared == "none":
            self.free_nodes.extend(job.hosts)
            return
        host = job.hosts[0]
        free = self.shared_free[host]
        free.extend(job.hwthreads[host])
        if len(free) == self.machine.threads_per_node:
            del self.shared_free[host]
            self.free_nodes.append(host)

    # -- views -----------------------------------------------------------------------------------

    def running_jobs(self) -> list[SimJob]:
        """Jobs running now, by job id."""
        return sorted((job for _, _, job in self.running), key=lambda j: j.job_id)

    def node_states(self) -> dict[str, str]:
        """Scheduler state of every host as sinfo would report it."""
        states = {h: "IDLE" for h in self.machine.hosts}
        for h in self.down:
            states[h] = "DOWN"
        for job in self.running_jobs():
            for h in job.hosts:
                states[h] = "MIXED" if job.shared != "none" else "ALLOCATED"
        return states
