//! Deterministic synthetic Defender/Sentinel data shaped like the Graph fixtures
//! (`graph-incidents-list-*.json`, `graph-alerts_v2-list-docs.json`), so sync tests can load
//! hundreds of realistic incidents without shipping large files. Same seed, same data.

use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{Value, json};

/// Tenant id written into generated objects by [`generate_incidents`].
pub const GENERATED_TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// xorshift64* — tiny, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 step so that seed 0 and nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn uuid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Graph datetime with 7 fractional digits, e.g. `2021-08-13T08:43:35.5533333Z`.
fn graph_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.nanosecond() / 100
    )
}

struct AlertTemplate {
    title: &'static str,
    category: &'static str,
    technique: &'static str,
    service_source: &'static str,
    detection_source: &'static str,
    description: &'static str,
}

struct Scenario {
    incident_name: &'static str,
    alerts: &'static [AlertTemplate],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        incident_name: "Multi-stage incident involving Initial access & Command and control on one endpoint",
        alerts: &[
            AlertTemplate {
                title: "Suspicious execution of hidden file",
                category: "DefenseEvasion",
                technique: "T1564.001",
                service_source: "microsoftDefenderForEndpoint",
                detection_source: "antivirus",
                description: "A hidden file has been launched. This activity could indicate a compromised host. Attackers often hide files associated with malicious tools to evade file system inspection and defenses.",
            },
            AlertTemplate {
                title: "Suspicious PowerShell command line",
                category: "Execution",
                technique: "T1059.001",
                service_source: "microsoftDefenderForEndpoint",
                detection_source: "microsoftDefenderForEndpoint",
                description: "A suspicious PowerShell activity was observed on the machine. This behavior may indicate that PowerShell was used during installation, exploration, or in some cases in lateral movement activities.",
            },
            AlertTemplate {
                title: "Connection to a custom network indicator",
                category: "CommandAndControl",
                technique: "T1071.001",
                service_source: "microsoftDefenderForEndpoint",
                detection_source: "customTi",
                description: "An endpoint has connected to a URL or domain in your list of custom indicators.",
            },
        ],
    },
    Scenario {
        incident_name: "Email messages containing malicious URL removed after delivery involving one user",
        alerts: &[
            AlertTemplate {
                title: "Email messages containing malicious URL removed after delivery",
                category: "InitialAccess",
                technique: "T1566.002",
                service_source: "microsoftDefenderForOffice365",
                detection_source: "microsoftDefenderForOffice365",
                description: "Emails with malicious URL that were delivered and later removed.",
            },
            AlertTemplate {
                title: "A potentially malicious URL click was detected",
                category: "InitialAccess",
                technique: "T1566.002",
                service_source: "microsoftDefenderForOffice365",
                detection_source: "microsoftDefenderForOffice365",
                description: "We have detected that one of your users has recently clicked on a link that was found to be malicious.",
            },
        ],
    },
    Scenario {
        incident_name: "Suspicious sign-in activity involving one user",
        alerts: &[
            AlertTemplate {
                title: "Anonymous IP address",
                category: "InitialAccess",
                technique: "T1078",
                service_source: "azureAdIdentityProtection",
                detection_source: "azureAdIdentityProtection",
                description: "Sign-in from an anonymous IP address (e.g. Tor browser, anonymizer VPNs).",
            },
            AlertTemplate {
                title: "Impossible travel activity",
                category: "InitialAccess",
                technique: "T1078",
                service_source: "microsoftDefenderForCloudApps",
                detection_source: "microsoftDefenderForCloudApps",
                description: "The user signed in from two distant locations within a time period shorter than the travel time between them.",
            },
        ],
    },
    Scenario {
        incident_name: "Ransomware activity on multiple endpoints",
        alerts: &[
            AlertTemplate {
                title: "Ransomware behavior detected in the file system",
                category: "Impact",
                technique: "T1486",
                service_source: "microsoftDefenderForEndpoint",
                detection_source: "antivirus",
                description: "Files on the device were encrypted or renamed in a way that is typical of ransomware.",
            },
            AlertTemplate {
                title: "File backups were deleted",
                category: "Impact",
                technique: "T1490",
                service_source: "microsoftDefenderForEndpoint",
                detection_source: "microsoftDefenderForEndpoint",
                description: "A process deleted volume shadow copies or backup catalogs, a common step before ransomware encryption.",
            },
        ],
    },
    Scenario {
        incident_name: "Multiple failed sign-ins followed by a successful sign-in (Microsoft Sentinel)",
        alerts: &[AlertTemplate {
            title: "Brute force attack against a cloud application",
            category: "CredentialAccess",
            technique: "T1110",
            service_source: "microsoftSentinel",
            detection_source: "scheduledAlerts",
            description: "Identifies a high number of failed sign-ins followed by a successful sign-in from the same IP address.",
        }],
    },
    Scenario {
        incident_name: "DLP policy (Custom policy) matched for email with subject (Quarterly results draft) involving one user",
        alerts: &[AlertTemplate {
            title: "DLP policy (Custom policy) matched for email",
            category: "Exfiltration",
            technique: "T1048",
            service_source: "dataLossPrevention",
            detection_source: "microsoftDataLossPrevention",
            description: "An email matched a data loss prevention policy for sensitive financial data.",
        }],
    },
];

const SEVERITIES: &[&str] = &["informational", "low", "medium", "high"];
const ANALYSTS: &[&str] = &[
    "KaiC@contoso.onmicrosoft.com",
    "DavidS@contoso.onmicrosoft.com",
    "MeganB@contoso.onmicrosoft.com",
];
const HOSTS: &[&str] = &[
    "ws-fin-014",
    "ws-hr-203",
    "srv-sql-01",
    "ws-dev-077",
    "srv-web-02",
];
const USERS: &[(&str, &str)] = &[
    ("alex.wilber", "Alex Wilber"),
    ("megan.bowen", "Megan Bowen"),
    ("lee.gu", "Lee Gu"),
    ("diego.siciliani", "Diego Siciliani"),
];

/// `n` Graph incidents (ids `"30001"`, `"30002"`, ...; created 5 minutes apart from `start`
/// plus jitter, `lastUpdateDateTime` 1 minute–12 hours later) and their 1–3 alerts each
/// (`incidentId` set; incidents carry no inline `alerts`). Tenant [`GENERATED_TENANT_ID`].
pub fn generate_incidents(n: usize, seed: u64, start: DateTime<Utc>) -> (Vec<Value>, Vec<Value>) {
    generate_incidents_for(GENERATED_TENANT_ID, n, seed, start)
}

/// [`generate_incidents`] for a given tenant id.
pub fn generate_incidents_for(
    tenant_id: &str,
    n: usize,
    seed: u64,
    start: DateTime<Utc>,
) -> (Vec<Value>, Vec<Value>) {
    let mut rng = Rng::new(seed);
    let mut incidents = Vec::with_capacity(n);
    let mut alerts = Vec::new();
    for i in 0..n {
        let id = (30_001 + i).to_string();
        let scenario = rng.pick(SCENARIOS);
        let created = start
            + Duration::minutes(5 * i as i64)
            + Duration::milliseconds(rng.below(240_000) as i64)
            + Duration::nanoseconds((rng.below(10_000) * 100) as i64);
        let updated = created
            + Duration::seconds(60 + rng.below(12 * 3600) as i64)
            + Duration::nanoseconds((rng.below(10_000_000) * 100) as i64);
        let severity = *rng.pick(SEVERITIES);
        let status = match rng.below(20) {
            0..=9 => "active",
            10..=13 => "inProgress",
            14..=18 => "resolved",
            _ => "redirected",
        };
        let (classification, determination) = if status == "resolved" {
            match rng.below(3) {
                0 => (
                    "truePositive",
                    *rng.pick(&[
                        "malware",
                        "phishing",
                        "multiStagedAttack",
                        "compromisedUser",
                    ]),
                ),
                1 => (
                    "falsePositive",
                    *rng.pick(&["clean", "insufficientData", "other"]),
                ),
                _ => (
                    "informationalExpectedActivity",
                    *rng.pick(&[
                        "securityTesting",
                        "confirmedUserActivity",
                        "lineOfBusinessApplication",
                    ]),
                ),
            }
        } else {
            ("unknown", "unknown")
        };
        let assigned_to = match status {
            "active" if rng.below(2) == 0 => Value::Null,
            _ => json!(*rng.pick(ANALYSTS)),
        };
        let redirect = if status == "redirected" && i > 0 {
            json!((30_001 + rng.below(i as u64) as usize).to_string())
        } else {
            Value::Null
        };
        let status = if status == "redirected" && redirect.is_null() {
            "active"
        } else {
            status
        };
        let host = *rng.pick(HOSTS);
        let (user, user_name) = *rng.pick(USERS);
        let comments = if status == "active" {
            json!([])
        } else {
            json!([{
                "comment": "Investigating; isolated the device and reset the user's credentials.",
                "createdByDisplayName": assigned_to.as_str().unwrap_or("API-App:SoCMate"),
                "createdDateTime": graph_time(updated - Duration::minutes(1)),
            }])
        };
        incidents.push(json!({
            "@odata.type": "#microsoft.graph.security.incident",
            "id": id,
            "tenantId": tenant_id,
            "status": status,
            "incidentWebUrl": format!("https://security.microsoft.com/incidents/{id}?tid={tenant_id}"),
            "redirectIncidentId": redirect,
            "displayName": scenario.incident_name,
            "createdDateTime": graph_time(created),
            "lastUpdateDateTime": graph_time(updated),
            "assignedTo": assigned_to,
            "classification": classification,
            "determination": determination,
            "severity": severity,
            "customTags": if rng.below(4) == 0 { json!(["Demo"]) } else { json!([]) },
            "systemTags": if rng.below(6) == 0 { json!(["Defender Experts"]) } else { json!([]) },
            "description": format!("{} (host {host}, user {user}@contoso.onmicrosoft.com).", scenario.incident_name),
            "summary": Value::Null,
            "lastModifiedBy": if status == "active" { "Microsoft 365 Defender-IncidentCreation" } else { "API-App:API Action" },
            "resolvingComment": if status == "resolved" { json!("Resolved after investigation.") } else { Value::Null },
            "comments": comments,
        }));

        let alert_count = 1 + rng.below(scenario.alerts.len().min(3) as u64) as usize;
        for (k, tpl) in scenario.alerts.iter().take(alert_count).enumerate() {
            let alert_created = created - Duration::seconds(30 * (alert_count - k) as i64);
            let alert_updated = updated - Duration::seconds(rng.below(60) as i64);
            let alert_id = if tpl.service_source == "microsoftDefenderForEndpoint" {
                format!(
                    "da{}_{}",
                    637_551_227_677_560_813u64 + rng.below(1 << 40),
                    -(rng.below(2_000_000_000) as i64)
                )
            } else {
                format!("{}{}", &tpl.service_source[..2], rng.uuid())
            };
            let alert_status = match status {
                "resolved" | "redirected" => "resolved",
                "inProgress" => "inProgress",
                _ => "new",
            };
            let evidence = if tpl.service_source == "microsoftDefenderForEndpoint" {
                json!([{
                    "@odata.type": "#microsoft.graph.security.deviceEvidence",
                    "createdDateTime": graph_time(alert_created),
                    "verdict": "suspicious",
                    "remediationStatus": "none",
                    "remediationStatusDetails": null,
                    "firstSeenDateTime": graph_time(start - Duration::days(90)),
                    "mdeDeviceId": format!("{:016x}{:016x}{:08x}", rng.next(), rng.next(), rng.next() as u32),
                    "azureAdDeviceId": rng.uuid(),
                    "deviceDnsName": format!("{host}.contoso.com"),
                    "osPlatform": "Windows11",
                    "osBuild": 22631,
                    "version": "23H2",
                    "healthStatus": "active",
                    "riskScore": "medium",
                    "rbacGroupId": 75,
                    "rbacGroupName": "UnassignedGroup",
                    "onboardingStatus": "onboarded",
                    "defenderAvStatus": "updated",
                    "ipInterfaces": [format!("10.1.{}.{}", rng.below(250), 1 + rng.below(250))],
                    "loggedOnUsers": [],
                    "roles": ["compromised"],
                    "detailedRoles": ["Main device"],
                    "tags": [],
                    "vmMetadata": null
                }])
            } else {
                json!([{
                    "@odata.type": "#microsoft.graph.security.userEvidence",
                    "createdDateTime": graph_time(alert_created),
                    "verdict": "suspicious",
                    "remediationStatus": "none",
                    "remediationStatusDetails": null,
                    "roles": ["compromised"],
                    "detailedRoles": [],
                    "tags": [],
                    "userAccount": {
                        "accountName": user,
                        "domainName": "CONTOSO",
                        "userSid": format!("S-1-5-21-{}-{}-{}-{}", rng.below(1 << 31), rng.below(1 << 31), rng.below(1 << 31), 1000 + rng.below(9000)),
                        "azureAdUserId": rng.uuid(),
                        "userPrincipalName": format!("{user}@contoso.onmicrosoft.com"),
                        "displayName": user_name
                    }
                }])
            };
            alerts.push(json!({
                "@odata.type": "#microsoft.graph.security.alert",
                "id": alert_id,
                "providerAlertId": alert_id,
                "incidentId": id,
                "status": alert_status,
                "severity": severity,
                "classification": if alert_status == "resolved" { json!(classification) } else { Value::Null },
                "determination": if alert_status == "resolved" { json!(determination) } else { Value::Null },
                "serviceSource": tpl.service_source,
                "detectionSource": tpl.detection_source,
                "detectorId": rng.uuid(),
                "tenantId": tenant_id,
                "title": tpl.title,
                "description": tpl.description,
                "recommendedActions": "Collect artifacts and determine scope\n-\tReview the timeline for suspicious activities that may have occurred before and after the time of the alert.\n-\tIf credential theft is suspected, reset all relevant users passwords.",
                "category": tpl.category,
                "assignedTo": assigned_to,
                "alertWebUrl": format!("https://security.microsoft.com/alerts/{alert_id}?tid={tenant_id}"),
                "incidentWebUrl": format!("https://security.microsoft.com/incidents/{id}?tid={tenant_id}"),
                "actorDisplayName": null,
                "threatDisplayName": null,
                "threatFamilyName": null,
                "mitreTechniques": [tpl.technique],
                "createdDateTime": graph_time(alert_created),
                "lastUpdateDateTime": graph_time(alert_updated),
                "resolvedDateTime": if alert_status == "resolved" { json!(graph_time(updated)) } else { Value::Null },
                "firstActivityDateTime": graph_time(alert_created - Duration::minutes(12)),
                "lastActivityDateTime": graph_time(alert_created - Duration::minutes(2)),
                "comments": [],
                "evidence": evidence,
                "systemTags": [],
            }));
        }
    }
    (incidents, alerts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let (a, alerts_a) = generate_incidents(40, 7, start);
        let (b, alerts_b) = generate_incidents(40, 7, start);
        assert_eq!(a, b);
        assert_eq!(alerts_a, alerts_b);
        let (c, _) = generate_incidents(40, 8, start);
        assert_ne!(a, c);
        assert_eq!(a.len(), 40);
        for inc in &a {
            let id = inc["id"].as_str().unwrap_or_default();
            assert!(id.parse::<u64>().is_ok());
            let n = alerts_a
                .iter()
                .filter(|al| al["incidentId"] == inc["id"])
                .count();
            assert!((1..=3).contains(&n), "incident {id} has {n} alerts");
            let created = inc["createdDateTime"].as_str().unwrap_or_default();
            let updated = inc["lastUpdateDateTime"].as_str().unwrap_or_default();
            assert!(DateTime::parse_from_rfc3339(created).is_ok());
            assert!(created < updated);
            assert!(created > "2026-01-01T00:00:00Z");
        }
    }
}
