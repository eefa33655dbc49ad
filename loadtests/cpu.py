"""Server CPU time, read from the operating system, to turn into CPU per request.

The backend is CPU-bound under saturation, so CPU per request is the figure that moves when the
code gets cheaper, even on a noisy shared machine where rps wanders with the host. Counted: user +
system time of the uvicorn master and every process below it (the workers), sampled right before
and right after the load, so start-up (imports, migrations) is left out.
"""

import psutil


def tree_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` and all its descendants."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
