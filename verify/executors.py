"""Where a sweep's tasks run: here, in local worker processes, or on a dask.distributed cluster.

A sweep splits its grid into independent tasks and gives them to :func:`run_tasks` with a picklable function
(a module-level measure; a plugin loaded from a file is sent by value to a dask cluster). The results come back
as they finish, in any order, and **only the calling process writes them**: a task whose worker dies is either
re-run by dask on another worker or, with local processes, reported as :class:`WorkerDied` after every finished
task's rows are saved, so a re-run resumes with no row lost or written twice.

dask is an optional extra (``pip install "tfconstruct[scale]"``); it is imported only when a scheduler is given.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import re
import sys
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Callable, Iterator, Sequence, TypeVar

Task = TypeVar("Task")
SCHEDULER_TIMEOUT = "10s"  # how long to try reaching a scheduler


class WorkerDied(RuntimeError):
    """A local worker process ended without returning its task (killed, out of memory); finished tasks are saved."""


class SchedulerUnavailable(RuntimeError):
    """``--scheduler`` was given but dask.distributed is missing or the scheduler cannot be reached."""


class TaskFailed(RuntimeError):
    """A task raised on the cluster (the message names the error); the rows of finished tasks are saved."""


SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ucx)://[^\s:/]+:(\d{1,5})$")


def scheduler_problem(address: str) -> str | None:
    """Why ``address`` is not a dask scheduler address (``tcp://HOST:PORT``), or None."""
    match = SCHEDULER_ADDRESS.match(address)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        return f"--scheduler must be a dask scheduler address tcp://HOST:PORT (port 1..65535), got {address!r}"
    return None


def run_pickled(payload: bytes, task: Any) -> Any:
    """Run a function shipped by value (runs on a dask worker, which imports only tfconstruct)."""
    import cloudpickle

    return cloudpickle.loads(payload)(task)


def run_tasks(
    tasks: Sequence[Task],
    function: Callable[[Task], Any],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    by_value: Sequence[str] = (),
) -> Iterator[tuple[Task, Any]]:
    """``(task, function(task))`` for every task, as each finishes.

    ``workers > 1`` runs them in that many local processes; ``scheduler`` (a dask.distributed address such as
    ``tcp://10.0.0.5:8786``) sends them to a cluster, with the modules named in ``by_value`` (plugins the workers
    cannot import) pickled by value. An exception raised by ``function`` is raised here.

    Raises:
        WorkerDied: when a local worker process dies.
        SchedulerUnavailable: when the scheduler cannot be used.
    """
    if scheduler is not None:
        yield from _on_cluster(tasks, function, scheduler, by_value)
    elif workers > 1 and len(tasks) > 1:
        yield from _in_processes(tasks, function, workers)
    else:
        for task in tasks:
            yield task, function(task)


def _in_processes(tasks: Sequence[Task], function: Callable[[Task], Any], workers: int) -> Iterator[tuple[Task, Any]]:
    # fork keeps the parent's imports (a plugin loaded from a file) and its torch thread setting
    context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(function, task): task for task in tasks}
        try:
            for future in concurrent.futures.as_completed(futures):
                yield futures[future], future.result()
        except BrokenProcessPool as err:
            raise WorkerDied(f"a worker process died ({err}); the rows of finished tasks are saved") from None
        finally:
            for future in futures:
                future.cancel()


def _on_cluster(
    tasks: Sequence[Task], function: Callable[[Task], Any], address: str, by_value: Sequence[str]
) -> Iterator[tuple[Task, Any]]:
    try:
        import cloudpickle
        from distributed import Client, as_completed
    except ImportError:
        raise SchedulerUnavailable(
            '--scheduler needs dask.distributed: pip install "tfconstruct[scale]" (from a checkout: pip install -e ".[scale]")'
        ) from None
    problem = scheduler_problem(address)
    if problem:
        raise ValueError(problem)
    for name in by_value:
        if name in sys.modules:
            cloudpickle.register_pickle_by_value(sys.modules[name])
    runner = partial(run_pickled, cloudpickle.dumps(function))  # the measure itself travels by value, not by name
    try:
        client = Client(address, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise SchedulerUnavailable(f"cannot reach the dask scheduler at {address!r}: {err}") from None
    with client:
        futures = client.map(runner, list(tasks), pure=False)
        owner = {future.key: task for future, task in zip(futures, tasks)}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as err:  # the task's error, raised on a worker, reported as one line
                raise TaskFailed(f"a task failed on the cluster: {type(err).__name__}: {err}") from err
            yield owner[future.key], result
