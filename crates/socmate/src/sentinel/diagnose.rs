//! Turning Azure's failures into a stable code and a hint an admin can act on.
//!
//! Codes are matched on AADSTS numbers and error `code`s, never on message text (Microsoft
//! rewords messages). Hints name the portal field to check; they never repeat a secret.

use super::outbound::{ErrorEnvelope, SendError};
use super::token::TokenError;

pub struct Diagnosis {
    pub code: &'static str,
    pub hint: String,
}

fn diagnosis(code: &'static str, hint: impl Into<String>) -> Diagnosis {
    Diagnosis {
        code,
        hint: hint.into(),
    }
}

pub fn send_failure(error: &SendError, host: &str, budget_secs: f64) -> Diagnosis {
    match error {
        SendError::Timeout => diagnosis(
            "timeout",
            format!(
                "{host} did not answer within the {budget_secs:.1} s test budget. Check that \
                 SoCMate can reach it (proxy, firewall, DNS) and the Azure status page."
            ),
        ),
        SendError::Unreachable(_) => diagnosis(
            "unreachable",
            format!(
                "SoCMate could not connect to {host}. Check outbound network access (proxy, \
                 firewall, DNS) from the SoCMate host."
            ),
        ),
    }
}

pub fn token_failure(
    error: &TokenError,
    tenant_id: &str,
    client_id: &str,
    host: &str,
    budget_secs: f64,
) -> Diagnosis {
    match error {
        TokenError::Send(e) => send_failure(e, host, budget_secs),
        TokenError::UnexpectedResponse { status } => diagnosis(
            "token_endpoint_unavailable",
            format!(
                "Entra ID answered HTTP {status} without a token. Retry later; if it persists, check the Azure status page."
            ),
        ),
        TokenError::Rejected { aadsts, error, .. } => match aadsts {
            Some(90002) => diagnosis(
                "tenant_not_found",
                format!(
                    "Tenant '{tenant_id}' was not found. Check tenant_id (Azure Portal > Azure \
                     Active Directory > Properties > Tenant ID) and that the provider's cloud \
                     matches the tenant's cloud."
                ),
            ),
            Some(900023) => diagnosis(
                "tenant_invalid",
                "tenant_id is neither a tenant GUID nor a verified domain. Copy it from Azure Portal > Azure Active Directory > Properties > Tenant ID.",
            ),
            Some(700016) => diagnosis(
                "client_not_found",
                format!(
                    "No application with client ID '{client_id}' exists in tenant \
                     '{tenant_id}'. Check client_id (Azure Portal > App Registrations > Your app \
                     > Application (client) ID) and that the app is registered in this tenant."
                ),
            ),
            Some(7000215) => diagnosis(
                "invalid_client_secret",
                "The client secret is wrong. Paste the secret's Value, not its Secret ID (Azure Portal > App Registrations > Your app > Certificates & secrets).",
            ),
            Some(7000222) => diagnosis(
                "client_secret_expired",
                "The client secret has expired. Create a new secret under Azure Portal > App Registrations > Your app > Certificates & secrets, then rotate it here.",
            ),
            Some(7000218) | Some(90014) => diagnosis(
                "client_secret_missing",
                "Entra ID received no client secret. Enter the secret's Value from Certificates & secrets.",
            ),
            Some(70011) | Some(1002012) => diagnosis(
                "invalid_scope",
                "Entra ID rejected the requested API scope. Check that the provider's cloud matches the tenant's cloud.",
            ),
            Some(500011) => diagnosis(
                "resource_not_in_tenant",
                "The Log Analytics or Microsoft Graph service principal is missing from the tenant. Grant the app's API permissions with admin consent.",
            ),
            Some(code) => diagnosis(
                "token_request_rejected",
                format!(
                    "Entra ID refused the token request with AADSTS{code} ({error}). Look the code up at https://login.microsoftonline.com/error?code={code}."
                ),
            ),
            None => diagnosis(
                "token_request_rejected",
                format!("Entra ID refused the token request ({error})."),
            ),
        },
    }
}

/// Whether Log Analytics refused the token itself (worth one renewal), not the app's access. The
/// direct query endpoint answers a bad, expired or wrong-audience token with 403
/// `InvalidTokenError` ("The provided authentication is not valid for this resource";
/// Azure/azure-sdk-for-js#15399, microsoft/onefuzz#3287); `InvalidAuthenticationToken*` and
/// `AuthenticationFailed` are what the ARM-routed endpoint says.
pub fn rejects_the_token(status: u16, codes: &[&str]) -> bool {
    status == 401
        || codes.iter().any(|c| {
            matches!(
                *c,
                "InvalidTokenError"
                    | "InvalidAuthenticationToken"
                    | "InvalidAuthenticationTokenAudience"
                    | "AuthenticationFailed"
            )
        })
}

/// A non-success answer from the Log Analytics query API.
pub fn log_analytics_failure(
    status: u16,
    envelope: &ErrorEnvelope,
    workspace_id: &str,
) -> Diagnosis {
    let codes = envelope.codes();
    let has = |c: &str| codes.contains(&c);
    match status {
        404 => diagnosis(
            "workspace_not_found",
            format!(
                "No Log Analytics workspace with ID '{workspace_id}' is visible to this app. Use \
                 the Workspace ID GUID (Azure Portal > Log Analytics workspace > Properties > \
                 Workspace ID), not the workspace name or resource ID."
            ),
        ),
        403 if has("InvalidTokenError") => diagnosis(
            "token_rejected",
            "Log Analytics refused the access token itself (InvalidTokenError), not the app's \
             access: check that the provider's cloud matches the workspace's cloud, and that the \
             token is requested for the Log Analytics API of that cloud.",
        ),
        403 if has("InvalidAuthenticationTokenAudience") => diagnosis(
            "token_audience_mismatch",
            "Log Analytics rejected the token's audience. Check that the provider's cloud matches the workspace's cloud.",
        ),
        401 | 403 if has("InvalidAuthenticationToken") || has("AuthenticationFailed") => diagnosis(
            "token_rejected",
            "Log Analytics rejected the access token. Check that the provider's cloud matches the workspace's cloud.",
        ),
        403 => diagnosis(
            "log_analytics_access_denied",
            format!(
                "The app may not query workspace '{workspace_id}'. Assign its service principal \
                 the Log Analytics Reader (or Microsoft Sentinel Reader) role on the workspace in \
                 Azure Portal > Log Analytics workspace > Access control (IAM); for app-only \
                 access this role, not the Log Analytics API > Data.Read permission, is what \
                 counts. Role assignments can take several minutes to apply."
            ),
        ),
        _ => upstream_status(status, "Log Analytics"),
    }
}

/// A non-success answer from a Microsoft Graph security API.
pub fn graph_failure(status: u16, envelope: &ErrorEnvelope, required_role: &str) -> Diagnosis {
    match status {
        403 => {
            let granted = envelope
                .error
                .message
                .rsplit_once("application roles:")
                .map(|(_, roles)| roles.trim().trim_end_matches('.').trim())
                .filter(|roles| !roles.is_empty())
                .unwrap_or("none");
            diagnosis(
                "missing_permission",
                format!(
                    "The app lacks Microsoft Graph > {required_role}. Add it as an Application \
                     permission (not Delegated) and grant admin consent for the tenant. Roles \
                     the app has now: {granted}."
                ),
            )
        }
        401 => diagnosis(
            "token_rejected",
            "Microsoft Graph rejected the access token. Check that the provider's cloud matches the tenant's cloud.",
        ),
        _ => upstream_status(status, "Microsoft Graph"),
    }
}

/// The workspace holds Sentinel incidents that Graph does not list (never synchronised to
/// Defender XDR): both ways to get them.
pub fn incidents_not_in_graph(count: u64, workspace_id: &str) -> String {
    format!(
        "Workspace {workspace_id} holds {count} Microsoft Sentinel incident(s) from the last {days}          days that Microsoft Graph does not return: the workspace is not onboarded to the          Microsoft Defender portal, or its incidents were created by API, playbook or by hand          and are not synchronised. Onboard the workspace to the Defender portal, or set this          provider's incident_source to \"workspace\" to read its own SecurityIncident table.",
        days = super::workspace::FIT_DAYS
    )
}

pub fn unexpected_body(service: &str) -> Diagnosis {
    diagnosis(
        "unexpected_response",
        format!(
            "{service} answered with a body SoCMate could not read. Retry; if it persists, check the endpoint configuration."
        ),
    )
}

fn upstream_status(status: u16, service: &str) -> Diagnosis {
    match status {
        429 => diagnosis(
            "throttled",
            format!("{service} is throttling this app. Wait a minute and test again."),
        ),
        500..=599 => diagnosis(
            "upstream_unavailable",
            format!(
                "{service} answered HTTP {status}. Retry later; if it persists, check the Azure status page."
            ),
        ),
        _ => diagnosis(
            "unexpected_response",
            format!("{service} answered HTTP {status} to a probe that should succeed."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentinel::token::rejection;

    /// The real Entra ID error payloads in `crates/azure-emulator/fixtures`, with the HTTP status each
    /// comes with.
    #[test]
    fn each_aadsts_fixture_maps_to_its_code() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../azure-emulator/fixtures");
        let cases = [
            (
                "aad-token-error-90002-invalid-tenant.json",
                400,
                "tenant_not_found",
            ),
            (
                "aad-token-error-90002-invalid-request-legacy.json",
                400,
                "tenant_not_found",
            ),
            (
                "aad-token-error-700016-unauthorized-client.json",
                400,
                "client_not_found",
            ),
            (
                "aad-token-error-7000215-invalid-secret.json",
                401,
                "invalid_client_secret",
            ),
            (
                "aad-token-error-7000222-expired-secret.json",
                401,
                "client_secret_expired",
            ),
            (
                "aad-token-error-70011-invalid-scope.json",
                400,
                "invalid_scope",
            ),
        ];
        for (file, status, code) in cases {
            let body = std::fs::read(dir.join(file)).unwrap_or_else(|e| {
                panic!("fixture {file} must be readable in crates/azure-emulator/fixtures: {e}")
            });
            let error = rejection(status, &body);
            assert!(error.correlation_id().is_some(), "{file}");
            let d = token_failure(&error, "tenant", "client", "login.microsoftonline.com", 5.0);
            assert_eq!(d.code, code, "{file}");
            assert!(!d.hint.is_empty());
        }
    }

    #[test]
    fn log_analytics_and_graph_fixtures_map_to_their_codes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../azure-emulator/fixtures");
        let read = |file: &str| {
            ErrorEnvelope::parse(
                &std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}")),
            )
        };
        let la = [
            (
                "la-error-404-path-not-found.json",
                404,
                "workspace_not_found",
            ),
            (
                "la-error-403-insufficient-access.json",
                403,
                "log_analytics_access_denied",
            ),
            (
                "la-error-403-insufficient-access-unauthorized-client.json",
                403,
                "log_analytics_access_denied",
            ),
            ("la-error-403-invalid-token.json", 403, "token_rejected"),
            (
                "la-error-403-invalid-token-error.json",
                403,
                "token_rejected",
            ),
            (
                "la-error-403-invalid-token-audience.json",
                403,
                "token_audience_mismatch",
            ),
            ("la-error-401-no-auth.json", 401, "token_rejected"),
        ];
        for (file, status, code) in la {
            assert_eq!(
                log_analytics_failure(status, &read(file), "ws").code,
                code,
                "{file}"
            );
        }
        let graph = graph_failure(
            403,
            &read("graph-error-403-missing-roles.json"),
            "SecurityIncident.Read.All",
        );
        assert_eq!(graph.code, "missing_permission");
        assert!(
            graph.hint.contains("SecurityIncident.Read.All") && graph.hint.contains("now: none"),
            "{}",
            graph.hint
        );
        assert_eq!(
            graph_failure(429, &read("graph-error-429-throttled.json"), "x").code,
            "throttled"
        );
    }
}
