from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecidedBy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECIDED_BY_UNSPECIFIED: _ClassVar[DecidedBy]
    DECIDED_BY_STORE: _ClassVar[DecidedBy]
    DECIDED_BY_FALLBACK: _ClassVar[DecidedBy]

class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[Reason]
    REASON_OK: _ClassVar[Reason]
    REASON_UNKNOWN_CUSTOMER: _ClassVar[Reason]
    REASON_UNKNOWN_FEATURE: _ClassVar[Reason]
    REASON_FEATURE_NOT_ENTITLED: _ClassVar[Reason]
    REASON_MODEL_NOT_ALLOWED: _ClassVar[Reason]
    REASON_INSUFFICIENT_CREDITS: _ClassVar[Reason]
    REASON_BUDGET_EXCEEDED: _ClassVar[Reason]
    REASON_SESSION_BUDGET_EXCEEDED: _ClassVar[Reason]
    REASON_QUOTA_EXCEEDED: _ClassVar[Reason]
    REASON_RATE_LIMITED: _ClassVar[Reason]
    REASON_STORE_UNAVAILABLE: _ClassVar[Reason]

class CommitResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMIT_RESULT_UNSPECIFIED: _ClassVar[CommitResult]
    COMMIT_RESULT_COMMITTED: _ClassVar[CommitResult]
    COMMIT_RESULT_ALREADY_COMMITTED: _ClassVar[CommitResult]
    COMMIT_RESULT_ALREADY_RELEASED: _ClassVar[CommitResult]

class ReleaseResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELEASE_RESULT_UNSPECIFIED: _ClassVar[ReleaseResult]
    RELEASE_RESULT_RELEASED: _ClassVar[ReleaseResult]
    RELEASE_RESULT_ALREADY_RELEASED: _ClassVar[ReleaseResult]
    RELEASE_RESULT_ALREADY_COMMITTED: _ClassVar[ReleaseResult]
    RELEASE_RESULT_EXPIRED: _ClassVar[ReleaseResult]

class Period(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERIOD_UNSPECIFIED: _ClassVar[Period]
    PERIOD_DAY: _ClassVar[Period]
    PERIOD_MONTH: _ClassVar[Period]
    PERIOD_LIFETIME: _ClassVar[Period]

class BudgetMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUDGET_MODE_UNSPECIFIED: _ClassVar[BudgetMode]
    BUDGET_MODE_HARD: _ClassVar[BudgetMode]
    BUDGET_MODE_SOFT: _ClassVar[BudgetMode]

class UpsertResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPSERT_RESULT_UNSPECIFIED: _ClassVar[UpsertResult]
    UPSERT_RESULT_UPSERTED: _ClassVar[UpsertResult]
    UPSERT_RESULT_UNCHANGED: _ClassVar[UpsertResult]

class SetBudgetResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SET_BUDGET_RESULT_UNSPECIFIED: _ClassVar[SetBudgetResult]
    SET_BUDGET_RESULT_SET: _ClassVar[SetBudgetResult]
    SET_BUDGET_RESULT_UNCHANGED: _ClassVar[SetBudgetResult]

class GrantResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANT_RESULT_UNSPECIFIED: _ClassVar[GrantResult]
    GRANT_RESULT_GRANTED: _ClassVar[GrantResult]
    GRANT_RESULT_ALREADY_GRANTED: _ClassVar[GrantResult]

class IssueProxyKeyResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ISSUE_PROXY_KEY_RESULT_UNSPECIFIED: _ClassVar[IssueProxyKeyResult]
    ISSUE_PROXY_KEY_RESULT_ISSUED: _ClassVar[IssueProxyKeyResult]
    ISSUE_PROXY_KEY_RESULT_ALREADY_ISSUED: _ClassVar[IssueProxyKeyResult]

class RevokeProxyKeyResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOKE_PROXY_KEY_RESULT_UNSPECIFIED: _ClassVar[RevokeProxyKeyResult]
    REVOKE_PROXY_KEY_RESULT_REVOKED: _ClassVar[RevokeProxyKeyResult]
    REVOKE_PROXY_KEY_RESULT_ALREADY_REVOKED: _ClassVar[RevokeProxyKeyResult]

class TokenRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_ROLE_UNSPECIFIED: _ClassVar[TokenRole]
    TOKEN_ROLE_VIEWER: _ClassVar[TokenRole]
    TOKEN_ROLE_ADMIN: _ClassVar[TokenRole]

class IssueTokenResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ISSUE_TOKEN_RESULT_UNSPECIFIED: _ClassVar[IssueTokenResult]
    ISSUE_TOKEN_RESULT_ISSUED: _ClassVar[IssueTokenResult]
    ISSUE_TOKEN_RESULT_ALREADY_ISSUED: _ClassVar[IssueTokenResult]

class RevokeTokenResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOKE_TOKEN_RESULT_UNSPECIFIED: _ClassVar[RevokeTokenResult]
    REVOKE_TOKEN_RESULT_REVOKED: _ClassVar[RevokeTokenResult]
    REVOKE_TOKEN_RESULT_ALREADY_REVOKED: _ClassVar[RevokeTokenResult]

class AlertTarget(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_TARGET_UNSPECIFIED: _ClassVar[AlertTarget]
    ALERT_TARGET_BUDGET: _ClassVar[AlertTarget]
    ALERT_TARGET_BALANCE: _ClassVar[AlertTarget]

class AlertSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_SOURCE_UNSPECIFIED: _ClassVar[AlertSource]
    ALERT_SOURCE_CUSTOMER: _ClassVar[AlertSource]
    ALERT_SOURCE_PLAN: _ClassVar[AlertSource]

class SetAlertsResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SET_ALERTS_RESULT_UNSPECIFIED: _ClassVar[SetAlertsResult]
    SET_ALERTS_RESULT_SET: _ClassVar[SetAlertsResult]
    SET_ALERTS_RESULT_REMOVED: _ClassVar[SetAlertsResult]
    SET_ALERTS_RESULT_UNCHANGED: _ClassVar[SetAlertsResult]

class CorrectionResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CORRECTION_RESULT_UNSPECIFIED: _ClassVar[CorrectionResult]
    CORRECTION_RESULT_REFUNDED: _ClassVar[CorrectionResult]
    CORRECTION_RESULT_ADJUSTED: _ClassVar[CorrectionResult]
    CORRECTION_RESULT_ALREADY_DONE: _ClassVar[CorrectionResult]

class SubmitProposalResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBMIT_PROPOSAL_RESULT_UNSPECIFIED: _ClassVar[SubmitProposalResult]
    SUBMIT_PROPOSAL_RESULT_PROPOSED: _ClassVar[SubmitProposalResult]
    SUBMIT_PROPOSAL_RESULT_ALREADY_PROPOSED: _ClassVar[SubmitProposalResult]

class CatalogDecisionResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATALOG_DECISION_RESULT_UNSPECIFIED: _ClassVar[CatalogDecisionResult]
    CATALOG_DECISION_RESULT_APPROVED: _ClassVar[CatalogDecisionResult]
    CATALOG_DECISION_RESULT_ROLLED_BACK: _ClassVar[CatalogDecisionResult]
    CATALOG_DECISION_RESULT_ALREADY_DONE: _ClassVar[CatalogDecisionResult]
DECIDED_BY_UNSPECIFIED: DecidedBy
DECIDED_BY_STORE: DecidedBy
DECIDED_BY_FALLBACK: DecidedBy
REASON_UNSPECIFIED: Reason
REASON_OK: Reason
REASON_UNKNOWN_CUSTOMER: Reason
REASON_UNKNOWN_FEATURE: Reason
REASON_FEATURE_NOT_ENTITLED: Reason
REASON_MODEL_NOT_ALLOWED: Reason
REASON_INSUFFICIENT_CREDITS: Reason
REASON_BUDGET_EXCEEDED: Reason
REASON_SESSION_BUDGET_EXCEEDED: Reason
REASON_QUOTA_EXCEEDED: Reason
REASON_RATE_LIMITED: Reason
REASON_STORE_UNAVAILABLE: Reason
COMMIT_RESULT_UNSPECIFIED: CommitResult
COMMIT_RESULT_COMMITTED: CommitResult
COMMIT_RESULT_ALREADY_COMMITTED: CommitResult
COMMIT_RESULT_ALREADY_RELEASED: CommitResult
RELEASE_RESULT_UNSPECIFIED: ReleaseResult
RELEASE_RESULT_RELEASED: ReleaseResult
RELEASE_RESULT_ALREADY_RELEASED: ReleaseResult
RELEASE_RESULT_ALREADY_COMMITTED: ReleaseResult
RELEASE_RESULT_EXPIRED: ReleaseResult
PERIOD_UNSPECIFIED: Period
PERIOD_DAY: Period
PERIOD_MONTH: Period
PERIOD_LIFETIME: Period
BUDGET_MODE_UNSPECIFIED: BudgetMode
BUDGET_MODE_HARD: BudgetMode
BUDGET_MODE_SOFT: BudgetMode
UPSERT_RESULT_UNSPECIFIED: UpsertResult
UPSERT_RESULT_UPSERTED: UpsertResult
UPSERT_RESULT_UNCHANGED: UpsertResult
SET_BUDGET_RESULT_UNSPECIFIED: SetBudgetResult
SET_BUDGET_RESULT_SET: SetBudgetResult
SET_BUDGET_RESULT_UNCHANGED: SetBudgetResult
GRANT_RESULT_UNSPECIFIED: GrantResult
GRANT_RESULT_GRANTED: GrantResult
GRANT_RESULT_ALREADY_GRANTED: GrantResult
ISSUE_PROXY_KEY_RESULT_UNSPECIFIED: IssueProxyKeyResult
ISSUE_PROXY_KEY_RESULT_ISSUED: IssueProxyKeyResult
ISSUE_PROXY_KEY_RESULT_ALREADY_ISSUED: IssueProxyKeyResult
REVOKE_PROXY_KEY_RESULT_UNSPECIFIED: RevokeProxyKeyResult
REVOKE_PROXY_KEY_RESULT_REVOKED: RevokeProxyKeyResult
REVOKE_PROXY_KEY_RESULT_ALREADY_REVOKED: RevokeProxyKeyResult
TOKEN_ROLE_UNSPECIFIED: TokenRole
TOKEN_ROLE_VIEWER: TokenRole
TOKEN_ROLE_ADMIN: TokenRole
ISSUE_TOKEN_RESULT_UNSPECIFIED: IssueTokenResult
ISSUE_TOKEN_RESULT_ISSUED: IssueTokenResult
ISSUE_TOKEN_RESULT_ALREADY_ISSUED: IssueTokenResult
REVOKE_TOKEN_RESULT_UNSPECIFIED: RevokeTokenResult
REVOKE_TOKEN_RESULT_REVOKED: RevokeTokenResult
REVOKE_TOKEN_RESULT_ALREADY_REVOKED: RevokeTokenResult
ALERT_TARGET_UNSPECIFIED: AlertTarget
ALERT_TARGET_BUDGET: AlertTarget
ALERT_TARGET_BALANCE: AlertTarget
ALERT_SOURCE_UNSPECIFIED: AlertSource
ALERT_SOURCE_CUSTOMER: AlertSource
ALERT_SOURCE_PLAN: AlertSource
SET_ALERTS_RESULT_UNSPECIFIED: SetAlertsResult
SET_ALERTS_RESULT_SET: SetAlertsResult
SET_ALERTS_RESULT_REMOVED: SetAlertsResult
SET_ALERTS_RESULT_UNCHANGED: SetAlertsResult
CORRECTION_RESULT_UNSPECIFIED: CorrectionResult
CORRECTION_RESULT_REFUNDED: CorrectionResult
CORRECTION_RESULT_ADJUSTED: CorrectionResult
CORRECTION_RESULT_ALREADY_DONE: CorrectionResult
SUBMIT_PROPOSAL_RESULT_UNSPECIFIED: SubmitProposalResult
SUBMIT_PROPOSAL_RESULT_PROPOSED: SubmitProposalResult
SUBMIT_PROPOSAL_RESULT_ALREADY_PROPOSED: SubmitProposalResult
CATALOG_DECISION_RESULT_UNSPECIFIED: CatalogDecisionResult
CATALOG_DECISION_RESULT_APPROVED: CatalogDecisionResult
CATALOG_DECISION_RESULT_ROLLED_BACK: CatalogDecisionResult
CATALOG_DECISION_RESULT_ALREADY_DONE: CatalogDecisionResult

class CheckRequest(_message.Message):
    __slots__ = ("customer", "feature", "team", "user", "agent", "session", "model")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    customer: str
    feature: str
    team: str
    user: str
    agent: str
    session: str
    model: str
    def __init__(self, customer: _Optional[str] = ..., feature: _Optional[str] = ..., team: _Optional[str] = ..., user: _Optional[str] = ..., agent: _Optional[str] = ..., session: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "reason", "int_value", "string_value", "remaining", "catalog_version", "decided_by")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: Reason
    int_value: int
    string_value: str
    remaining: int
    catalog_version: str
    decided_by: DecidedBy
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[_Union[Reason, str]] = ..., int_value: _Optional[int] = ..., string_value: _Optional[str] = ..., remaining: _Optional[int] = ..., catalog_version: _Optional[str] = ..., decided_by: _Optional[_Union[DecidedBy, str]] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("customer", "feature", "idempotency_key", "team", "user", "agent", "session", "model", "units", "amount_nanos", "ttl_ms", "tags")
    class UnitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    customer: str
    feature: str
    idempotency_key: str
    team: str
    user: str
    agent: str
    session: str
    model: str
    units: _containers.ScalarMap[str, int]
    amount_nanos: int
    ttl_ms: int
    tags: _containers.ScalarMap[str, str]
    def __init__(self, customer: _Optional[str] = ..., feature: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., team: _Optional[str] = ..., user: _Optional[str] = ..., agent: _Optional[str] = ..., session: _Optional[str] = ..., model: _Optional[str] = ..., units: _Optional[_Mapping[str, int]] = ..., amount_nanos: _Optional[int] = ..., ttl_ms: _Optional[int] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ReserveResponse(_message.Message):
    __slots__ = ("allowed", "reason", "reservation_id", "held_nanos", "remaining_nanos", "soft_limits_hit", "catalog_version", "scope", "decided_by")
    class RemainingNanosEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_NANOS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_NANOS_FIELD_NUMBER: _ClassVar[int]
    SOFT_LIMITS_HIT_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: Reason
    reservation_id: str
    held_nanos: int
    remaining_nanos: _containers.ScalarMap[str, int]
    soft_limits_hit: _containers.RepeatedScalarFieldContainer[str]
    catalog_version: str
    scope: str
    decided_by: DecidedBy
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[_Union[Reason, str]] = ..., reservation_id: _Optional[str] = ..., held_nanos: _Optional[int] = ..., remaining_nanos: _Optional[_Mapping[str, int]] = ..., soft_limits_hit: _Optional[_Iterable[str]] = ..., catalog_version: _Optional[str] = ..., scope: _Optional[str] = ..., decided_by: _Optional[_Union[DecidedBy, str]] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("reservation_id", "units", "amount_nanos", "estimated")
    class UnitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    units: _containers.ScalarMap[str, int]
    amount_nanos: int
    estimated: bool
    def __init__(self, reservation_id: _Optional[str] = ..., units: _Optional[_Mapping[str, int]] = ..., amount_nanos: _Optional[int] = ..., estimated: _Optional[bool] = ...) -> None: ...

class BurnedCredits(_message.Message):
    __slots__ = ("grant_id", "credit_type", "amount_nanos")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    credit_type: str
    amount_nanos: int
    def __init__(self, grant_id: _Optional[str] = ..., credit_type: _Optional[str] = ..., amount_nanos: _Optional[int] = ...) -> None: ...

class CommitResponse(_message.Message):
    __slots__ = ("result", "cost_nanos", "overage_nanos", "released_nanos", "uncovered_nanos", "burned", "catalog_version", "overrun_nanos", "decided_by")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_NANOS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_NANOS_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_NANOS_FIELD_NUMBER: _ClassVar[int]
    BURNED_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    OVERRUN_NANOS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    result: CommitResult
    cost_nanos: int
    overage_nanos: int
    released_nanos: int
    uncovered_nanos: int
    burned: _containers.RepeatedCompositeFieldContainer[BurnedCredits]
    catalog_version: str
    overrun_nanos: int
    decided_by: DecidedBy
    def __init__(self, result: _Optional[_Union[CommitResult, str]] = ..., cost_nanos: _Optional[int] = ..., overage_nanos: _Optional[int] = ..., released_nanos: _Optional[int] = ..., uncovered_nanos: _Optional[int] = ..., burned: _Optional[_Iterable[_Union[BurnedCredits, _Mapping]]] = ..., catalog_version: _Optional[str] = ..., overrun_nanos: _Optional[int] = ..., decided_by: _Optional[_Union[DecidedBy, str]] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("result", "released_nanos", "decided_by")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_NANOS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    result: ReleaseResult
    released_nanos: int
    decided_by: DecidedBy
    def __init__(self, result: _Optional[_Union[ReleaseResult, str]] = ..., released_nanos: _Optional[int] = ..., decided_by: _Optional[_Union[DecidedBy, str]] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: str
    def __init__(self, customer: _Optional[str] = ...) -> None: ...

class Bucket(_message.Message):
    __slots__ = ("grant_id", "credit_type", "amount_nanos", "priority", "expires_at")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    credit_type: str
    amount_nanos: int
    priority: int
    expires_at: str
    def __init__(self, grant_id: _Optional[str] = ..., credit_type: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., priority: _Optional[int] = ..., expires_at: _Optional[str] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("scope", "period", "limit_nanos", "mode", "used_nanos", "held_nanos", "remaining_nanos")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_NANOS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    USED_NANOS_FIELD_NUMBER: _ClassVar[int]
    HELD_NANOS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_NANOS_FIELD_NUMBER: _ClassVar[int]
    scope: str
    period: Period
    limit_nanos: int
    mode: BudgetMode
    used_nanos: int
    held_nanos: int
    remaining_nanos: int
    def __init__(self, scope: _Optional[str] = ..., period: _Optional[_Union[Period, str]] = ..., limit_nanos: _Optional[int] = ..., mode: _Optional[_Union[BudgetMode, str]] = ..., used_nanos: _Optional[int] = ..., held_nanos: _Optional[int] = ..., remaining_nanos: _Optional[int] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("customer", "plan", "balance_nanos", "held_nanos", "buckets", "budgets", "overage_used_nanos", "uncovered_used_nanos")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    BALANCE_NANOS_FIELD_NUMBER: _ClassVar[int]
    HELD_NANOS_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_USED_NANOS_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_USED_NANOS_FIELD_NUMBER: _ClassVar[int]
    customer: str
    plan: str
    balance_nanos: int
    held_nanos: int
    buckets: _containers.RepeatedCompositeFieldContainer[Bucket]
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    overage_used_nanos: int
    uncovered_used_nanos: int
    def __init__(self, customer: _Optional[str] = ..., plan: _Optional[str] = ..., balance_nanos: _Optional[int] = ..., held_nanos: _Optional[int] = ..., buckets: _Optional[_Iterable[_Union[Bucket, _Mapping]]] = ..., budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ..., overage_used_nanos: _Optional[int] = ..., uncovered_used_nanos: _Optional[int] = ...) -> None: ...

class GetBudgetsRequest(_message.Message):
    __slots__ = ("customer", "team", "user", "agent", "session")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    customer: str
    team: str
    user: str
    agent: str
    session: str
    def __init__(self, customer: _Optional[str] = ..., team: _Optional[str] = ..., user: _Optional[str] = ..., agent: _Optional[str] = ..., session: _Optional[str] = ...) -> None: ...

class GetBudgetsResponse(_message.Message):
    __slots__ = ("customer", "budgets")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    customer: str
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    def __init__(self, customer: _Optional[str] = ..., budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ...) -> None: ...

class UnitPrices(_message.Message):
    __slots__ = ("credits",)
    class CreditsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    credits: _containers.ScalarMap[str, str]
    def __init__(self, credits: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Overrides(_message.Message):
    __slots__ = ("prices_per_million", "prices", "outcome_prices", "limits")
    class PricesPerMillionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: UnitPrices
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[UnitPrices, _Mapping]] = ...) -> None: ...
    class PricesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: UnitPrices
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[UnitPrices, _Mapping]] = ...) -> None: ...
    class OutcomePricesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PRICES_PER_MILLION_FIELD_NUMBER: _ClassVar[int]
    PRICES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_PRICES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    prices_per_million: _containers.MessageMap[str, UnitPrices]
    prices: _containers.MessageMap[str, UnitPrices]
    outcome_prices: _containers.ScalarMap[str, str]
    limits: _containers.ScalarMap[str, int]
    def __init__(self, prices_per_million: _Optional[_Mapping[str, UnitPrices]] = ..., prices: _Optional[_Mapping[str, UnitPrices]] = ..., outcome_prices: _Optional[_Mapping[str, str]] = ..., limits: _Optional[_Mapping[str, int]] = ...) -> None: ...

class UpsertCustomerRequest(_message.Message):
    __slots__ = ("customer", "plan", "overrides")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    customer: str
    plan: str
    overrides: Overrides
    def __init__(self, customer: _Optional[str] = ..., plan: _Optional[str] = ..., overrides: _Optional[_Union[Overrides, _Mapping]] = ...) -> None: ...

class UpsertCustomerResponse(_message.Message):
    __slots__ = ("customer", "plan", "result")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    customer: str
    plan: str
    result: UpsertResult
    def __init__(self, customer: _Optional[str] = ..., plan: _Optional[str] = ..., result: _Optional[_Union[UpsertResult, str]] = ...) -> None: ...

class GrantRequest(_message.Message):
    __slots__ = ("customer", "credit_type", "amount_nanos", "idempotency_key", "priority", "expires_at")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    customer: str
    credit_type: str
    amount_nanos: int
    idempotency_key: str
    priority: int
    expires_at: str
    def __init__(self, customer: _Optional[str] = ..., credit_type: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., priority: _Optional[int] = ..., expires_at: _Optional[str] = ...) -> None: ...

class GrantResponse(_message.Message):
    __slots__ = ("result", "grant_id", "credit_type", "amount_nanos", "priority", "expires_at")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    result: GrantResult
    grant_id: str
    credit_type: str
    amount_nanos: int
    priority: int
    expires_at: str
    def __init__(self, result: _Optional[_Union[GrantResult, str]] = ..., grant_id: _Optional[str] = ..., credit_type: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., priority: _Optional[int] = ..., expires_at: _Optional[str] = ...) -> None: ...

class BudgetScope(_message.Message):
    __slots__ = ("team", "user", "agent", "session")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    team: str
    user: str
    agent: str
    session: str
    def __init__(self, team: _Optional[str] = ..., user: _Optional[str] = ..., agent: _Optional[str] = ..., session: _Optional[str] = ...) -> None: ...

class SetBudgetRequest(_message.Message):
    __slots__ = ("customer", "scope", "period", "limit_nanos", "mode")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_NANOS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    customer: str
    scope: BudgetScope
    period: Period
    limit_nanos: int
    mode: BudgetMode
    def __init__(self, customer: _Optional[str] = ..., scope: _Optional[_Union[BudgetScope, _Mapping]] = ..., period: _Optional[_Union[Period, str]] = ..., limit_nanos: _Optional[int] = ..., mode: _Optional[_Union[BudgetMode, str]] = ...) -> None: ...

class SetBudgetResponse(_message.Message):
    __slots__ = ("scope", "period", "limit_nanos", "mode", "result")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_NANOS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    scope: str
    period: Period
    limit_nanos: int
    mode: BudgetMode
    result: SetBudgetResult
    def __init__(self, scope: _Optional[str] = ..., period: _Optional[_Union[Period, str]] = ..., limit_nanos: _Optional[int] = ..., mode: _Optional[_Union[BudgetMode, str]] = ..., result: _Optional[_Union[SetBudgetResult, str]] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: str
    def __init__(self, customer: _Optional[str] = ...) -> None: ...

class IssueProxyKeyRequest(_message.Message):
    __slots__ = ("customer", "idempotency_key", "label", "team", "user", "agent")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    customer: str
    idempotency_key: str
    label: str
    team: str
    user: str
    agent: str
    def __init__(self, customer: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., label: _Optional[str] = ..., team: _Optional[str] = ..., user: _Optional[str] = ..., agent: _Optional[str] = ...) -> None: ...

class ProxyKey(_message.Message):
    __slots__ = ("id", "customer", "label", "created_at", "team", "user", "agent", "revoked_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    customer: str
    label: str
    created_at: str
    team: str
    user: str
    agent: str
    revoked_at: str
    def __init__(self, id: _Optional[str] = ..., customer: _Optional[str] = ..., label: _Optional[str] = ..., created_at: _Optional[str] = ..., team: _Optional[str] = ..., user: _Optional[str] = ..., agent: _Optional[str] = ..., revoked_at: _Optional[str] = ...) -> None: ...

class IssueProxyKeyResponse(_message.Message):
    __slots__ = ("result", "key", "secret")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    result: IssueProxyKeyResult
    key: ProxyKey
    secret: str
    def __init__(self, result: _Optional[_Union[IssueProxyKeyResult, str]] = ..., key: _Optional[_Union[ProxyKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListProxyKeysRequest(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: str
    def __init__(self, customer: _Optional[str] = ...) -> None: ...

class ListProxyKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ProxyKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[ProxyKey, _Mapping]]] = ...) -> None: ...

class RevokeProxyKeyRequest(_message.Message):
    __slots__ = ("customer", "key_id")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    customer: str
    key_id: str
    def __init__(self, customer: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class RevokeProxyKeyResponse(_message.Message):
    __slots__ = ("result", "key")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    result: RevokeProxyKeyResult
    key: ProxyKey
    def __init__(self, result: _Optional[_Union[RevokeProxyKeyResult, str]] = ..., key: _Optional[_Union[ProxyKey, _Mapping]] = ...) -> None: ...

class IssueTokenRequest(_message.Message):
    __slots__ = ("customer", "idempotency_key", "role", "label", "team", "expires_at")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    customer: str
    idempotency_key: str
    role: TokenRole
    label: str
    team: str
    expires_at: str
    def __init__(self, customer: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., role: _Optional[_Union[TokenRole, str]] = ..., label: _Optional[str] = ..., team: _Optional[str] = ..., expires_at: _Optional[str] = ...) -> None: ...

class AdminToken(_message.Message):
    __slots__ = ("id", "customer", "role", "label", "created_at", "team", "expires_at", "revoked_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    customer: str
    role: TokenRole
    label: str
    created_at: str
    team: str
    expires_at: str
    revoked_at: str
    def __init__(self, id: _Optional[str] = ..., customer: _Optional[str] = ..., role: _Optional[_Union[TokenRole, str]] = ..., label: _Optional[str] = ..., created_at: _Optional[str] = ..., team: _Optional[str] = ..., expires_at: _Optional[str] = ..., revoked_at: _Optional[str] = ...) -> None: ...

class IssueTokenResponse(_message.Message):
    __slots__ = ("result", "token", "secret")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    result: IssueTokenResult
    token: AdminToken
    secret: str
    def __init__(self, result: _Optional[_Union[IssueTokenResult, str]] = ..., token: _Optional[_Union[AdminToken, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: str
    def __init__(self, customer: _Optional[str] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[AdminToken]
    def __init__(self, tokens: _Optional[_Iterable[_Union[AdminToken, _Mapping]]] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("customer", "id")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    customer: str
    id: str
    def __init__(self, customer: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ("result", "token")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    result: RevokeTokenResult
    token: AdminToken
    def __init__(self, result: _Optional[_Union[RevokeTokenResult, str]] = ..., token: _Optional[_Union[AdminToken, _Mapping]] = ...) -> None: ...

class SetAlertsRequest(_message.Message):
    __slots__ = ("customer", "thresholds", "target", "scope", "period")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    customer: str
    thresholds: _containers.RepeatedScalarFieldContainer[str]
    target: AlertTarget
    scope: BudgetScope
    period: Period
    def __init__(self, customer: _Optional[str] = ..., thresholds: _Optional[_Iterable[str]] = ..., target: _Optional[_Union[AlertTarget, str]] = ..., scope: _Optional[_Union[BudgetScope, _Mapping]] = ..., period: _Optional[_Union[Period, str]] = ...) -> None: ...

class AlertRule(_message.Message):
    __slots__ = ("scope", "period", "thresholds", "source")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    scope: str
    period: str
    thresholds: _containers.RepeatedScalarFieldContainer[str]
    source: AlertSource
    def __init__(self, scope: _Optional[str] = ..., period: _Optional[str] = ..., thresholds: _Optional[_Iterable[str]] = ..., source: _Optional[_Union[AlertSource, str]] = ...) -> None: ...

class SetAlertsResponse(_message.Message):
    __slots__ = ("result", "rule")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    result: SetAlertsResult
    rule: AlertRule
    def __init__(self, result: _Optional[_Union[SetAlertsResult, str]] = ..., rule: _Optional[_Union[AlertRule, _Mapping]] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: str
    def __init__(self, customer: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AlertRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[AlertRule, _Mapping]]] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("customer", "idempotency_key", "event_id", "reason", "amount_nanos")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    customer: str
    idempotency_key: str
    event_id: str
    reason: str
    amount_nanos: int
    def __init__(self, customer: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., event_id: _Optional[str] = ..., reason: _Optional[str] = ..., amount_nanos: _Optional[int] = ...) -> None: ...

class AdjustRequest(_message.Message):
    __slots__ = ("customer", "idempotency_key", "amount_nanos", "credit_type", "reason", "corrects")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CORRECTS_FIELD_NUMBER: _ClassVar[int]
    customer: str
    idempotency_key: str
    amount_nanos: int
    credit_type: str
    reason: str
    corrects: str
    def __init__(self, customer: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., credit_type: _Optional[str] = ..., reason: _Optional[str] = ..., corrects: _Optional[str] = ...) -> None: ...

class CorrectionMove(_message.Message):
    __slots__ = ("grant_id", "credit_type", "amount_nanos")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    credit_type: str
    amount_nanos: int
    def __init__(self, grant_id: _Optional[str] = ..., credit_type: _Optional[str] = ..., amount_nanos: _Optional[int] = ...) -> None: ...

class RefundResponse(_message.Message):
    __slots__ = ("result", "amount_nanos", "event_id", "moves", "uncovered_nanos")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_NANOS_FIELD_NUMBER: _ClassVar[int]
    result: CorrectionResult
    amount_nanos: int
    event_id: str
    moves: _containers.RepeatedCompositeFieldContainer[CorrectionMove]
    uncovered_nanos: int
    def __init__(self, result: _Optional[_Union[CorrectionResult, str]] = ..., amount_nanos: _Optional[int] = ..., event_id: _Optional[str] = ..., moves: _Optional[_Iterable[_Union[CorrectionMove, _Mapping]]] = ..., uncovered_nanos: _Optional[int] = ...) -> None: ...

class AdjustResponse(_message.Message):
    __slots__ = ("result", "amount_nanos", "moves")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    result: CorrectionResult
    amount_nanos: int
    moves: _containers.RepeatedCompositeFieldContainer[CorrectionMove]
    def __init__(self, result: _Optional[_Union[CorrectionResult, str]] = ..., amount_nanos: _Optional[int] = ..., moves: _Optional[_Iterable[_Union[CorrectionMove, _Mapping]]] = ...) -> None: ...

class SubmitProposalRequest(_message.Message):
    __slots__ = ("catalog", "rationale", "idempotency_key")
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    catalog: str
    rationale: str
    idempotency_key: str
    def __init__(self, catalog: _Optional[str] = ..., rationale: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CatalogChange(_message.Message):
    __slots__ = ("path", "change", "old", "new")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    OLD_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    path: str
    change: str
    old: str
    new: str
    def __init__(self, path: _Optional[str] = ..., change: _Optional[str] = ..., old: _Optional[str] = ..., new: _Optional[str] = ...) -> None: ...

class SimulationTotals(_message.Message):
    __slots__ = ("events", "denied", "revenue_before", "revenue_after", "serve_cost_before", "serve_cost_after", "margin_before", "margin_after")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    REVENUE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_AFTER_FIELD_NUMBER: _ClassVar[int]
    SERVE_COST_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SERVE_COST_AFTER_FIELD_NUMBER: _ClassVar[int]
    MARGIN_BEFORE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_AFTER_FIELD_NUMBER: _ClassVar[int]
    events: int
    denied: int
    revenue_before: str
    revenue_after: str
    serve_cost_before: str
    serve_cost_after: str
    margin_before: str
    margin_after: str
    def __init__(self, events: _Optional[int] = ..., denied: _Optional[int] = ..., revenue_before: _Optional[str] = ..., revenue_after: _Optional[str] = ..., serve_cost_before: _Optional[str] = ..., serve_cost_after: _Optional[str] = ..., margin_before: _Optional[str] = ..., margin_after: _Optional[str] = ...) -> None: ...

class SimulationSummary(_message.Message):
    __slots__ = ("totals",)
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    totals: SimulationTotals
    def __init__(self, totals: _Optional[_Union[SimulationTotals, _Mapping]] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("id", "author", "rationale", "version", "base_version", "status", "approver", "diff", "simulation")
    ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    SIMULATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    author: str
    rationale: str
    version: str
    base_version: str
    status: str
    approver: str
    diff: _containers.RepeatedCompositeFieldContainer[CatalogChange]
    simulation: SimulationSummary
    def __init__(self, id: _Optional[str] = ..., author: _Optional[str] = ..., rationale: _Optional[str] = ..., version: _Optional[str] = ..., base_version: _Optional[str] = ..., status: _Optional[str] = ..., approver: _Optional[str] = ..., diff: _Optional[_Iterable[_Union[CatalogChange, _Mapping]]] = ..., simulation: _Optional[_Union[SimulationSummary, _Mapping]] = ...) -> None: ...

class SubmitProposalResponse(_message.Message):
    __slots__ = ("result", "proposal")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    result: SubmitProposalResult
    proposal: Proposal
    def __init__(self, result: _Optional[_Union[SubmitProposalResult, str]] = ..., proposal: _Optional[_Union[Proposal, _Mapping]] = ...) -> None: ...

class ApproveProposalRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RollbackCatalogRequest(_message.Message):
    __slots__ = ("idempotency_key",)
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    def __init__(self, idempotency_key: _Optional[str] = ...) -> None: ...

class ApproveProposalResponse(_message.Message):
    __slots__ = ("result", "from_version", "version")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    result: CatalogDecisionResult
    from_version: str
    version: str
    def __init__(self, result: _Optional[_Union[CatalogDecisionResult, str]] = ..., from_version: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class RollbackCatalogResponse(_message.Message):
    __slots__ = ("result", "from_version", "version")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    result: CatalogDecisionResult
    from_version: str
    version: str
    def __init__(self, result: _Optional[_Union[CatalogDecisionResult, str]] = ..., from_version: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...
