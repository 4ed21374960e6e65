"""Domain errors: what went wrong, in terms a caller can act on.

The transport maps each class to one gRPC status code, in one place
(omnistock.server.transport.errors). Nothing here knows about gRPC.

    DomainError
    ├── InvalidArgument        bad input: one FieldViolation per problem
    ├── NotFound               an id that names nothing
    ├── AlreadyExists          the request would make something that exists
    └── FailedPrecondition     the request is valid but the state forbids it
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One problem with one field, addressed as a path such as ``locations[2].time_zone``."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error the domain raises on purpose.

    ``reason`` is a stable UPPER_SNAKE identifier that callers may switch on.
    """

    reason: str = "DOMAIN_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(DomainError):
    """``omitted``: violations found beyond those listed, when a request has too many to
    keep (a snapshot of a million bad records keeps the first few and counts the rest).
    """

    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        violations: Iterable[FieldViolation],
        *,
        message: str | None = None,
        reason: str | None = None,
        omitted: int = 0,
    ) -> None:
        self.violations = list(violations)
        self.omitted = omitted
        if message is None:
            first = self.violations[0] if self.violations else None
            message = f"{first.field}: {first.description}" if first else "invalid request"
            more = len(self.violations) - 1 + omitted
            if more > 0:
                message += f" (and {more:,} more)"
        super().__init__(message, reason=reason)


class NotFound(DomainError):
    reason = "NOT_FOUND"

    def __init__(self, resource_type: str, names: Iterable[str], *, reason: str) -> None:
        self.resource_type = resource_type
        self.names = list(names)
        shown = ", ".join(self.names[:5]) + (" ..." if len(self.names) > 5 else "")
        super().__init__(f"{resource_type} not found: {shown}", reason=reason)


class AlreadyExists(DomainError):
    reason = "ALREADY_EXISTS"

    def __init__(self, resource_type: str, name: str, message: str, *, reason: str) -> None:
        self.resource_type = resource_type
        self.names = [name]
        super().__init__(message, reason=reason)


class FailedPrecondition(DomainError):
    """``violations`` are (type, subject, description) triples, as google.rpc's
    PreconditionFailure carries them."""

    reason = "FAILED_PRECONDITION"
    violations: list[tuple[str, str, str]] = []  # noqa: RUF012 - replaced, never mutated


@dataclass
class Violations:
    """Collects field violations, then raises them together.

    >>> v = Violations()
    >>> v.check(False, "sku", "must not be empty")
    >>> v.raise_if_any()
    Traceback (most recent call last):
    ...
    omnistock.server.domain.errors.InvalidArgument: sku: must not be empty
    """

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def check(self, ok: bool, field_path: str, description: str) -> None:
        if not ok:
            self.add(field_path, description)

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)
