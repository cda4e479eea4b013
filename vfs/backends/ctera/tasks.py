"""Background tasks: submit one, then poll it until it ends (spec §4.8, §5).

Move, copy, delete and undelete are not answered with their outcome: the
portal returns a task reference (``servers/<server>/bgTasks/<n>``) at once
and does the work in the background.  :class:`TaskRunner` submits, polls and
hands back the terminal :class:`TaskOutcome`; what a failure means is decided
by the caller (:func:`~vfs.backends.ctera.errors.task_error`).

Polling:

* End users (and anyone in ``/ServicesPortal``) poll with ``execute
  getTaskStatus``; global administrators in ``/admin`` with
  ``GET /admin/api/servers/<server>/bgTasks/<n>``, as the vendor SDK does
  (the reference portal accepts both, docs/PROTOCOL-CHOICES.md #16).
* The first poll is immediate and the next ones follow after 20 ms, doubling
  to at most 500 ms.  The vendor SDK waits a whole second between polls, but
  a rename is on the critical path of ``mv`` and of every editor's atomic
  save, and most tasks end within milliseconds.  Long tasks (recursive copies)
  settle at two polls a second; the whole wait is bounded by ``timeout``.
* Each poll is idempotent and runs under the retry policy.

Submission is not idempotent (a lost reply may hide a task that runs).  It
is still sent again after a failure that leaves this in doubt (a reset or
timeout once the request was out, a 5xx), because the callers can tell from
the second task's outcome and the portal's state whether the first one did
the work: :attr:`Submission.ambiguous` tells them to look.  Failures that
prove the request had no effect (no connection, ``Retry-After``, a session
expiry answered before execution) are retried without that flag.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from dataclasses import dataclass

import trio

from vfs.backends.base import ProtocolError, Transient, Unreachable
from vfs.backends.ctera.counters import Counters, RequestKind
from vfs.backends.ctera.execute import MAX_XML_REPLY, execute
from vfs.backends.ctera.session import ADMIN, Session
from vfs.backends.retry import RetryHook, RetryLater, RetryPolicy
from wire import ctera_xml
from wire.ctera_xml import Obj, XmlDecodeError

__all__ = ["FIRST_POLL_DELAY", "MAX_POLL_DELAY", "TERMINAL", "Submission", "TaskOutcome", "TaskRunner"]

log = logging.getLogger(__name__)

#: What a submission returns; a prefix (``/``, a URL) is tolerated, as by the SDK.
TASK_REFERENCE = re.compile(r"servers/([^/]*)/bgTasks/([1-9][0-9]*)")
TERMINAL = frozenset({"completed", "failed", "completed with warnings", "stopped", "disabled"})
FIRST_POLL_DELAY = 0.02
MAX_POLL_DELAY = 0.5


@dataclass(frozen=True)
class TaskOutcome:
    """The terminal state of a task: ``status`` and, when it failed, why and where."""

    reference: str
    status: str
    error_type: str | None
    progstring: str
    #: The ``ResourceActionCursor`` as the portal sent it (resubmitted verbatim to resolve a conflict).
    cursor: Obj | None

    @property
    def completed(self) -> bool:
        return self.status == "completed"


@dataclass(frozen=True)
class Submission:
    """A submitted task; ``ambiguous`` when an earlier send of it may have started another one."""

    reference: str
    ambiguous: bool


class TaskRunner:
    """Submits tasks in one session and waits for them."""

    def __init__(
        self,
        session: Session,
        retry: RetryPolicy,
        counters: Counters,
        *,
        timeout: float,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._session = session
        self._retry = retry
        self._counters = counters
        self._timeout = timeout
        self._on_retry = on_retry

    async def run(self, method: str, param: ctera_xml.Value, *, kind: str, what: str) -> tuple[TaskOutcome, bool]:
        """Submit and wait: the outcome, and whether the submission was ambiguous."""
        submission = await self.submit(method, param, kind=kind, what=what)
        return await self.wait(submission.reference, what=what), submission.ambiguous

    async def submit(self, method: str, param: ctera_xml.Value, *, kind: str, what: str) -> Submission:
        """Start a task; its reference (see the module docstring on resending)."""
        ambiguous = False

        async def attempt() -> ctera_xml.Value:
            nonlocal ambiguous
            try:
                return await execute(self._session, method, param, kind=kind, what=what)
            except Transient as exc:
                if not isinstance(exc, (Unreachable, RetryLater)):
                    ambiguous = True
                raise

        reply = await self._retry.run(attempt, on_retry=self._on_retry)
        self._counters.tasks += 1
        try:
            text = ctera_xml.as_str(reply)
        except XmlDecodeError:
            text = None
        found = TASK_REFERENCE.search(text or "")
        if found is None:
            raise ProtocolError(f"{what}: the portal returned no task reference ({str(text)[:120]!r})")
        return Submission(found.group(0), ambiguous)

    async def wait(self, reference: str, *, what: str) -> TaskOutcome:
        """Poll ``reference`` until it is terminal; Transient if that takes longer than the timeout."""
        deadline = trio.current_time() + self._timeout
        delay = FIRST_POLL_DELAY
        while True:
            outcome = await self._retry.run(lambda: self._poll(reference, what), on_retry=self._on_retry)
            if outcome.status in TERMINAL:
                if not outcome.completed:
                    log.info("%s: task %s ended %r: %s %s", what, reference, outcome.status,
                             outcome.error_type, outcome.progstring[:200])
                return outcome
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise Transient(
                    f"{what}: the portal's task {reference} is still {outcome.status!r} after {self._timeout:.0f}s"
                )
            await trio.sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_POLL_DELAY)

    async def _poll(self, reference: str, what: str) -> TaskOutcome:
        """One status request."""
        self._counters.task_polls += 1
        session = self._session
        if session.context == ADMIN:
            found = TASK_REFERENCE.fullmatch(reference)
            assert found is not None  # references come from submit()
            server = urllib.parse.quote(found.group(1), safe="")
            reply = await session.request(
                "GET",
                f"{ADMIN}/api/servers/{server}/bgTasks/{found.group(2)}",
                kind=RequestKind.TASK_STATUS,
                what=what,
                limit=MAX_XML_REPLY,
            )
            try:
                value = ctera_xml.decode(reply.body)
            except XmlDecodeError as exc:
                raise ProtocolError(f"{what}: the task status is not valid XML ({exc})") from None
        else:
            value = await execute(session, "getTaskStatus", reference, kind=RequestKind.TASK_STATUS, what=what)
        return _outcome(reference, value, what)


def _outcome(reference: str, value: ctera_xml.Value, what: str) -> TaskOutcome:
    try:
        task = ctera_xml.as_obj(value)
        if task is None:
            raise XmlDecodeError("the status is null")
        status = ctera_xml.as_str(task.get("status"))
        if not status:
            raise XmlDecodeError("the status has no 'status'")
        return TaskOutcome(
            reference=reference,
            status=status.strip().lower(),
            error_type=(ctera_xml.as_str(task.get("errorType")) or "").strip() or None,
            progstring=ctera_xml.as_str(task.get("progstring")) or "",
            cursor=ctera_xml.as_obj(task.get("cursor")),
        )
    except XmlDecodeError as exc:
        raise ProtocolError(f"{what}: unexpected status of task {reference} ({exc})") from None
