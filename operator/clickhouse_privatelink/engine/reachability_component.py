"""The Reachable check: measured from the operator's pod at the end of a pass that found everything Ready.

It runs last, after the allow-list entry, on every forward pass that ends Ready (so on the pass that made
the resource Ready and at each drift check). Where the operator is not in the resource's VPC it writes
``Reachable`` Unknown with no call at all (decisions/reachability.skip_result), so at scale outside the VPC
it costs nothing. In the VPC a measurement that succeeds costs one shared AWS read per endpoint and drift
period (its network interfaces) and no ClickHouse call; only a reset re-reads the service's
``privateEndpointIds``. ``Ready`` does not wait for it unless ``CHPL_REACHABILITY_REQUIRED``.
"""

from __future__ import annotations

from dataclasses import replace

from clickhouse_privatelink.adapters.network.probe import PlacementFinder, Prober
from clickhouse_privatelink.api.models import DnsMode
from clickhouse_privatelink.decisions.plan import ObservedEndpoint
from clickhouse_privatelink.decisions.reachability import (
    Context,
    changed_to_problem,
    classify,
    needs_allow_list,
    ready_result,
    skip_result,
)
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.status import StepResult, condition
from clickhouse_privatelink.engine.context import (
    Pass,
    Resolved,
    ResolvedService,
    StepFailed,
    aws_await,
    clickhouse_call,
)
from clickhouse_privatelink.engine.security_group_component import read_port_check

# Failures that a change made by the same pass explains (the change, as Outcome.changes says it, and why).
_RECORD = (
    "dns_record_written",
    "record written in this pass, not answered yet (Route 53 takes up to a minute)",
)
_SETTLING = {
    Reason.DNS_NOT_RESOLVING: _RECORD,
    Reason.DNS_POINTS_ELSEWHERE: _RECORD,
    Reason.CONNECTION_RESET: ("allow_listed", "allow-list entry added in this pass, not applied yet"),
}


class ReachabilityComponent:
    """Measures (never changes) whether a client in the VPC reaches the service over the endpoint."""

    def __init__(self, prober: Prober, placement: PlacementFinder, *, required: bool = False) -> None:
        self.prober = prober
        self.placement = placement
        self.required = required

    async def apply(self, p: Pass, resolved: Resolved) -> None:
        if resolved.endpoint is None or resolved.service is None or not p.out.ready().ok:
            return  # nothing to measure yet: the steps say why
        step = ConditionType.REACHABLE
        result = skip_result(await self.placement.placement(), p.res.spec.aws.vpc_id)
        if result is None:
            result = await self._measure(p, resolved.service, resolved.endpoint.observed)
        previous = condition(list(p.res.status.get("conditions", [])), step)
        before_status = None if previous is None else str(previous.get("status"))
        before_reason = None if previous is None else str(previous.get("reason"))
        if changed_to_problem(before_status, before_reason, result):
            p.out.event(result.reason.value, result.message, warning=True)
        elif result.ok and before_status == "False":
            p.out.event(result.reason.value, result.message)
        p.out.steps.append(result)
        ready = ready_result(result) if self.required else None
        if ready is not None:
            p.out.steps.append(ready)

    async def _measure(self, p: Pass, resolved: ResolvedService, endpoint: ObservedEndpoint) -> StepResult:
        service = resolved.service
        try:
            interfaces = await aws_await(
                ConditionType.REACHABLE, p.aws.interface_addresses(endpoint.id, max_age=p.read_age)
            )
        except StepFailed:
            interfaces = ()  # not readable (ec2:DescribeNetworkInterfaces): the answer is not compared
        report = await self.prober.measure(resolved.config.private_dns_hostname)
        ctx = Context(
            endpoint_id=endpoint.id,
            interface_addresses=interfaces,
            service_name=service.name,
            dns_managed=p.res.spec.dns.mode is not DnsMode.NONE,
            security_groups=tuple(sorted(endpoint.security_group_ids)),
        )
        result = classify(report, ctx)
        if result.reason is Reason.CONNECT_TIMEOUT:
            try:
                check = await read_port_check(p, endpoint)
            except StepFailed:
                pass  # the groups could not be read: the message says what to check
            else:
                ctx = replace(ctx, closed_ports=check.closed, vpc_cidrs=check.vpc_cidrs)
        elif needs_allow_list(report):
            try:
                api = await p.clickhouse()
                fresh = await clickhouse_call(ConditionType.REACHABLE, api.service(service.id, max_age=0.0))
            except StepFailed:
                pass  # unreadable: the message says the entry may be missing
            else:
                ctx = replace(ctx, allow_list=tuple(fresh.private_endpoint_ids))
        result = classify(report, ctx)
        settling = _SETTLING.get(result.reason)
        if settling is not None and settling[0] in p.out.changes:
            # What this pass has just written takes effect after a while: not a finding yet (no Warning).
            return StepResult(
                result.type, False, result.reason, f"{settling[1]}: {result.message}", unknown=True
            )
        return result

    async def release(self, p: Pass) -> None:
        return None  # nothing was created


__all__ = ["ReachabilityComponent"]
