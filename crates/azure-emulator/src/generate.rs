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

/// How a workspace's incidents relate to Defender XDR, which decides what its `SecurityIncident`
/// rows say and whether Graph lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Onboarding {
    /// Onboarded to the Defender portal: its incidents are Defender XDR's, and its table names
    /// them `ProviderName` "Microsoft Defender XDR" ("IF you integrate a Sentinel workspace to
    /// Microsoft Defender XDR, ALL the incidents will have now 'Microsoft Defender XDR' as
    /// 'Incident provider name'", Azure/Azure-Sentinel#10446).
    Onboarded,
    /// Not onboarded, or incidents created by API, playbook or by hand (never synchronised to
    /// Defender XDR, azure-docs `sentinel/move-to-defender.md`): `ProviderName` "Azure Sentinel",
    /// and Graph does not list them.
    NotInXdr,
}

/// The `SecurityIncident` and `SecurityAlert` rows of a workspace holding `incidents` and their
/// `alerts` (Graph-shaped, from [`generate_incidents_for`]): **one row per change** — a row when
/// the incident (or alert) was created, with status New and no owner, and one at its last update
/// with its final state — as the real tables record them (azure-docs
/// `sentinel/manage-soc-with-incident-metrics.md`). Column names and types follow
/// [`crate::tables::SECURITY_INCIDENT`] and [`crate::tables::SECURITY_ALERT`]; `TenantId` is the
/// workspace's id, as in every Log Analytics table. `IncidentNumber`s count from `first_number`.
pub fn workspace_tables(
    workspace_id: &str,
    incidents: &[Value],
    alerts: &[Value],
    onboarding: Onboarding,
    first_number: u64,
) -> (Vec<Value>, Vec<Value>) {
    let provider = match onboarding {
        Onboarding::Onboarded => "Microsoft Defender XDR",
        Onboarding::NotInXdr => "Azure Sentinel",
    };
    let mut incident_rows = Vec::with_capacity(incidents.len() * 2);
    let mut alert_rows = Vec::with_capacity(alerts.len() * 2);
    for (n, incident) in incidents.iter().enumerate() {
        let text = |key: &str| incident[key].as_str().unwrap_or_default().to_owned();
        let graph_id = text("id");
        let name = name_guid(workspace_id, &graph_id);
        let number = first_number + n as u64;
        let own_alerts: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["incidentId"] == incident["id"])
            .collect();
        let alert_ids: Vec<String> = own_alerts
            .iter()
            .map(|a| name_guid(workspace_id, a["id"].as_str().unwrap_or_default()))
            .collect();
        let created = text("createdDateTime");
        let updated = text("lastUpdateDateTime");
        let (status, classification, reason) = match incident["status"].as_str() {
            Some("resolved" | "redirected") => {
                let (c, r) = match incident["classification"].as_str() {
                    Some("truePositive") => ("TruePositive", "SuspiciousActivity"),
                    Some("falsePositive") => ("FalsePositive", "IncorrectAlertLogic"),
                    _ => ("BenignPositive", "SuspiciousButExpected"),
                };
                ("Closed", c, r)
            }
            Some("inProgress") => ("Active", "", ""),
            _ => ("New", "", ""),
        };
        let owner = |assigned: &Value| {
            json!({
                "objectId": null,
                "email": assigned,
                "assignedTo": assigned,
                "userPrincipalName": assigned,
            })
        };
        let labels: Vec<Value> = incident["customTags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .map(|t| json!({"labelName": t, "labelType": "User"}))
                    .collect()
            })
            .unwrap_or_default();
        let comments: Vec<Value> = incident["comments"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| {
                        json!({
                            "message": c["comment"],
                            "createdTimeUtc": c["createdDateTime"],
                            "author": {"name": c["createdByDisplayName"]},
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let row = |at: &str, status: &str, owner: Value, comments: Vec<Value>| {
            json!({
                "TenantId": workspace_id,
                "TimeGenerated": at,
                "IncidentName": name,
                "Title": incident["displayName"],
                "Description": incident["description"],
                "Severity": capitalised(incident["severity"].as_str().unwrap_or("informational")),
                "Status": status,
                "Classification": if status == "Closed" { classification } else { "" },
                "ClassificationComment": if status == "Closed" { incident["resolvingComment"].clone() } else { json!("") },
                "ClassificationReason": if status == "Closed" { reason } else { "" },
                "Owner": owner,
                "ProviderName": provider,
                "ProviderIncidentId": match onboarding {
                    Onboarding::Onboarded => graph_id.clone(),
                    Onboarding::NotInXdr => number.to_string(),
                },
                "FirstActivityTime": created,
                "LastActivityTime": created,
                "FirstModifiedTime": created,
                "LastModifiedTime": at,
                "CreatedTime": created,
                "ClosedTime": if status == "Closed" { json!(at) } else { Value::Null },
                "IncidentNumber": number,
                "RelatedAnalyticRuleIds": [],
                "AlertIds": alert_ids,
                "BookmarkIds": [],
                "Comments": comments,
                "Tasks": [],
                "Labels": labels,
                "IncidentUrl": format!(
                    "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident/subscriptions/6b1ceacd-5731-4780-8f96-2078dd96fd96/resourceGroups/soc/providers/Microsoft.OperationalInsights/workspaces/soc-{workspace_id}/providers/Microsoft.SecurityInsights/Incidents/{name}"
                ),
                "AdditionalData": {"alertsCount": alert_ids.len(), "bookmarksCount": 0, "commentsCount": comments.len(), "alertProductNames": own_alerts.iter().map(|a| product_name(a["serviceSource"].as_str().unwrap_or_default())).collect::<Vec<_>>(), "tactics": own_alerts.iter().map(|a| a["category"].clone()).collect::<Vec<_>>()},
                "ModifiedBy": if status == "New" { "Incident created from alert rule" } else { "API-App:API Action" },
                "SourceSystem": "Azure",
                "Type": "SecurityIncident",
            })
        };
        incident_rows.push(row(&created, "New", owner(&Value::Null), Vec::new()));
        if updated != created {
            incident_rows.push(row(
                &updated,
                status,
                owner(&incident["assignedTo"]),
                comments.clone(),
            ));
        }
        for (alert, system_id) in own_alerts.iter().zip(&alert_ids) {
            let a = |key: &str| alert[key].clone();
            let service = alert["serviceSource"].as_str().unwrap_or_default();
            let alert_row = |at: &Value, status: &str| {
                json!({
                    "TenantId": workspace_id,
                    "TimeGenerated": at,
                    "DisplayName": a("title"),
                    "AlertName": a("title"),
                    "AlertSeverity": capitalised(alert["severity"].as_str().unwrap_or("informational")),
                    "Description": a("description"),
                    "ProviderName": alert_provider(service),
                    "VendorName": "Microsoft",
                    "VendorOriginalId": a("providerAlertId"),
                    "SystemAlertId": system_id,
                    "ResourceId": "",
                    "SourceComputerId": "",
                    "AlertType": a("category"),
                    "ConfidenceLevel": "",
                    "ConfidenceScore": Value::Null,
                    "IsIncident": false,
                    "StartTime": a("firstActivityDateTime"),
                    "EndTime": a("lastActivityDateTime"),
                    "ProcessingEndTime": at,
                    "RemediationSteps": a("recommendedActions"),
                    "ExtendedProperties": "{}",
                    "Entities": a("evidence").to_string(),
                    "SourceSystem": "Detection",
                    "WorkspaceSubscriptionId": "6b1ceacd-5731-4780-8f96-2078dd96fd96",
                    "WorkspaceResourceGroup": "soc",
                    "ExtendedLinks": "",
                    "ProductName": product_name(service),
                    "ProductComponentName": "",
                    "AlertLink": a("alertWebUrl"),
                    "Status": status,
                    "CompromisedEntity": "",
                    "Tactics": a("category"),
                    "Techniques": alert["mitreTechniques"].to_string(),
                    "SubTechniques": "",
                    "Type": "SecurityAlert",
                })
            };
            alert_rows.push(alert_row(&a("createdDateTime"), "New"));
            if alert["lastUpdateDateTime"] != alert["createdDateTime"] {
                let status = match alert["status"].as_str() {
                    Some("resolved") => "Resolved",
                    Some("inProgress") => "InProgress",
                    _ => "New",
                };
                alert_rows.push(alert_row(&a("lastUpdateDateTime"), status));
            }
        }
    }
    (incident_rows, alert_rows)
}

/// The workspaces of a tenant as Microsoft runs them, for [`sentinel_estate`].
#[derive(Debug, Clone)]
pub struct Estate {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: String,
    /// Onboarded to the Defender portal.
    pub onboarded_workspace: String,
    /// Not onboarded: its incidents are only in its own tables.
    pub other_workspace: String,
    /// Defender XDR incidents (Graph); the Sentinel ones among them also in the onboarded
    /// workspace's tables.
    pub incidents: usize,
    /// Incidents created by API in the onboarded workspace (never in Graph).
    pub api_created: usize,
    /// Incidents of the other workspace.
    pub other_incidents: usize,
    pub seed: u64,
    pub start: DateTime<Utc>,
}

/// One tenant with one app holding every read role and Reader on both workspaces, where:
/// Graph lists Defender XDR's incidents — Defender for Endpoint, Office 365, Identity, Cloud Apps
/// and the Sentinel incidents of the onboarded workspace (graph-docs
/// `security-list-incidents.md`); the onboarded workspace's tables also hold incidents created by
/// API, which Defender XDR never receives (azure-docs `sentinel/move-to-defender.md`,
/// "Programmatic and manual creation of incidents"); and the other workspace, not onboarded, has
/// incidents only in its own tables.
pub fn sentinel_estate(estate: &Estate) -> crate::EmulatorConfig {
    let mut config = crate::EmulatorConfig::single_tenant(
        &estate.tenant_id,
        &estate.client_id,
        &estate.secret,
        &estate.onboarded_workspace,
    );
    let (incidents, alerts) = generate_incidents_for(
        &estate.tenant_id,
        estate.incidents,
        estate.seed,
        estate.start,
    );
    let from_sentinel = |incident: &Value| {
        alerts
            .iter()
            .filter(|a| a["incidentId"] == incident["id"])
            .all(|a| a["serviceSource"] == "microsoftSentinel")
    };
    let sentinel: Vec<Value> = incidents
        .iter()
        .filter(|i| from_sentinel(i))
        .cloned()
        .collect();
    let (mut onboarded_rows, mut onboarded_alert_rows) = workspace_tables(
        &estate.onboarded_workspace,
        &sentinel,
        &alerts,
        Onboarding::Onboarded,
        1,
    );
    let (api, api_alerts) = with_id_prefix(
        generate_incidents_for(
            &estate.tenant_id,
            estate.api_created,
            estate.seed ^ 0xA91,
            estate.start,
        ),
        "api-",
    );
    let (rows, alert_rows) = workspace_tables(
        &estate.onboarded_workspace,
        &api,
        &api_alerts,
        Onboarding::NotInXdr,
        1 + sentinel.len() as u64,
    );
    onboarded_rows.extend(rows);
    onboarded_alert_rows.extend(alert_rows);
    let (other, other_alerts) = generate_incidents_for(
        &estate.tenant_id,
        estate.other_incidents,
        estate.seed ^ 0x07E,
        estate.start,
    );
    let (other_rows, other_alert_rows) = workspace_tables(
        &estate.other_workspace,
        &other,
        &other_alerts,
        Onboarding::NotInXdr,
        1,
    );
    if let Some(tenant) = config.tenants.first_mut() {
        tenant.incidents = incidents;
        tenant.alerts = alerts;
        if let Some(w) = tenant.workspaces.first_mut() {
            w.sentinel = true;
            w.security_incidents = onboarded_rows;
            w.security_alerts = onboarded_alert_rows;
        }
        let mut other = crate::Workspace::new(&estate.other_workspace);
        other.sentinel = true;
        other.security_incidents = other_rows;
        other.security_alerts = other_alert_rows;
        tenant.workspaces.push(other);
        for app in &mut tenant.apps {
            app.workspaces.push(estate.other_workspace.clone());
        }
    }
    config
}

/// Prefixes the ids of generated incidents (and their alerts' `incidentId`), so that two
/// generated sets never share one.
pub fn with_id_prefix(
    (mut incidents, mut alerts): (Vec<Value>, Vec<Value>),
    prefix: &str,
) -> (Vec<Value>, Vec<Value>) {
    for item in incidents
        .iter_mut()
        .map(|i| &mut i["id"])
        .chain(alerts.iter_mut().map(|a| &mut a["incidentId"]))
    {
        if let Some(id) = item.as_str() {
            *item = Value::String(format!("{prefix}{id}"));
        }
    }
    (incidents, alerts)
}

/// A stable GUID for `(workspace, id)`: Sentinel names incidents and alerts by GUIDs.
fn name_guid(workspace_id: &str, id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in workspace_id.bytes().chain([0]).chain(id.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    Rng::new(hash).uuid()
}

fn capitalised(value: &str) -> String {
    let mut chars = value.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `SecurityAlert.ProductName` of a Graph `serviceSource` (the names the Defender and Sentinel
/// connectors write, azure-reference-other `securityalert.md`).
fn product_name(service_source: &str) -> &'static str {
    match service_source {
        "microsoftDefenderForEndpoint" => "Microsoft Defender Advanced Threat Protection",
        "microsoftDefenderForOffice365" => "Office 365 Advanced Threat Protection",
        "azureAdIdentityProtection" => "Azure Active Directory Identity Protection",
        "microsoftDefenderForCloudApps" => "Microsoft Cloud App Security",
        "microsoftDefenderForIdentity" => "Azure Advanced Threat Protection",
        "dataLossPrevention" => "Microsoft Data Loss Prevention",
        _ => "Azure Sentinel",
    }
}

/// `SecurityAlert.ProviderName` of a Graph `serviceSource`.
fn alert_provider(service_source: &str) -> &'static str {
    match service_source {
        "microsoftDefenderForEndpoint" => "MDATP",
        "microsoftDefenderForOffice365" => "OATP",
        "azureAdIdentityProtection" => "IPC",
        "microsoftDefenderForCloudApps" => "MCAS",
        "microsoftDefenderForIdentity" => "AATP",
        "dataLossPrevention" => "Microsoft Data Loss Prevention",
        _ => "ASI Scheduled Alerts",
    }
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

    #[test]
    fn an_estate_splits_incidents_between_graph_and_the_workspace_tables() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let estate = Estate {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: "s".into(),
            onboarded_workspace: "w1".into(),
            other_workspace: "w2".into(),
            incidents: 60,
            api_created: 5,
            other_incidents: 7,
            seed: 3,
            start,
        };
        let config = sentinel_estate(&estate);
        let tenant = &config.tenants[0];
        assert_eq!(tenant.incidents.len(), 60);
        let distinct = |rows: &[Value], provider: &str| {
            let mut names: Vec<&str> = rows
                .iter()
                .filter(|r| r["ProviderName"] == provider)
                .filter_map(|r| r["IncidentName"].as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            names.len()
        };
        let onboarded = &tenant.workspaces[0].security_incidents;
        let in_xdr = distinct(onboarded, "Microsoft Defender XDR");
        assert!(
            in_xdr > 0 && in_xdr < 60,
            "{in_xdr} Sentinel incidents in Graph"
        );
        assert_eq!(distinct(onboarded, "Azure Sentinel"), 5);
        let other = &tenant.workspaces[1].security_incidents;
        assert_eq!(distinct(other, "Azure Sentinel"), 7);
        // A row per change: created, then updated.
        assert_eq!(other.len(), 14);
        assert!(tenant.apps[0].can_read_workspace("w2"));
        // Every alert an incident names is in the alert table.
        for row in other {
            for id in row["AlertIds"].as_array().unwrap() {
                assert!(
                    tenant.workspaces[1]
                        .security_alerts
                        .iter()
                        .any(|a| a["SystemAlertId"] == *id)
                );
            }
        }
    }
}
