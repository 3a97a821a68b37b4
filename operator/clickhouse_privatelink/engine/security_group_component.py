"""The security-group preflight: an advisory condition, read only, that never fails a pass.

After the endpoint component has found the endpoint (``resolved.endpoint``), read its security groups' inbound rules
and the VPC's CIDR blocks, and write ``SecurityGroupReady``: True when 443, 8443, 9440 and 3306 are admitted
from the VPC, False (``SecurityGroupPortsClosed``) naming the ports that are not, Unknown
(``SecurityGroupsUnreadable``) when AWS refused the reads. ``Ready`` does not depend on it
(``status.ADVISORY_CONDITIONS``). A Warning Event is posted whenever the condition changes to a problem.
"""

from __future__ import annotations

from clickhouse_privatelink.decisions.plan import ObservedEndpoint
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.security_groups import (
    PortCheck,
    changed,
    check_ports,
    port_check_result,
    unreadable_result,
)
from clickhouse_privatelink.decisions.status import StepResult, condition
from clickhouse_privatelink.engine.context import Pass, Resolved, StepFailed, aws_await

# Failures that pass by themselves: keep the last word rather than flip to Unknown and back.
_TRANSIENT = frozenset({Reason.THROTTLED, Reason.UPSTREAM_UNAVAILABLE})


async def read_port_check(p: Pass, endpoint: ObservedEndpoint) -> PortCheck:
    """The endpoint's groups checked against the VPC's CIDRs, from shared reads (StepFailed when AWS refuses).

    Every resource on one endpoint checks the same groups, so a drift period costs one read of them (and of
    the VPC's CIDRs), however many resources share the endpoint; a second look in the same period is free.
    """
    step = ConditionType.SECURITY_GROUP_READY
    vpc_id = endpoint.vpc_id
    ids = sorted(endpoint.security_group_ids)
    if ids:
        groups = await aws_await(step, p.aws.security_groups(ids, max_age=p.read_age))
    else:
        groups = await aws_await(step, p.aws.default_group(vpc_id, max_age=p.read_age))
    cidrs = await aws_await(step, p.aws.vpc_cidrs(vpc_id, max_age=p.read_age))
    return check_ports(groups, cidrs)


class SecurityGroupComponent:
    """Checks (never changes) that the endpoint's security groups admit ClickHouse's ports from the VPC."""

    async def apply(self, p: Pass, resolved: Resolved) -> None:
        if resolved.endpoint is None:
            return
        endpoint = resolved.endpoint.observed
        step = ConditionType.SECURITY_GROUP_READY
        previous = condition(list(p.res.status.get("conditions", [])), step)
        result: StepResult
        try:
            check = await read_port_check(p, endpoint)
        except StepFailed as failed:
            if failed.reason in _TRANSIENT and previous is not None:
                return  # the next pass looks again
            result = unreadable_result(failed.message)
        else:
            result = port_check_result(check)
        if changed(previous, result):
            if not result.ok:
                p.out.event(result.reason.value, result.message, warning=True)
            elif previous is not None:
                p.out.event(result.reason.value, result.message)
        p.out.steps.append(result)

    async def release(self, p: Pass) -> None:
        return None  # nothing was created


__all__ = ["SecurityGroupComponent", "read_port_check"]
