-- ArgoCD health check for privatelink.clickhouse.dev/ClickHousePrivateLink.
-- Install it under argocd-cm's key resource.customizations.health.privatelink.clickhouse.dev_ClickHousePrivateLink
-- (deploy/argocd/argocd-cm.yaml). Written for ArgoCD's Lua 5.1 sandbox; tested by tests/packaging with
-- the cases in health_test.yaml.
--
--   Healthy      Ready=True, and both status.observedGeneration and Ready's observedGeneration equal
--                metadata.generation (the operator has acted on the current spec).
--   Degraded     Ready=False with a reason that needs a person (the operator's TERMINAL_REASONS), on the
--                current generation; also while deleting, when such a reason blocks the cleanup.
--   Progressing  everything else: no status yet, a status older than the spec, Ready=Unknown, a reason the
--                operator expects to resolve by itself, or a deletion in progress.

-- BEGIN TERMINAL_REASONS: generated from operator/clickhouse_privatelink/reasons.py by `make argocd-health`
local terminal_reasons = {
  AwsAccessDenied = true,
  ClickHouseRequestRejected = true,
  CredentialsInvalid = true,
  CredentialsSecretNotFound = true,
  CrossRegionNotSupported = true,
  DnsRecordConflict = true,
  EndpointFailed = true,
  EndpointMismatch = true,
  EndpointNotFound = true,
  EndpointRejected = true,
  Forbidden = true,
  HostedZoneNotFound = true,
  InvalidAwsConfiguration = true,
  InvalidSpec = true,
  PrivateLinkNotAvailable = true,
  ServiceAmbiguous = true,
  ServiceNotAws = true,
  ServiceNotFound = true,
  ServiceUnusable = true,
  Unauthorized = true,
}
-- END TERMINAL_REASONS

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
local deleting = obj.metadata.deletionTimestamp ~= nil

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

if deleting then
  if ready ~= nil and ready.status == "False" and terminal_reasons[ready.reason] then
    hs.status = "Degraded"
    hs.message = "Deletion blocked: " .. describe(ready)
  elseif ready ~= nil and ready.reason == "Deleting" then
    hs.status = "Progressing"
    hs.message = describe(ready)
  else
    hs.status = "Progressing"
    hs.message = "Deleting: waiting for the operator to remove the AWS resources and the allow-list entry"
  end
  return hs
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
  hs.message = describe(ready)
elseif ready.status == "False" and terminal_reasons[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.status = "Progressing"
  hs.message = describe(ready)
end
return hs
