"""The engine: runs a workflow's steps in order, through the gateway's one call pipeline.

Every step is a ``tools/call`` made by :class:`StepCaller` under the run's identity, so RBAC,
key scopes, per-user secrets, rate limits and audit apply to each step as they would to the
caller calling that tool. A step

* runs only if its ``when`` is true (else it is ``skipped``);
* is called once, or once per item of its ``foreach`` list (at most ``concurrency`` at once);
* is a ``parallel`` group whose steps run together (the first failure cancels the others);
* gets ``timeout`` seconds per attempt and ``retry.attempts`` attempts with exponential backoff
  (a tool error, an upstream failure and a time-out are retried; a refusal, bad arguments or
  an unknown tool are not: trying again cannot help);
* when it still fails: ``on_error: fail`` ends the run, ``continue`` records the failure and
  goes on, ``compensate`` runs the ``compensate`` call of every completed step, newest first,
  then ends the run.

Progress goes to a :class:`Journal` (the store): every step's start and end. A step that is not
``retry_safe`` has its end committed before the run goes on (so a resumed run never calls it
again; the last step's, with the run's end); a ``retry_safe`` step's end is written behind, in
the next batch (decision 022). A step's start is only queued: written behind, or committed with
its own end if that comes first.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import (
    AccessError,
    CatalystError,
    InvalidParams,
    MethodNotFound,
    UpstreamRejected,
)
from catalyst_mcp.orchestration.workflows.plan import StepPlan, WorkflowPlan
from catalyst_mcp.orchestration.workflows.runstate import RunState, StepState
from catalyst_mcp.orchestration.workflows.templating import TemplateError, truthy
from catalyst_mcp.storage.models import utcnow

__all__ = [
    "CALL_STACK",
    "Engine",
    "Journal",
    "RunFailed",
    "StepCaller",
    "result_value",
]

# the workflows a call is running inside, outermost first (the recursion guard reads it)
CALL_STACK: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "catalyst_workflow_stack", default=()
)

# the plan of the run this task works on (for compensations)
_PLAN: contextvars.ContextVar[WorkflowPlan] = contextvars.ContextVar("catalyst_workflow_plan")

StepCaller = Callable[[str, dict[str, Any], Identity], Awaitable[dict[str, Any]]]


class Journal(Protocol):
    """Where the engine reports progress (the store's writer)."""

    async def step(self, run: RunState, key: str, state: StepState, *, durable: bool) -> None:
        """Record ``state`` of step ``key``; with ``durable``, return once it is committed."""


class RunFailed(Exception):
    """A step failed and its ``on_error`` ends the run."""

    def __init__(self, step: str, message: str, *, compensated: list[str] | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.compensated = compensated or []

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"step": self.step, "message": self.message}
        if self.compensated:
            error["compensated"] = self.compensated
        return error


class _StepError(Exception):
    """One attempt of a step failed; ``retryable`` says whether another may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def result_value(result: dict[str, Any]) -> Any:
    """A tool result as later steps see it: its ``structuredContent``, else its text (parsed
    as JSON when it is JSON), else None; several text blocks are a list of their values."""
    structured = result.get("structuredContent")
    if structured is not None:
        return structured
    texts = [
        block.get("text")
        for block in result.get("content") or ()
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    values = [_maybe_json(t) for t in texts if isinstance(t, str)]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in _JSON_STARTS:
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return text
    return text


_JSON_STARTS = frozenset('{["-0123456789tfn')


def _error_text(result: dict[str, Any]) -> str:
    value = result_value(result)
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:500] or "the tool reported an error"


class Engine:
    """Runs plans; one engine serves every run of a gateway."""

    def __init__(self, call: StepCaller, journal: Journal) -> None:
        self.call = call
        self.journal = journal

    async def execute(self, plan: WorkflowPlan, run: RunState) -> None:
        """Run (or resume) ``run`` to its end: ``run.status`` becomes completed or failed, with
        ``output`` or ``error``. Cancellation propagates (the caller records it).

        The caller commits the run's end (durably, unless every step is ``retry_safe``) as
        the next thing it does: the end of a last step that completed is only queued, to be
        committed with it."""
        data = self._data(run)
        stack = CALL_STACK.get()
        token = CALL_STACK.set((*stack, plan.name))
        plan_token = _PLAN.set(plan)
        try:
            last = plan.steps[-1]
            for step in plan.steps:
                await self._step(step, run, data, last=step is last)
            run.output = self._output(plan, run, data)
            run.status = "completed"
        except RunFailed as failure:
            run.status = "failed"
            run.error = failure.to_json()
        finally:
            _PLAN.reset(plan_token)
            CALL_STACK.reset(token)
        run.finished_at = run.updated_at = utcnow()

    def _data(self, run: RunState) -> dict[str, Any]:
        steps = {key: state.view() for key, state in run.steps.items() if "[" not in key}
        return {
            "inputs": run.inputs,
            "steps": steps,
            "run": {"id": run.id, "workflow": run.workflow},
            "caller": {"subject": run.identity.subject},
        }

    def _output(self, plan: WorkflowPlan, run: RunState, data: dict[str, Any]) -> Any:
        if plan.output is not None:
            try:
                return plan.output.render(data)
            except TemplateError as error:
                raise RunFailed("output", str(error)) from error
        last = plan.steps[-1].id
        return data["steps"].get(last, {}).get("result")

    # ---- one step ----------------------------------------------------------------------------

    async def _step(
        self, step: StepPlan, run: RunState, data: dict[str, Any], *, last: bool = False
    ) -> None:
        done = run.steps.get(step.id)
        if done is not None and done.status != "running":
            data["steps"][step.id] = done.view()  # resumed: finished before
            return
        if step.when is not None and not truthy(self._render(step, step.when, data)):
            await self._record(run, step, StepState("skipped"), data, durable=False)
            return
        if step.parallel:
            await self._parallel(step, run, data)
            return
        if step.foreach is not None:
            await self._foreach(step, run, data)
            return
        arguments = self._arguments(step, data)
        started = utcnow()
        # in the run's steps too: if the run ends before this step does, the step ends with it
        running = run.steps[step.id] = StepState("running", started_at=started)
        await self.journal.step(run, step.id, running, durable=False)
        try:
            state = await self._attempts(step, arguments, run.identity)
        except _StepError as error:
            state = StepState("failed", is_error=True, error=error.message)
            state.started_at, state.finished_at = started, utcnow()
            await self._record(run, step, state, data, durable=not step.retry_safe)
            await self._failed(step, run, data, error.message)
            return
        state.started_at = started
        # the last step's end is committed with the run's end, which the caller commits next
        # with nothing run in between: one commit fewer per run
        await self._record(run, step, state, data, durable=not (step.retry_safe or last))

    async def _record(
        self,
        run: RunState,
        step: StepPlan,
        state: StepState,
        data: dict[str, Any],
        *,
        durable: bool,
        key: str | None = None,
    ) -> None:
        key = key or step.id
        state.finished_at = state.finished_at or utcnow()
        run.steps[key] = state
        if "[" not in key:
            data["steps"][key] = state.view()
        await self.journal.step(run, key, state, durable=durable)

    def _render(self, step: StepPlan, template: Any, data: dict[str, Any]) -> Any:
        try:
            return template.render(data)
        except TemplateError as error:
            raise RunFailed(step.id, str(error)) from error

    def _arguments(self, step: StepPlan, data: dict[str, Any]) -> dict[str, Any]:
        arguments = self._render(step, step.arguments, data)
        if not isinstance(arguments, dict):
            raise RunFailed(step.id, "arguments must render to an object")
        return arguments

    async def _attempts(
        self, step: StepPlan, arguments: dict[str, Any], identity: Identity
    ) -> StepState:
        assert step.tool is not None
        retry = step.retry
        delay = retry.backoff_seconds
        for attempt in range(1, retry.attempts + 1):
            try:
                result = await self._attempt(step, step.tool, arguments, identity)
            except _StepError as error:
                if not error.retryable or attempt == retry.attempts:
                    raise _StepError(
                        f"{error.message}"
                        + (f" (after {attempt} attempts)" if attempt > 1 else ""),
                        retryable=False,
                    ) from error
                await asyncio.sleep(delay)
                delay = min(delay * retry.multiplier, retry.max_backoff_seconds)
                continue
            return StepState("completed", attempts=attempt, result=result_value(result))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, step: StepPlan, tool: str, arguments: dict[str, Any], identity: Identity
    ) -> dict[str, Any]:
        try:
            if step.timeout is None:
                result = await self.call(tool, arguments, identity)
            else:
                async with asyncio.timeout(step.timeout):
                    result = await self.call(tool, arguments, identity)
        except TimeoutError as error:
            raise _StepError(
                f"{tool} did not answer within {step.timeout:g}s", retryable=True
            ) from error
        except AccessError as error:  # refused: the same caller will be refused again
            raise _StepError(f"{tool}: {error.message}", retryable=False) from error
        except (InvalidParams, MethodNotFound) as error:
            raise _StepError(f"{tool}: {error.message}", retryable=False) from error
        except UpstreamRejected as error:
            raise _StepError(f"{tool}: {error.message}", retryable=False) from error
        except CatalystError as error:
            raise _StepError(f"{tool}: {error.message}", retryable=True) from error
        if result.get("isError") is True:
            raise _StepError(f"{tool} failed: {_error_text(result)}", retryable=True)
        if result.get("resultType") not in (None, "complete"):
            raise _StepError(
                f"{tool} answered {result.get('resultType')!r}: a workflow step needs a "
                "complete result (the tool asks for input or runs as a task)",
                retryable=False,
            )
        return result

    # ---- groups ------------------------------------------------------------------------------

    async def _parallel(self, step: StepPlan, run: RunState, data: dict[str, Any]) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for child in step.parallel:
                    group.create_task(self._step(child, run, data))
        except* RunFailed as failures:
            raise failures.exceptions[0] from None
        results = {
            child.id: data["steps"].get(child.id, {}).get("result") for child in step.parallel
        }
        await self._record(run, step, StepState("completed", result=results), data, durable=False)

    async def _foreach(self, step: StepPlan, run: RunState, data: dict[str, Any]) -> None:
        assert step.foreach is not None
        items = self._render(step, step.foreach, data)
        if not isinstance(items, list):
            await self._failed_now(step, run, data, "foreach must give a list")
            return
        results: list[Any] = [None] * len(items)
        errors: list[str] = []
        gate = asyncio.Semaphore(step.concurrency)
        started = utcnow()

        async def one(index: int, item: Any) -> None:
            key = f"{step.id}[{index}]"
            done = run.steps.get(key)
            if done is not None and done.status == "completed":
                results[index] = done.result
                return
            async with gate:
                scope = {**data, "item": item, "index": index}
                arguments = self._arguments(step, scope)
                try:
                    state = await self._attempts(step, arguments, run.identity)
                except _StepError as error:
                    failed = StepState("failed", is_error=True, error=error.message)
                    await self._record(run, step, failed, data, durable=False, key=key)
                    if step.on_error == "continue":
                        errors.append(f"[{index}] {error.message}")
                        return
                    raise RunFailed(step.id, f"item {index}: {error.message}") from error
                results[index] = state.result
                await self._record(run, step, state, data, durable=not step.retry_safe, key=key)

        failure: RunFailed | None = None
        try:
            async with asyncio.TaskGroup() as group:
                for index, item in enumerate(items):
                    group.create_task(one(index, item))
        except* RunFailed as failures:
            first = failures.exceptions[0]
            assert isinstance(first, RunFailed)
            failure = first
        if failure is not None:
            await self._failed(step, run, data, failure.message)
            return
        state = StepState(
            "completed",
            result=results,
            is_error=bool(errors),
            error="; ".join(errors) or None,
            started_at=started,
        )
        await self._record(run, step, state, data, durable=not step.retry_safe)

    # ---- failure -----------------------------------------------------------------------------

    async def _failed_now(
        self, step: StepPlan, run: RunState, data: dict[str, Any], message: str
    ) -> None:
        await self._record(
            run, step, StepState("failed", is_error=True, error=message), data, durable=False
        )
        await self._failed(step, run, data, message)

    async def _failed(
        self, step: StepPlan, run: RunState, data: dict[str, Any], message: str
    ) -> None:
        """Apply ``on_error`` of a step that failed for good (its state is recorded)."""
        if step.on_error == "continue":
            return
        if step.on_error == "compensate":
            undone = await self._compensate(run, data)
            raise RunFailed(step.id, message, compensated=undone)
        raise RunFailed(step.id, message)

    async def _compensate(self, run: RunState, data: dict[str, Any]) -> list[str]:
        """Run the compensation of every completed step, the latest first; their names."""
        plans = {s.id: s for top in _PLAN.get().steps for s in top.walk()}
        done: list[str] = []
        finished = sorted(
            (
                (state.finished_at, key)
                for key, state in run.steps.items()
                if state.status == "completed" and key in plans and plans[key].compensate
            ),
            reverse=True,
        )
        for _, key in finished:
            step = plans[key]
            assert step.compensate is not None
            tool, template = step.compensate
            comp_key = f"{key}.compensate"
            if run.steps.get(comp_key, StepState("running")).status == "completed":
                done.append(key)
                continue
            try:
                arguments = template.render(data)
                result = await self._attempt(step, tool, arguments, run.identity)
                state = StepState("completed", attempts=1, result=result_value(result))
                done.append(key)
            except (_StepError, TemplateError) as error:
                state = StepState("failed", is_error=True, error=str(error))
            await self._record(run, step, state, data, durable=True, key=comp_key)
        return done
