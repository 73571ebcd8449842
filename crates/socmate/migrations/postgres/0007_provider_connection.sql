-- The provider seam: a provider row keeps neutral columns plus its type's own connection (a JSON
-- object, as the API shows it); incidents are keyed by the connector's scope instead of an Azure
-- tenant. Every existing row is a Sentinel provider, so its Azure columns become its connection.
ALTER TABLE siem_providers ADD COLUMN connection TEXT NOT NULL DEFAULT '{}';
UPDATE siem_providers SET connection = json_build_object(
    'workspace_id', workspace_id, 'tenant_id', tenant_id, 'client_id', client_id, 'cloud', cloud)::text;
ALTER TABLE siem_providers DROP COLUMN workspace_id;
ALTER TABLE siem_providers DROP COLUMN tenant_id;
ALTER TABLE siem_providers DROP COLUMN client_id;
ALTER TABLE siem_providers DROP COLUMN cloud;

-- Sentinel's incidents were stored under the tenant as typed; the tenant now travels in the
-- incident itself, and the scope names the collection ("azure-tenant:<tenant>").
UPDATE incidents SET data = (data::jsonb || jsonb_build_object('tenant_id', tenant_id))::text;
ALTER TABLE incidents RENAME COLUMN tenant_id TO scope;
UPDATE incidents SET scope = 'azure-tenant:' || lower(scope);
ALTER TABLE incident_alerts RENAME COLUMN tenant_id TO scope;
UPDATE incident_alerts SET scope = 'azure-tenant:' || lower(scope);
