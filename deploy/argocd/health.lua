-- ArgoCD health check for privatelink.clickhouse.dev/ClickHousePrivateLink.
-- Install it under argocd-cm's key resource.customizations.health.privatelink.clickhouse.dev_ClickHousePrivateLink
-- (deploy/argocd/argocd-cm.yaml). Written for ArgoCD's Lua 5.1 sandbox; tested by tests/packaging with
-- the cases in health_test.yaml and with every reason of the operator.
--
--   Healthy      Ready=True, and both status.observedGeneration and Ready's observedGeneration equal
--                metadata.generation (the operator has acted on the current spec).
--   Progressing  no status yet, a status older than the spec, Ready=Unknown, or Ready=False with a reason
--                the operator expects to resolve by itself (its PROGRESSING_REASONS).
--   Degraded     Ready=False on the current generation with any other reason: one a person must fix, or
--                one this check does not know (a newer operator's), so that nothing waits forever unseen.
--
-- A resource being deleted never reaches this script: ArgoCD shows every object with a
-- metadata.deletionTimestamp as Progressing "Pending deletion" before it runs any health check.

-- BEGIN PROGRESSING_REASONS: generated from operator/clickhouse_privatelink/decisions/reasons.py by `make packaging`
local progressing_reasons = {
  Deleting = true,
  EndpointPending = true,
  EndpointPendingAcceptance = true,
  Reconciling = true,
  ServiceProvisioning = true,
  Throttled = true,
  UpstreamUnavailable = true,
  WaitingForEndpoint = true,
}
-- END PROGRESSING_REASONS

local hs = {}

local function describe(condition)
  local text = condition.reason or condition.status or "Unknown"
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local function find_ready(status)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local generation = obj.metadata.generation
local status = obj.status
local ready = find_ready(status)

-- True when the operator has written a status for an older spec than the current one.
local function is_stale()
  if generation == nil then
    return false
  end
  if status.observedGeneration == nil or status.observedGeneration < generation then
    return true
  end
  return ready.observedGeneration == nil or ready.observedGeneration < generation
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Ready condition"
  return hs
end

if is_stale() then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" and not progressing_reasons[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = describe(ready)
return hs
