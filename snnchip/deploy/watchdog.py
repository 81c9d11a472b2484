"""A watchdog on a Lava run: it finishes within a time limit, or its processes are stopped and it says so.

Lava (0.10) runs every process model in an OS process of its own and waits for them on shared-memory channels with
no timeout: a process model that never answers leaves `run()` (and `stop()`) blocked for ever, holding its
shared-memory segments. `run_steps` compiles and creates the processes, starts the run without blocking and
polls the runtime's service channels (`CspRecvPort.probe`) until every runtime service has answered or
`timeout_s` has passed. On time-out it ends every Lava process of the run (`SystemProcess.terminate`, then
`kill`), shuts its SharedMemoryManager down (which unlinks the segments) and raises `LavaTimeout`, a one-line
error. It reaches into the runtime's private `_messaging_infrastructure` and `_watchdog_manager` (lava-nc 0.10,
the last release: there is no public way to end a run that does not answer).
"""
from __future__ import annotations

import multiprocessing
import time

from ..errors import LavaTimeout
from ..stack import require_lava

require_lava()

from lava.magma.core.run_conditions import RunSteps  # noqa: E402

DEFAULT_TIMEOUT_S = 600.0         # compile, start and every step of one snn-deploy run
POLL_S = 0.01
KILL_WAIT_S = 5.0


def run_steps(process, num_steps: int, run_cfg, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Run `process`'s network for `num_steps` steps, as `process.run(RunSteps(num_steps), run_cfg)`, and
    raise LavaTimeout, after stopping the run's processes, when the steps have not finished `timeout_s` seconds
    after they started (compiling and creating the processes come first, in this thread: they wait on nothing).
    Otherwise the caller reads its sinks and calls `process.stop()`."""
    if not timeout_s > 0:
        raise LavaTimeout(f"the Lava run's time limit must be > 0 s, got {timeout_s}")
    if process.runtime is None:
        process.create_runtime(run_cfg=run_cfg)
    runtime = process.runtime
    runtime.start(RunSteps(num_steps=num_steps, blocking=False))
    deadline = time.monotonic() + timeout_s
    while not all(port.probe() for port in runtime.service_to_runtime):
        if time.monotonic() >= deadline:
            _kill(runtime)
            raise LavaTimeout(f"the Lava run of {num_steps} steps did not finish within {timeout_s:g} s; the "
                              f"watchdog stopped its processes")
        time.sleep(POLL_S)
    runtime.wait()                   # collects the answers (raises if a process model failed)


def _kill(runtime) -> None:
    """End every OS process of a Lava run that does not answer and free its shared memory."""
    infra = runtime._messaging_infrastructure
    for actor in infra.actors:
        if actor.is_alive():
            actor.terminate()
    for actor in infra.actors:
        multiprocessing.Process.join(actor, KILL_WAIT_S)      # SystemProcess.join takes no time limit
        if actor.is_alive():
            actor.kill()
            multiprocessing.Process.join(actor)
    infra.stop()                     # joins the (ended) actors and shuts the SharedMemoryManager down
    runtime._watchdog_manager.stop()
    runtime._is_running = runtime._is_started = False
