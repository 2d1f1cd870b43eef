"""``catalyst serve --workers N``: every core of one machine, one address.

* :mod:`~catalyst_mcp.workers.listeners`: the address, bound once by the supervisor;
* :mod:`~catalyst_mcp.workers.supervisor`: starts, restarts and stops the worker processes;
* :mod:`~catalyst_mcp.workers.child`: one worker, a full gateway on the supervisor's sockets;
* :mod:`~catalyst_mcp.workers.control`: the line between the supervisor and a worker;
* :mod:`~catalyst_mcp.workers.serve`: the command's glue (warnings, the start-up line).

Why this shape, and what it costs: docs/decisions/027-workers-and-deployment.md.
"""
