//! Deterministic, realistic SCIM Users of about 1 KB (RFC 7643 §4.1 with the
//! enterprise extension, as Okta or Entra ID provision them), and the
//! `AuditEvent` of their creation.
//!
//! Every user is distinct (id, userName, emails, phone numbers, employee
//! number) so a million of them are a million resources of the enricher's
//! state; the names, titles and places repeat as they do in a real
//! directory, which is what zstd finds to compress, no more.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use scimtrail_core::schema::{
    AuditAction, AuditEvent, Outcome, Principal, Request, Resource, Response, Source, Target,
};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const FIRST: &[&str] = &[
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Beatriz", "Carlos", "Chen", "Dana", "David", "Elena",
    "Emeka", "Fatima", "Grace", "Hana", "Hiro", "Ines", "Isaac", "Jamal", "Jane", "Kai", "Kenji",
    "Lara", "Liam", "Lucia", "Mateo", "Maya", "Mei", "Nadia", "Noah", "Olga", "Omar", "Priya",
    "Rafael", "Sara", "Sofia", "Tariq", "Wei", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Adams", "Alvarez", "Bauer", "Brown", "Chen", "Costa", "Davis", "Dubois", "Eriksson",
    "Fischer", "Garcia", "Gupta", "Hansen", "Ito", "Jensen", "Kim", "Kowalski", "Lee", "Lopez",
    "Martin", "Meyer", "Moreau", "Nakamura", "Nguyen", "Novak", "Okafor", "Patel", "Petrov",
    "Rossi", "Santos", "Schmidt", "Silva", "Smith", "Tanaka", "Walker", "Wang", "Weber",
    "Williams", "Yilmaz", "Zhang",
];
const TITLES: &[&str] = &[
    "Software Engineer",
    "Senior Software Engineer",
    "Staff Engineer",
    "Engineering Manager",
    "Site Reliability Engineer",
    "Security Engineer",
    "Product Manager",
    "Product Designer",
    "Data Analyst",
    "Account Executive",
    "Sales Engineer",
    "Support Specialist",
    "Financial Analyst",
    "Recruiter",
    "Counsel",
    "Marketing Manager",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Legal",
    "Support",
    "People",
    "Security",
    "Design",
    "Operations",
    "Product",
    "Data",
];
/// (locality, region, country, timezone, phone prefix)
const PLACES: &[(&str, &str, &str, &str, &str)] = &[
    ("San Francisco", "CA", "US", "America/Los_Angeles", "+1 415"),
    ("New York", "NY", "US", "America/New_York", "+1 212"),
    ("Austin", "TX", "US", "America/Chicago", "+1 512"),
    ("Toronto", "ON", "CA", "America/Toronto", "+1 416"),
    ("London", "England", "GB", "Europe/London", "+44 20"),
    ("Berlin", "BE", "DE", "Europe/Berlin", "+49 30"),
    ("Paris", "IDF", "FR", "Europe/Paris", "+33 1"),
    ("Amsterdam", "NH", "NL", "Europe/Amsterdam", "+31 20"),
    ("Bangalore", "KA", "IN", "Asia/Kolkata", "+91 80"),
    ("Tokyo", "Tokyo", "JP", "Asia/Tokyo", "+81 3"),
    ("Sydney", "NSW", "AU", "Australia/Sydney", "+61 2"),
    ("Sao Paulo", "SP", "BR", "America/Sao_Paulo", "+55 11"),
];
const STREETS: &[&str] = &[
    "Market Street",
    "Main Street",
    "Harbour Road",
    "Mission Street",
    "King Street",
    "Station Road",
    "Park Avenue",
    "Oak Lane",
    "Queen Street",
    "Hauptstrasse",
];
const DOMAINS: &[&str] = &["example.com", "corp.example.com", "example.org"];
const TARGETS: &[(&str, &str)] = &[
    (
        "github-enterprise",
        "https://api.github.example/scim/v2/enterprises/acme",
    ),
    ("slack", "https://api.slack.example/scim/v2"),
    ("zoom", "https://api.zoom.example/scim2"),
    (
        "salesforce",
        "https://acme.my.salesforce.example/services/scim/v2",
    ),
];

/// Seeded source of distinct users; the same seed gives the same users.
pub struct Users {
    rng: StdRng,
    next: u64,
    /// Event time of the next creation, milliseconds since the epoch.
    clock_ms: i64,
}

/// One creation: the event, and the size of the user's JSON as stored.
pub struct Created {
    pub event: AuditEvent,
    pub resource_json_bytes: usize,
}

impl Users {
    pub fn new(seed: u64) -> Self {
        Users {
            rng: StdRng::seed_from_u64(seed),
            next: 0,
            // 2025-01-01T00:00:00Z
            clock_ms: 1_735_689_600_000,
        }
    }

    fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        items
            .choose(&mut self.rng)
            .expect("the lists are non-empty constants")
    }

    fn phone(&mut self, prefix: &str) -> String {
        format!(
            "{prefix} {:03} {:04}",
            self.rng.random_range(100..1000u32),
            self.rng.random_range(0..10_000u32)
        )
    }

    /// The next user: the resource as the service provider returned it (with
    /// `id` and `meta`), and the request that created it.
    pub fn next_user(&mut self) -> (Value, Value) {
        let n = self.next;
        self.next += 1;
        let id = self.uuid();
        let given = *self.pick(FIRST);
        let family = *self.pick(LAST);
        let domain = *self.pick(DOMAINS);
        let (locality, region, country, tz, prefix) = *self.pick(PLACES);
        let user_name = format!(
            "{}.{}{n}@{domain}",
            given.to_lowercase(),
            family.to_lowercase()
        );
        let manager_id = self.uuid();
        let manager = format!("{} {}", self.pick(FIRST), self.pick(LAST));
        let work_phone = self.phone(prefix);
        let mobile = self.phone(prefix);
        let street_no = self.rng.random_range(1..2000u32);
        let street = *self.pick(STREETS);
        let postal = format!("{:05}", self.rng.random_range(0..100_000u32));
        let title = *self.pick(TITLES);
        let department = *self.pick(DEPARTMENTS);
        let external_id = format!("00u{:016x}", self.rng.random::<u64>());
        let created = chrono::DateTime::from_timestamp_millis(self.clock_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let version = format!("W/\"{:08x}\"", self.rng.random::<u32>());
        let request = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "externalId": external_id,
            "userName": user_name,
            "name": {
                "familyName": family,
                "givenName": given,
            },
            "displayName": format!("{given} {family}"),
            "title": title,
            "timezone": tz,
            "active": true,
            "emails": [
                {"value": user_name, "type": "work", "primary": true},
            ],
            "phoneNumbers": [
                {"value": work_phone, "type": "work"},
                {"value": mobile, "type": "mobile"},
            ],
            "addresses": [{
                "type": "work",
                "streetAddress": format!("{street_no} {street}"),
                "locality": locality,
                "region": region,
                "postalCode": postal,
                "country": country,
            }],
            ENTERPRISE_SCHEMA: {
                "employeeNumber": format!("{}", 100_000 + n),
                "department": department,
                "manager": {"value": manager_id, "displayName": manager},
            },
        });
        let mut resource = request.clone();
        if let Some(obj) = resource.as_object_mut() {
            obj.insert("id".into(), json!(id));
            obj.insert(
                "meta".into(),
                json!({
                    "resourceType": "User",
                    "created": created,
                    "lastModified": created,
                    "location": format!("https://scim.example/v2/Users/{id}"),
                    "version": version,
                }),
            );
        }
        (resource, request)
    }

    /// The `AuditEvent` of the next user's creation (`POST /Users`, 201), as
    /// ingest makes it from the captured exchange.
    pub fn next_create(&mut self) -> Created {
        let (resource, request) = self.next_user();
        let &(target, base_url) = self.pick(TARGETS);
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let field = |k: &str| resource.get(k).and_then(Value::as_str).map(str::to_string);
        let body = resource.to_string();
        let event_time = self.clock_ms;
        self.clock_ms += 1000;
        let event = AuditEvent {
            event_id: self.uuid(),
            event_time,
            ingest_time: event_time + 150,
            action: AuditAction::Create,
            outcome: Outcome::Success,
            principal: Principal {
                id: "okta-provisioner".into(),
                kind: "service".into(),
            },
            source: Source {
                system: "okta-prod".into(),
                ip: Some("203.0.113.10".into()),
                user_agent: Some("Okta SCIM Client 1.0".into()),
            },
            target: Target {
                system: target.into(),
                base_url: Some(base_url.into()),
            },
            resource: Resource {
                kind: "User".into(),
                id,
                external_id: field("externalId"),
                user_name: field("userName"),
                display_name: field("displayName"),
            },
            request: Request {
                method: "POST".into(),
                path: "/Users".into(),
                body: Some(request.to_string()),
            },
            response: Some(Response {
                status: 201,
                body: Some(body.clone()),
            }),
            error: None,
            correlation_id: Some(self.uuid()),
        };
        Created {
            event,
            resource_json_bytes: body.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_users_and_every_user_is_distinct() {
        let mut a = Users::new(7);
        let mut b = Users::new(7);
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for _ in 0..1000 {
            let (ua, _) = a.next_user();
            let (ub, _) = b.next_user();
            assert_eq!(ua, ub);
            assert!(ids.insert(ua["id"].as_str().expect("id").to_string()));
            assert!(names.insert(ua["userName"].as_str().expect("userName").to_string()));
        }
    }

    #[test]
    fn users_are_about_a_kilobyte() {
        let mut users = Users::new(1);
        let sizes: Vec<usize> = (0..1000)
            .map(|_| users.next_create().resource_json_bytes)
            .collect();
        let avg = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        assert!((900.0..1200.0).contains(&avg), "average {avg} bytes");
    }

    #[test]
    fn the_create_event_names_its_resource() {
        let created = Users::new(3).next_create();
        let e = &created.event;
        assert_eq!(e.action, AuditAction::Create);
        assert_eq!(e.response.as_ref().map(|r| r.status), Some(201));
        let body: Value = serde_json::from_str(
            e.response
                .as_ref()
                .and_then(|r| r.body.as_deref())
                .expect("body"),
        )
        .expect("json");
        assert_eq!(body["id"].as_str(), e.resource.id.as_deref());
        assert_eq!(body["userName"].as_str(), e.resource.user_name.as_deref());
    }
}
