//! Synthetic SCIM 2.0 traffic (RFC 7643/7644) for `scimtrail gen`, emitted in
//! scimtrail's raw contract: one JSON object per captured SCIM exchange. This
//! module is deliberately pure (no I/O, no Kafka, no wall clock, no OS
//! randomness) so that a seed fully determines the output; that is what lets
//! tests, demos and benchmarks replay the exact same stream. The generator keeps
//! a simulated directory per target system so the traffic is coherent: a
//! successful PATCH, PUT or DELETE only ever names a resource that an earlier
//! exchange created and nothing has deleted since, and failed exchanges leave
//! the directory untouched, which is what downstream enrichment and detection
//! rely on when they reconstruct state from the stream.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use uuid::Uuid;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

const TARGET_SYSTEMS: [&str; 4] = ["github-enterprise", "slack", "zoom", "salesforce"];

// Membership changes to these are what privilege-escalation detectors look for,
// so ordinary traffic never deletes them; only the names matter.
const PRIVILEGED_GROUPS: [&str; 2] = ["admins", "org-owners"];

const GROUP_NAMES: [&str; 16] = [
    "admins",
    "org-owners",
    "engineering",
    "platform",
    "sales",
    "support",
    "marketing",
    "finance",
    "legal",
    "design",
    "security",
    "data-science",
    "on-call",
    "contractors",
    "interns",
    "all-staff",
];

const FIRST_NAMES: [&str; 40] = [
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Beatriz", "Carlos", "Chen", "Dana", "David", "Elena",
    "Emeka", "Fatima", "Grace", "Hana", "Hiro", "Ines", "Isaac", "Jamal", "Jane", "Kai", "Kenji",
    "Lara", "Liam", "Lucia", "Mateo", "Maya", "Mei", "Nadia", "Noah", "Olga", "Omar", "Priya",
    "Rafael", "Sara", "Sofia", "Tariq", "Wei", "Yusuf", "Zoe",
];

const LAST_NAMES: [&str; 40] = [
    "Adams", "Alvarez", "Bauer", "Brown", "Chen", "Costa", "Davis", "Dubois", "Eriksson",
    "Fischer", "Garcia", "Gupta", "Hansen", "Ito", "Jensen", "Kim", "Kowalski", "Lee", "Lopez",
    "Martin", "Meyer", "Moreau", "Nakamura", "Nguyen", "Novak", "Okafor", "Patel", "Petrov",
    "Rossi", "Santos", "Schmidt", "Silva", "Smith", "Tanaka", "Walker", "Wang", "Weber",
    "Williams", "Yilmaz", "Zhang",
];

const DEPARTMENTS: [&str; 12] = [
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

const TITLES: [&str; 16] = [
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

const EMAIL_DOMAINS: [&str; 3] = ["example.com", "corp.example.com", "example.org"];

// Bounded so a long run does not grow without limit; a few hundred stale ids are
// plenty to make some 404s look like replays of real, since-deleted resources.
const GONE_IDS_KEPT: usize = 256;

// Creates outnumber deletes roughly four to one, so without a ceiling a long
// `gen` run would grow every directory (and the per-event scans over it) without
// bound; at the ceiling, would-be creates become deletes and the size levels off.
const MAX_USERS_PER_TARGET: usize = 5_000;
const MAX_GROUPS_PER_TARGET: usize = 200;

/// Settings for a [`Generator`].
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// seeds every random choice: equal configs give identical output
    pub seed: u64,
    /// event time of the first record; each next record advances by `step` (so the output is deterministic given the seed)
    pub start: DateTime<Utc>,
    pub step: Duration,
    /// share (0.0..=1.0) of exchanges that fail (4xx/5xx with a SCIM error body)
    pub failure_ratio: f64,
}

/// Deterministic source of synthetic SCIM exchanges in the raw contract.
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    clock: DateTime<Utc>,
    step: Duration,
    failure_ratio: f64,
    principals: Vec<Principal>,
    directories: Vec<Directory>,
    next_employee_number: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdStyle {
    Okta,
    Entra,
    Script,
}

#[derive(Debug)]
struct Principal {
    id: String,
    kind: &'static str,
    source_system: &'static str,
    user_agent: &'static str,
    // Real IdPs egress from a small pool; keeping the pool fixed per principal is
    // what makes an IP outside it stand out downstream.
    ips: Vec<String>,
    style: IdStyle,
    targets: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Manager {
    id: String,
    display_name: String,
}

#[derive(Debug, Clone)]
struct Enterprise {
    employee_number: Option<String>,
    department: Option<String>,
    manager: Option<Manager>,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    external_id: String,
    user_name: String,
    given_name: String,
    family_name: String,
    display_name: String,
    email: String,
    active: bool,
    title: Option<String>,
    phone_numbers: Vec<String>,
    enterprise: Option<Enterprise>,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    version: String,
}

#[derive(Debug, Clone)]
struct Member {
    value: String,
    display: String,
}

#[derive(Debug, Clone)]
struct Group {
    id: String,
    display_name: String,
    external_id: Option<String>,
    members: Vec<Member>,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    version: String,
}

// Vecs and BTreeSets rather than hash maps: iteration order feeds the RNG's
// choices, and hash order would break seed determinism.
#[derive(Debug)]
struct Directory {
    system: &'static str,
    base_url: String,
    users: Vec<User>,
    groups: Vec<Group>,
    user_names: BTreeSet<String>,
    group_names: BTreeSet<String>,
    gone_users: Vec<String>,
    gone_groups: Vec<String>,
}

#[derive(Debug, Clone)]
enum UserChange {
    Active(bool),
    Title(String),
    GivenName { given: String, display: String },
    WorkEmail(String),
    AddPhone(String),
    Department(String),
}

#[derive(Debug)]
struct Exchange {
    method: &'static str,
    path: String,
    request: Option<Value>,
    status: u16,
    response: Option<Value>,
}

impl Generator {
    /// A generator with empty directories; the first operations on each target
    /// are therefore mostly creates.
    pub fn new(config: GenConfig) -> Generator {
        let mut rng = StdRng::seed_from_u64(config.seed);
        // Out-of-range or NaN ratios are clamped rather than rejected so the
        // generator stays infallible; `random_bool` would panic on them.
        let failure_ratio = if config.failure_ratio.is_finite() {
            config.failure_ratio.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let principals = vec![
            Principal {
                id: "okta-provisioner".to_string(),
                kind: "service",
                source_system: "okta-prod",
                user_agent: "Okta SCIM Client 1.0",
                ips: ips_in(&mut rng, "203.0.113", 4),
                style: IdStyle::Okta,
                targets: vec![0, 1],
            },
            Principal {
                id: "entra-sync".to_string(),
                kind: "service",
                source_system: "entra-id",
                user_agent: "Azure AD SCIM",
                ips: ips_in(&mut rng, "198.51.100", 3),
                style: IdStyle::Entra,
                targets: vec![2, 3],
            },
            Principal {
                id: "alice.admin".to_string(),
                kind: "user",
                source_system: "admin-script",
                user_agent: "python-requests/2.32",
                ips: ips_in(&mut rng, "192.0.2", 1),
                style: IdStyle::Script,
                targets: (0..TARGET_SYSTEMS.len()).collect(),
            },
        ];
        Generator {
            rng,
            clock: config.start,
            step: config.step,
            failure_ratio,
            principals,
            directories: TARGET_SYSTEMS.iter().map(|s| Directory::new(s)).collect(),
            next_employee_number: 100_000,
        }
    }

    /// The next exchange of ordinary mixed traffic.
    pub fn next_event(&mut self) -> Value {
        let p = self.pick_principal();
        let t = self.pick_target(p);
        let now = self.tick();
        let fail = self.roll_failure();
        let exchange = match self.rng.random_range(0..100u32) {
            0..35 if self.directories[t].users.len() < MAX_USERS_PER_TARGET => {
                self.create_user(t, p, now, fail)
            }
            0..35 => self.delete_user(t, p, now, fail),
            35..65 => self.patch_user(t, p, now, fail),
            65..70 => self.put_user(t, p, now, fail),
            70..78 => self.delete_user(t, p, now, fail),
            78..85 if self.directories[t].groups.len() < MAX_GROUPS_PER_TARGET => {
                self.create_group(t, p, now, fail)
            }
            78..85 => self.delete_group(t, p, now, fail),
            85..97 => self.patch_group(t, p, now, fail),
            _ => self.delete_group(t, p, now, fail),
        };
        let correlation_id = random_uuid(&mut self.rng).to_string();
        self.record(p, t, now, exchange, &correlation_id)
    }

    /// `count` exchanges by one principal in quick succession (a "burst", e.g. mass deactivation:
    /// PATCH active=false on existing users, or DELETEs, creating users first if there are too few),
    /// all with event times within `within` of each other, advancing the generator's clock.
    ///
    /// The burst hits one target; all its exchanges share one correlation id, as
    /// they would when a single job run issues them. If the target lacks users,
    /// the burst opens with just enough POST /Users (part of `count`) for the
    /// rest to deactivate or delete. A principal id the generator does not know
    /// is treated as a human running an ad-hoc script against any target.
    pub fn burst(&mut self, principal_id: &str, count: usize, within: Duration) -> Vec<Value> {
        if count == 0 {
            return Vec::new();
        }
        let p = self.principal_for(principal_id);
        let t = self.pick_target(p);
        let deleting = self.rng.random_bool(0.3);
        let correlation_id = random_uuid(&mut self.rng).to_string();
        let offsets = self.burst_offsets(count, within);

        let eligible = self.directories[t]
            .users
            .iter()
            .filter(|u| deleting || u.active)
            .count();
        // Half the shortfall suffices because every created user is itself a
        // victim for the remaining slots.
        let creates = count.saturating_sub(eligible).div_ceil(2);

        let start = self.clock;
        let mut last = start;
        let mut victims: Option<Vec<String>> = None;
        let mut events = Vec::with_capacity(count);
        for (k, offset) in offsets.into_iter().enumerate() {
            let now = start.checked_add_signed(offset).unwrap_or(start);
            last = now;
            let fail = self.roll_failure();
            let exchange = if k < creates {
                self.create_user(t, p, now, fail)
            } else {
                // Chosen only after the creates so the fresh users are victims too.
                let list = victims.get_or_insert_with(|| {
                    let mut ids: Vec<String> = self.directories[t]
                        .users
                        .iter()
                        .filter(|u| deleting || u.active)
                        .map(|u| u.id.clone())
                        .collect();
                    ids.shuffle(&mut self.rng);
                    ids
                });
                let victim = list
                    .pop()
                    .and_then(|id| self.directories[t].user_index(&id));
                match victim {
                    Some(i) if deleting => self.delete_user_at(t, p, i, now, fail),
                    Some(i) => self.patch_user_at(t, p, i, UserChange::Active(false), now, fail),
                    // Only reachable when failed creates left too few users.
                    None => self.create_user(t, p, now, fail),
                }
            };
            events.push(self.record(p, t, now, exchange, &correlation_id));
        }
        self.clock = last.checked_add_signed(self.step).unwrap_or(last);
        events
    }

    fn tick(&mut self) -> DateTime<Utc> {
        let now = self.clock;
        // Saturate instead of panicking at the far end of chrono's range.
        self.clock = now.checked_add_signed(self.step).unwrap_or(now);
        now
    }

    fn roll_failure(&mut self) -> bool {
        self.failure_ratio > 0.0 && self.rng.random_bool(self.failure_ratio)
    }

    fn pick_principal(&mut self) -> usize {
        match self.rng.random_range(0..100u32) {
            0..55 => 0,
            55..90 => 1,
            _ => 2,
        }
    }

    fn pick_target(&mut self, p: usize) -> usize {
        self.principals
            .get(p)
            .and_then(|pr| pr.targets.choose(&mut self.rng).copied())
            .unwrap_or(0)
    }

    fn principal_for(&mut self, id: &str) -> usize {
        if let Some(i) = self.principals.iter().position(|p| p.id == id) {
            return i;
        }
        let ips = ips_in(&mut self.rng, "192.0.2", 1);
        self.principals.push(Principal {
            id: id.to_string(),
            kind: "user",
            source_system: "admin-script",
            user_agent: "python-requests/2.32",
            ips,
            style: IdStyle::Script,
            targets: (0..TARGET_SYSTEMS.len()).collect(),
        });
        self.principals.len() - 1
    }

    fn burst_offsets(&mut self, count: usize, within: Duration) -> Vec<Duration> {
        // Whole milliseconds, because the contract's timestamps are truncated to
        // milliseconds and sub-millisecond offsets could round past `within`.
        let span = within.num_milliseconds().max(0);
        let mut offsets: Vec<i64> = (1..count)
            .map(|_| self.rng.random_range(0..=span))
            .collect();
        offsets.push(0);
        offsets.sort_unstable();
        offsets
            .into_iter()
            .map(|ms| Duration::try_milliseconds(ms).unwrap_or_else(Duration::zero))
            .collect()
    }

    fn record(
        &mut self,
        p: usize,
        t: usize,
        now: DateTime<Utc>,
        exchange: Exchange,
        correlation_id: &str,
    ) -> Value {
        let id = random_uuid(&mut self.rng).to_string();
        let mut source = Map::new();
        let mut principal = Map::new();
        if let Some(pr) = self.principals.get(p) {
            source.insert("system".into(), json!(pr.source_system));
            if let Some(ip) = pr.ips.choose(&mut self.rng) {
                source.insert("ip".into(), json!(ip));
            }
            source.insert("user_agent".into(), json!(pr.user_agent));
            principal.insert("id".into(), json!(pr.id));
            principal.insert("type".into(), json!(pr.kind));
        }
        let mut target = Map::new();
        if let Some(dir) = self.directories.get(t) {
            target.insert("system".into(), json!(dir.system));
            target.insert("base_url".into(), json!(dir.base_url));
        }
        let mut request = Map::new();
        request.insert("method".into(), json!(exchange.method));
        request.insert("path".into(), json!(exchange.path));
        if let Some(body) = exchange.request {
            request.insert("body".into(), body);
        }
        let mut response = Map::new();
        response.insert("status".into(), json!(exchange.status));
        if let Some(body) = exchange.response {
            response.insert("body".into(), body);
        }
        json!({
            "id": id,
            "time": timestamp(now),
            "source": source,
            "principal": principal,
            "target": target,
            "request": request,
            "response": response,
            "correlation_id": correlation_id,
        })
    }

    fn draft_user(&mut self, t: usize, p: usize, now: DateTime<Utc>) -> User {
        let given = pick(&mut self.rng, &FIRST_NAMES);
        let family = pick(&mut self.rng, &LAST_NAMES);
        let style = self
            .principals
            .get(p)
            .map_or(IdStyle::Script, |pr| pr.style);
        let external_id = user_external_id(&mut self.rng, style);
        let dir = &self.directories[t];
        let user_name = dir.free_user_name(given, family);
        let title = self
            .rng
            .random_bool(0.7)
            .then(|| pick(&mut self.rng, &TITLES).to_string());
        let enterprise = if self.rng.random_bool(0.4) {
            self.next_employee_number += 1;
            let manager = if self.rng.random_bool(0.7) {
                dir.users.choose(&mut self.rng).map(|m| Manager {
                    id: m.id.clone(),
                    display_name: m.display_name.clone(),
                })
            } else {
                None
            };
            Some(Enterprise {
                employee_number: Some(self.next_employee_number.to_string()),
                department: Some(pick(&mut self.rng, &DEPARTMENTS).to_string()),
                manager,
            })
        } else {
            None
        };
        User {
            id: random_uuid(&mut self.rng).to_string(),
            external_id,
            email: user_name.clone(),
            user_name,
            given_name: given.to_string(),
            family_name: family.to_string(),
            display_name: format!("{given} {family}"),
            active: true,
            title,
            phone_numbers: Vec::new(),
            enterprise,
            created: now,
            last_modified: now,
            version: random_version(&mut self.rng),
        }
    }

    fn create_user(&mut self, t: usize, p: usize, now: DateTime<Utc>, fail: bool) -> Exchange {
        let mut user = self.draft_user(t, p, now);
        if fail {
            let roll = self.rng.random_range(0..100u32);
            if roll < 60 {
                // An IdP re-pushing someone who already exists is the common
                // real-world 409; it needs an existing userName to collide with.
                if let Some(existing) = self.directories[t].users.choose(&mut self.rng) {
                    user.user_name = existing.user_name.clone();
                    user.email = existing.email.clone();
                    let detail = format!("User with userName '{}' already exists", user.user_name);
                    return Exchange {
                        method: "POST",
                        path: "/Users".to_string(),
                        request: Some(Value::Object(user.body(false))),
                        status: 409,
                        response: Some(scim_error(409, Some("uniqueness"), detail)),
                    };
                }
            }
            if roll < 90 {
                user.email = user.email.replace('@', " at ");
                return Exchange {
                    method: "POST",
                    path: "/Users".to_string(),
                    request: Some(Value::Object(user.body(false))),
                    status: 400,
                    response: Some(scim_error(
                        400,
                        Some("invalidValue"),
                        "Attribute 'emails[0].value' is not a valid email address".to_string(),
                    )),
                };
            }
            return Exchange {
                method: "POST",
                path: "/Users".to_string(),
                request: Some(Value::Object(user.body(false))),
                status: 500,
                response: Some(internal_error()),
            };
        }
        let dir = &mut self.directories[t];
        let request = Value::Object(user.body(false));
        let response = user.resource(&dir.base_url);
        dir.user_names.insert(user.user_name.clone());
        dir.users.push(user);
        Exchange {
            method: "POST",
            path: "/Users".to_string(),
            request: Some(request),
            status: 201,
            response: Some(response),
        }
    }

    fn patch_user(&mut self, t: usize, p: usize, now: DateTime<Utc>, fail: bool) -> Exchange {
        let len = self.directories[t].users.len();
        if len == 0 {
            return self.create_user(t, p, now, fail);
        }
        let i = self.rng.random_range(0..len);
        let change = self.pick_change(t, i);
        self.patch_user_at(t, p, i, change, now, fail)
    }

    fn pick_change(&mut self, t: usize, i: usize) -> UserChange {
        let Some(user) = self.directories[t].users.get(i) else {
            return UserChange::Title(pick(&mut self.rng, &TITLES).to_string());
        };
        match self.rng.random_range(0..100u32) {
            0..30 => UserChange::Active(!user.active),
            30..55 => UserChange::Title(pick(&mut self.rng, &TITLES).to_string()),
            55..65 => {
                let given = pick(&mut self.rng, &FIRST_NAMES);
                UserChange::GivenName {
                    given: given.to_string(),
                    display: format!("{given} {}", user.family_name),
                }
            }
            65..75 => {
                let local = user
                    .user_name
                    .split_once('@')
                    .map_or(user.user_name.as_str(), |(l, _)| l);
                let domain = pick(&mut self.rng, &EMAIL_DOMAINS);
                UserChange::WorkEmail(format!("{local}@{domain}"))
            }
            // 555-01xx is the block reserved for fictional use.
            75..87 => UserChange::AddPhone(format!(
                "+1-202-555-01{:02}",
                self.rng.random_range(0..100u32)
            )),
            _ => UserChange::Department(pick(&mut self.rng, &DEPARTMENTS).to_string()),
        }
    }

    fn patch_user_at(
        &mut self,
        t: usize,
        p: usize,
        i: usize,
        change: UserChange,
        now: DateTime<Utc>,
        fail: bool,
    ) -> Exchange {
        let body = patch_body(change.operations());
        if fail {
            let (invalid, detail) = if self.rng.random_bool(0.5) {
                (
                    json!({"op": "replace", "path": "active", "value": "sometimes"}),
                    "Attribute 'active' must be a boolean",
                )
            } else {
                (
                    json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": "not-an-email"}),
                    "Attribute 'emails[type eq \"work\"].value' is not a valid email address",
                )
            };
            let existing = self.directories[t].users.get(i).map(|u| u.id.clone());
            return self.fail_user_write(
                t,
                existing,
                "PATCH",
                Some(body),
                Some((patch_body(vec![invalid]), detail.to_string())),
            );
        }
        let dir = &mut self.directories[t];
        // Callers pass a live index; falling back keeps this path panic-free.
        let Some(user) = dir.users.get_mut(i) else {
            return self.create_user(t, p, now, false);
        };
        change.apply(user);
        user.last_modified = now;
        user.version = random_version(&mut self.rng);
        Exchange {
            method: "PATCH",
            path: format!("/Users/{}", user.id),
            request: Some(body),
            status: 200,
            response: Some(user.resource(&dir.base_url)),
        }
    }

    fn put_user(&mut self, t: usize, p: usize, now: DateTime<Utc>, fail: bool) -> Exchange {
        let len = self.directories[t].users.len();
        if len == 0 {
            return self.create_user(t, p, now, fail);
        }
        let i = self.rng.random_range(0..len);
        let Some(mut updated) = self.directories[t].users.get(i).cloned() else {
            return self.create_user(t, p, now, fail);
        };
        if self.rng.random_bool(0.8) {
            updated.title = Some(pick(&mut self.rng, &TITLES).to_string());
        }
        if self.rng.random_bool(0.4) {
            let department = Some(pick(&mut self.rng, &DEPARTMENTS).to_string());
            match updated.enterprise.as_mut() {
                Some(ent) => ent.department = department,
                None => {
                    updated.enterprise = Some(Enterprise {
                        employee_number: None,
                        department,
                        manager: None,
                    })
                }
            }
        }
        if self.rng.random_bool(0.1) {
            updated.active = !updated.active;
        }
        if fail {
            let mut invalid = updated.clone();
            invalid.email = invalid.email.replace('@', " at ");
            return self.fail_user_write(
                t,
                Some(updated.id.clone()),
                "PUT",
                Some(Value::Object(updated.body(true))),
                Some((
                    Value::Object(invalid.body(true)),
                    "Attribute 'emails[0].value' is not a valid email address".to_string(),
                )),
            );
        }
        updated.last_modified = now;
        updated.version = random_version(&mut self.rng);
        let dir = &mut self.directories[t];
        let exchange = Exchange {
            method: "PUT",
            path: format!("/Users/{}", updated.id),
            request: Some(Value::Object(updated.body(true))),
            status: 200,
            response: Some(updated.resource(&dir.base_url)),
        };
        if let Some(slot) = dir.users.get_mut(i) {
            *slot = updated;
        }
        exchange
    }

    fn delete_user(&mut self, t: usize, p: usize, now: DateTime<Utc>, fail: bool) -> Exchange {
        let len = self.directories[t].users.len();
        if len == 0 {
            return self.create_user(t, p, now, fail);
        }
        let i = self.rng.random_range(0..len);
        self.delete_user_at(t, p, i, now, fail)
    }

    fn delete_user_at(
        &mut self,
        t: usize,
        p: usize,
        i: usize,
        now: DateTime<Utc>,
        fail: bool,
    ) -> Exchange {
        if fail {
            let existing = self.directories[t].users.get(i).map(|u| u.id.clone());
            return self.fail_user_write(t, existing, "DELETE", None, None);
        }
        let dir = &mut self.directories[t];
        if i >= dir.users.len() {
            return self.create_user(t, p, now, false);
        }
        let user = dir.users.remove(i);
        dir.user_names.remove(&user.user_name);
        // Servers drop memberships of a deleted user; without this a later group
        // PATCH could remove a member that no longer exists.
        for group in &mut dir.groups {
            let before = group.members.len();
            group.members.retain(|m| m.value != user.id);
            if group.members.len() != before {
                group.last_modified = now;
                group.version = random_version(&mut self.rng);
            }
        }
        remember_gone(&mut dir.gone_users, user.id.clone());
        Exchange {
            method: "DELETE",
            path: format!("/Users/{}", user.id),
            request: None,
            status: 204,
            response: None,
        }
    }

    /// A failed write to `/Users/{id}`: mostly a 404 on an id the target does
    /// not hold, otherwise a 400 (when there is a body to get wrong) or a 500
    /// on the real user.
    fn fail_user_write(
        &mut self,
        t: usize,
        existing: Option<String>,
        method: &'static str,
        body: Option<Value>,
        invalid: Option<(Value, String)>,
    ) -> Exchange {
        let roll = self.rng.random_range(0..100u32);
        let not_found = roll < 50 || (invalid.is_none() && roll < 80);
        let existing = match existing {
            Some(id) if !not_found => id,
            _ => {
                let id = self.unknown_user_id(t);
                let mut body = body;
                // A PUT body carries the id; keep it in step with the path.
                if let Some(Value::Object(m)) = body.as_mut() {
                    if m.contains_key("id") {
                        m.insert("id".into(), json!(id));
                    }
                }
                return Exchange {
                    method,
                    path: format!("/Users/{id}"),
                    request: body,
                    status: 404,
                    response: Some(scim_error(404, None, format!("Resource {id} not found"))),
                };
            }
        };
        match invalid {
            Some((invalid_body, detail)) if roll < 85 => Exchange {
                method,
                path: format!("/Users/{existing}"),
                request: Some(invalid_body),
                status: 400,
                response: Some(scim_error(400, Some("invalidValue"), detail)),
            },
            _ => Exchange {
                method,
                path: format!("/Users/{existing}"),
                request: body,
                status: 500,
                response: Some(internal_error()),
            },
        }
    }

    fn unknown_user_id(&mut self, t: usize) -> String {
        // Replaying a since-deleted id is the realistic 404 (stale IdP state);
        // a never-seen id covers typos and foreign ids.
        if self.rng.random_bool(0.4) {
            if let Some(id) = self.directories[t].gone_users.choose(&mut self.rng) {
                return id.clone();
            }
        }
        random_uuid(&mut self.rng).to_string()
    }

    fn unknown_group_id(&mut self, t: usize) -> String {
        if self.rng.random_bool(0.4) {
            if let Some(id) = self.directories[t].gone_groups.choose(&mut self.rng) {
                return id.clone();
            }
        }
        random_uuid(&mut self.rng).to_string()
    }

    fn create_group(&mut self, t: usize, p: usize, now: DateTime<Utc>, fail: bool) -> Exchange {
        let style = self
            .principals
            .get(p)
            .map_or(IdStyle::Script, |pr| pr.style);
        let external_id = group_external_id(&mut self.rng, style);
        let display_name = self.directories[t].free_group_name(&mut self.rng);
        let mut group = Group {
            id: random_uuid(&mut self.rng).to_string(),
            display_name,
            external_id,
            members: Vec::new(),
            created: now,
            last_modified: now,
            version: random_version(&mut self.rng),
        };
        if fail {
            let roll = self.rng.random_range(0..100u32);
            if roll < 70 {
                if let Some(existing) = self.directories[t].groups.choose(&mut self.rng) {
                    group.display_name = existing.display_name.clone();
                    let detail = format!(
                        "Group with displayName '{}' already exists",
                        group.display_name
                    );
                    return Exchange {
                        method: "POST",
                        path: "/Groups".to_string(),
                        request: Some(Value::Object(group.body(false))),
                        status: 409,
                        response: Some(scim_error(409, Some("uniqueness"), detail)),
                    };
                }
            }
            if roll < 90 {
                group.display_name = String::new();
                return Exchange {
                    method: "POST",
                    path: "/Groups".to_string(),
                    request: Some(Value::Object(group.body(false))),
                    status: 400,
                    response: Some(scim_error(
                        400,
                        Some("invalidValue"),
                        "Attribute 'displayName' must not be empty".to_string(),
                    )),
                };
            }
            return Exchange {
                method: "POST",
                path: "/Groups".to_string(),
                request: Some(Value::Object(group.body(false))),
                status: 500,
                response: Some(internal_error()),
            };
        }
        let dir = &mut self.directories[t];
        let request = Value::Object(group.body(false));
        let response = group.resource(&dir.base_url);
        dir.group_names.insert(group.display_name.clone());
        dir.groups.push(group);
        Exchange {
            method: "POST",
            path: "/Groups".to_string(),
            request: Some(request),
            status: 201,
            response: Some(response),
        }
    }

    fn patch_group(&mut self, t: usize, p: usize, now: DateTime<Utc>, fail: bool) -> Exchange {
        let dir = &self.directories[t];
        if dir.groups.is_empty() {
            return self.create_group(t, p, now, fail);
        }
        if dir.users.is_empty() {
            return self.create_user(t, p, now, fail);
        }
        let gi = self.rng.random_range(0..dir.groups.len());
        let Some(group) = dir.groups.get(gi) else {
            return self.create_group(t, p, now, fail);
        };
        let wanted = match self.rng.random_range(0..100u32) {
            0..75 => 1,
            75..93 => 2,
            _ => 3,
        };
        let added = sample_non_members(&mut self.rng, &dir.users, group, wanted);
        let removing =
            !group.members.is_empty() && (added.is_empty() || self.rng.random_bool(0.35));
        let (operation, added, removed) = if removing {
            let Some(member) = group.members.choose(&mut self.rng) else {
                return self.create_user(t, p, now, fail);
            };
            (
                json!({"op": "remove", "path": format!("members[value eq \"{}\"]", member.value)}),
                Vec::new(),
                Some(member.value.clone()),
            )
        } else {
            let value: Vec<Value> = added
                .iter()
                .map(|m| json!({"value": m.value, "display": m.display}))
                .collect();
            (
                json!({"op": "add", "path": "members", "value": value}),
                added,
                None,
            )
        };
        let group_id = group.id.clone();
        let body = patch_body(vec![operation]);
        if fail {
            let roll = self.rng.random_range(0..100u32);
            if roll < 45 {
                let id = self.unknown_group_id(t);
                return Exchange {
                    method: "PATCH",
                    path: format!("/Groups/{id}"),
                    request: Some(body),
                    status: 404,
                    response: Some(scim_error(404, None, format!("Resource {id} not found"))),
                };
            }
            if roll < 85 {
                let ghost = random_uuid(&mut self.rng).to_string();
                let invalid = patch_body(vec![
                    json!({"op": "add", "path": "members", "value": [{"value": ghost}]}),
                ]);
                return Exchange {
                    method: "PATCH",
                    path: format!("/Groups/{group_id}"),
                    request: Some(invalid),
                    status: 400,
                    response: Some(scim_error(
                        400,
                        Some("invalidValue"),
                        format!("Member '{ghost}' does not exist"),
                    )),
                };
            }
            return Exchange {
                method: "PATCH",
                path: format!("/Groups/{group_id}"),
                request: Some(body),
                status: 500,
                response: Some(internal_error()),
            };
        }
        if let Some(group) = self.directories[t].groups.get_mut(gi) {
            if let Some(id) = removed {
                group.members.retain(|m| m.value != id);
            }
            group.members.extend(added);
            group.last_modified = now;
            group.version = random_version(&mut self.rng);
        }
        // RFC 7644 3.5.2 lets the server answer 204; most do for membership
        // changes, since echoing a large group back is expensive.
        Exchange {
            method: "PATCH",
            path: format!("/Groups/{group_id}"),
            request: Some(body),
            status: 204,
            response: None,
        }
    }

    fn delete_group(&mut self, t: usize, p: usize, now: DateTime<Utc>, fail: bool) -> Exchange {
        let deletable: Vec<usize> = self.directories[t]
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| !PRIVILEGED_GROUPS.contains(&g.display_name.as_str()))
            .map(|(i, _)| i)
            .collect();
        let Some(&gi) = deletable.choose(&mut self.rng) else {
            return self.create_group(t, p, now, fail);
        };
        if fail {
            let roll = self.rng.random_range(0..100u32);
            let (id, status, response) = if roll < 80 {
                let id = self.unknown_group_id(t);
                let detail = format!("Resource {id} not found");
                (id, 404, scim_error(404, None, detail))
            } else {
                let id = self.directories[t]
                    .groups
                    .get(gi)
                    .map(|g| g.id.clone())
                    .unwrap_or_default();
                (id, 500, internal_error())
            };
            return Exchange {
                method: "DELETE",
                path: format!("/Groups/{id}"),
                request: None,
                status,
                response: Some(response),
            };
        }
        let dir = &mut self.directories[t];
        if gi >= dir.groups.len() {
            return self.create_group(t, p, now, false);
        }
        let group = dir.groups.remove(gi);
        dir.group_names.remove(&group.display_name);
        remember_gone(&mut dir.gone_groups, group.id.clone());
        Exchange {
            method: "DELETE",
            path: format!("/Groups/{}", group.id),
            request: None,
            status: 204,
            response: None,
        }
    }
}

/// Endless ordinary traffic, so callers can use `take`, `by_ref` and friends.
impl Iterator for Generator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        Some(self.next_event())
    }
}

impl Directory {
    fn new(system: &'static str) -> Directory {
        Directory {
            system,
            base_url: format!("https://{system}.example.test/scim/v2"),
            users: Vec::new(),
            groups: Vec::new(),
            user_names: BTreeSet::new(),
            group_names: BTreeSet::new(),
            gone_users: Vec::new(),
            gone_groups: Vec::new(),
        }
    }

    fn user_index(&self, id: &str) -> Option<usize> {
        self.users.iter().position(|u| u.id == id)
    }

    fn free_user_name(&self, given: &str, family: &str) -> String {
        let base = format!(
            "{}.{}",
            given.to_ascii_lowercase(),
            family.to_ascii_lowercase()
        );
        let mut candidate = format!("{base}@example.com");
        let mut n = 2u64;
        while self.user_names.contains(&candidate) {
            candidate = format!("{base}{n}@example.com");
            n += 1;
        }
        candidate
    }

    fn free_group_name(&self, rng: &mut StdRng) -> String {
        let free: Vec<&str> = GROUP_NAMES
            .iter()
            .copied()
            .filter(|n| !self.group_names.contains(*n))
            .collect();
        if let Some(name) = free.choose(rng) {
            return (*name).to_string();
        }
        let base = pick(rng, &GROUP_NAMES);
        let mut n = 2u64;
        loop {
            let candidate = format!("{base}-{n}");
            if !self.group_names.contains(&candidate) {
                return candidate;
            }
            n += 1;
        }
    }
}

impl User {
    fn body(&self, with_id: bool) -> Map<String, Value> {
        let mut schemas = vec![USER_SCHEMA];
        if self.enterprise.is_some() {
            schemas.push(ENTERPRISE_SCHEMA);
        }
        let mut body = Map::new();
        body.insert("schemas".into(), json!(schemas));
        if with_id {
            body.insert("id".into(), json!(self.id));
        }
        body.insert("externalId".into(), json!(self.external_id));
        body.insert("userName".into(), json!(self.user_name));
        body.insert(
            "name".into(),
            json!({"givenName": self.given_name, "familyName": self.family_name}),
        );
        body.insert("displayName".into(), json!(self.display_name));
        body.insert(
            "emails".into(),
            json!([{"value": self.email, "type": "work", "primary": true}]),
        );
        body.insert("active".into(), json!(self.active));
        if let Some(title) = &self.title {
            body.insert("title".into(), json!(title));
        }
        if !self.phone_numbers.is_empty() {
            let phones: Vec<Value> = self
                .phone_numbers
                .iter()
                .map(|n| json!({"value": n, "type": "work"}))
                .collect();
            body.insert("phoneNumbers".into(), Value::Array(phones));
        }
        if let Some(ent) = &self.enterprise {
            let mut ext = Map::new();
            if let Some(n) = &ent.employee_number {
                ext.insert("employeeNumber".into(), json!(n));
            }
            if let Some(d) = &ent.department {
                ext.insert("department".into(), json!(d));
            }
            if let Some(m) = &ent.manager {
                ext.insert(
                    "manager".into(),
                    json!({"value": m.id, "displayName": m.display_name}),
                );
            }
            body.insert(ENTERPRISE_SCHEMA.into(), Value::Object(ext));
        }
        body
    }

    fn resource(&self, base_url: &str) -> Value {
        let mut body = self.body(true);
        body.insert(
            "meta".into(),
            meta(
                "User",
                self.created,
                self.last_modified,
                format!("{base_url}/Users/{}", self.id),
                &self.version,
            ),
        );
        Value::Object(body)
    }
}

impl Group {
    fn body(&self, with_id: bool) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("schemas".into(), json!([GROUP_SCHEMA]));
        if with_id {
            body.insert("id".into(), json!(self.id));
        }
        if let Some(ext) = &self.external_id {
            body.insert("externalId".into(), json!(ext));
        }
        body.insert("displayName".into(), json!(self.display_name));
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|m| json!({"value": m.value, "display": m.display}))
            .collect();
        body.insert("members".into(), Value::Array(members));
        body
    }

    fn resource(&self, base_url: &str) -> Value {
        let mut body = self.body(true);
        body.insert(
            "meta".into(),
            meta(
                "Group",
                self.created,
                self.last_modified,
                format!("{base_url}/Groups/{}", self.id),
                &self.version,
            ),
        );
        Value::Object(body)
    }
}

impl UserChange {
    fn operations(&self) -> Vec<Value> {
        match self {
            UserChange::Active(active) => {
                vec![json!({"op": "replace", "path": "active", "value": active})]
            }
            UserChange::Title(title) => {
                vec![json!({"op": "replace", "path": "title", "value": title})]
            }
            // IdPs send displayName alongside because servers do not derive it.
            UserChange::GivenName { given, display } => vec![
                json!({"op": "replace", "path": "name.givenName", "value": given}),
                json!({"op": "replace", "path": "displayName", "value": display}),
            ],
            UserChange::WorkEmail(email) => vec![json!({
                "op": "replace",
                "path": "emails[type eq \"work\"].value",
                "value": email,
            })],
            UserChange::AddPhone(number) => vec![json!({
                "op": "add",
                "path": "phoneNumbers",
                "value": [{"value": number, "type": "work"}],
            })],
            UserChange::Department(department) => vec![json!({
                "op": "replace",
                "path": format!("{ENTERPRISE_SCHEMA}:department"),
                "value": department,
            })],
        }
    }

    fn apply(&self, user: &mut User) {
        match self {
            UserChange::Active(active) => user.active = *active,
            UserChange::Title(title) => user.title = Some(title.clone()),
            UserChange::GivenName { given, display } => {
                user.given_name = given.clone();
                user.display_name = display.clone();
            }
            UserChange::WorkEmail(email) => user.email = email.clone(),
            UserChange::AddPhone(number) => user.phone_numbers.push(number.clone()),
            UserChange::Department(department) => match user.enterprise.as_mut() {
                Some(ent) => ent.department = Some(department.clone()),
                None => {
                    user.enterprise = Some(Enterprise {
                        employee_number: None,
                        department: Some(department.clone()),
                        manager: None,
                    })
                }
            },
        }
    }
}

fn patch_body(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": operations})
}

fn scim_error(status: u16, scim_type: Option<&str>, detail: String) -> Value {
    let mut body = Map::new();
    body.insert("schemas".into(), json!([ERROR_SCHEMA]));
    // RFC 7644 3.12 makes the status a string, not a number.
    body.insert("status".into(), json!(status.to_string()));
    if let Some(scim_type) = scim_type {
        body.insert("scimType".into(), json!(scim_type));
    }
    body.insert("detail".into(), json!(detail));
    Value::Object(body)
}

fn internal_error() -> Value {
    scim_error(500, None, "Internal server error".to_string())
}

fn meta(
    resource_type: &str,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    location: String,
    version: &str,
) -> Value {
    json!({
        "resourceType": resource_type,
        "created": timestamp(created),
        "lastModified": timestamp(last_modified),
        "location": location,
        "version": version,
    })
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A v4 UUID drawn from the seeded RNG; `Uuid::new_v4` would pull from the OS
/// and break reproducibility.
fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn random_version(rng: &mut StdRng) -> String {
    format!("W/\"{:016x}\"", rng.random::<u64>())
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

fn ips_in(rng: &mut StdRng, prefix: &str, count: usize) -> Vec<String> {
    rand::seq::index::sample(rng, 254, count)
        .into_iter()
        .map(|host| format!("{prefix}.{}", host + 1))
        .collect()
}

fn base62(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

// Each IdP stamps externalId in its own recognisable format, which keeps the
// principal/resource pairing plausible to anyone reading the stream.
fn user_external_id(rng: &mut StdRng, style: IdStyle) -> String {
    match style {
        IdStyle::Okta => format!("00u{}", base62(rng, 17)),
        IdStyle::Entra => random_uuid(rng).to_string(),
        IdStyle::Script => format!("E{:06}", rng.random_range(0..1_000_000u32)),
    }
}

fn group_external_id(rng: &mut StdRng, style: IdStyle) -> Option<String> {
    match style {
        IdStyle::Okta => Some(format!("00g{}", base62(rng, 17))),
        IdStyle::Entra => Some(random_uuid(rng).to_string()),
        IdStyle::Script => None,
    }
}

/// Up to `wanted` distinct users outside `group`, found by rejection sampling
/// because building the full complement would cost O(users x members) per event.
fn sample_non_members(
    rng: &mut StdRng,
    users: &[User],
    group: &Group,
    wanted: usize,
) -> Vec<Member> {
    let mut picked: Vec<Member> = Vec::with_capacity(wanted);
    for _ in 0..wanted * 8 {
        if picked.len() == wanted {
            break;
        }
        let Some(user) = users.choose(rng) else {
            break;
        };
        let taken = group.members.iter().any(|m| m.value == user.id)
            || picked.iter().any(|m| m.value == user.id);
        if !taken {
            picked.push(Member {
                value: user.id.clone(),
                display: user.user_name.clone(),
            });
        }
    }
    picked
}

fn remember_gone(gone: &mut Vec<String>, id: String) {
    if gone.len() >= GONE_IDS_KEPT {
        gone.remove(0);
    }
    gone.push(id);
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    fn config(seed: u64, failure_ratio: f64) -> GenConfig {
        GenConfig {
            seed,
            start: DateTime::parse_from_rfc3339("2025-03-01T09:00:00Z")
                .expect("valid literal")
                .with_timezone(&Utc),
            step: Duration::milliseconds(1500),
            failure_ratio,
        }
    }

    /// Ordinary traffic with a few bursts mixed in, as `scimtrail gen` would emit.
    fn stream(seed: u64, failure_ratio: f64, n: usize) -> Vec<Value> {
        let mut generator = Generator::new(config(seed, failure_ratio));
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if out.len() % 700 == 350 {
                out.extend(generator.burst("okta-provisioner", 25, Duration::seconds(20)));
                out.extend(generator.burst("mallory", 15, Duration::seconds(5)));
            } else {
                out.push(generator.next_event());
            }
        }
        out
    }

    fn text<'a>(event: &'a Value, pointer: &str) -> &'a str {
        event
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{pointer} missing or not a string in {event}"))
    }

    fn status(event: &Value) -> u64 {
        event
            .pointer("/response/status")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("response.status missing in {event}"))
    }

    fn time(event: &Value) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text(event, "/time"))
            .expect("time is RFC 3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn same_seed_gives_identical_output() {
        assert_eq!(stream(42, 0.1, 2_000), stream(42, 0.1, 2_000));
        assert_ne!(stream(42, 0.1, 200), stream(43, 0.1, 200));
    }

    #[test]
    fn every_event_has_required_fields_and_a_path_matching_its_method() {
        for event in stream(7, 0.2, 5_000) {
            assert!(!text(&event, "/id").is_empty());
            assert!(!text(&event, "/source/system").is_empty());
            assert!(!text(&event, "/principal/id").is_empty());
            assert!(!text(&event, "/target/system").is_empty());
            assert!(!text(&event, "/correlation_id").is_empty());
            assert!(matches!(
                text(&event, "/principal/type"),
                "service" | "user"
            ));

            let stamp = text(&event, "/time");
            assert!(stamp.ends_with('Z'), "not UTC: {stamp}");
            assert_eq!(stamp.len(), "2025-03-01T09:00:00.000Z".len(), "{stamp}");
            time(&event);

            let method = text(&event, "/request/method");
            let path = text(&event, "/request/path");
            let segments: Vec<&str> = path.split('/').collect();
            match method {
                "POST" => assert!(path == "/Users" || path == "/Groups", "{path}"),
                "PATCH" | "PUT" | "DELETE" => {
                    assert_eq!(segments.len(), 3, "{path}");
                    assert!(segments[1] == "Users" || segments[1] == "Groups");
                    assert!(Uuid::parse_str(segments[2]).is_ok(), "{path}");
                    if method == "PUT" {
                        assert_eq!(segments[1], "Users");
                    }
                }
                other => panic!("unexpected method {other}"),
            }
            let has_body = event.pointer("/request/body").is_some();
            assert_eq!(has_body, method != "DELETE", "{event}");

            let code = status(&event);
            if code >= 400 {
                let body = event.pointer("/response/body").expect("error body");
                assert_eq!(body["schemas"], json!([ERROR_SCHEMA]));
                assert_eq!(body["status"], json!(code.to_string()));
            } else {
                let expected = match method {
                    "POST" => 201,
                    "DELETE" => 204,
                    "PATCH" if segments[1] == "Groups" => 204,
                    _ => 200,
                };
                assert_eq!(code, expected, "{event}");
                assert_eq!(event.pointer("/response/body").is_some(), code != 204);
            }
        }
    }

    #[test]
    fn successful_writes_only_touch_live_resources_of_their_target() {
        // Per target: live user ids and live group ids, rebuilt from the stream alone.
        let mut users: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        let mut groups: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        for event in stream(11, 0.15, 10_000) {
            let code = status(&event);
            if code >= 400 {
                continue;
            }
            let target = text(&event, "/target/system").to_string();
            let method = text(&event, "/request/method");
            let path = text(&event, "/request/path");
            let live_users = users.entry(target.clone()).or_default();
            let live_groups = groups.entry(target).or_default();
            if method == "POST" {
                let id = text(&event, "/response/body/id").to_string();
                let fresh = if path == "/Users" {
                    live_users.insert(id)
                } else {
                    live_groups.insert(id)
                };
                assert!(fresh, "created id reused: {event}");
                continue;
            }
            let (kind, id) = path
                .trim_start_matches('/')
                .split_once('/')
                .expect("resource path");
            let live = if kind == "Users" {
                &mut *live_users
            } else {
                &mut *live_groups
            };
            assert!(live.contains(id), "{method} on unknown {kind} id: {event}");
            if method == "DELETE" {
                live.remove(id);
            }
            if kind == "Groups" && method == "PATCH" {
                for op in event["request"]["body"]["Operations"]
                    .as_array()
                    .expect("Operations")
                {
                    if op["op"] == "add" {
                        for member in op["value"].as_array().expect("members") {
                            let member = member["value"].as_str().expect("member id");
                            assert!(live_users.contains(member), "{event}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn burst_returns_count_events_by_the_principal_within_the_window() {
        let mut generator = Generator::new(config(3, 0.05));
        for _ in 0..40 {
            generator.next_event();
        }
        let within = Duration::seconds(30);
        for (who, kind, count) in [
            ("alice.admin", "user", 60),
            ("entra-sync", "service", 5),
            ("mallory", "user", 1),
        ] {
            let events = generator.burst(who, count, within);
            assert_eq!(events.len(), count);
            let times: Vec<DateTime<Utc>> = events.iter().map(time).collect();
            let first = times.iter().min().copied().expect("non-empty");
            let last = times.iter().max().copied().expect("non-empty");
            assert!(last - first <= within);
            for event in &events {
                assert_eq!(text(event, "/principal/id"), who);
                assert_eq!(text(event, "/principal/type"), kind);
            }
            let next = generator.next_event();
            assert!(time(&next) > last, "clock did not advance past the burst");
        }
        assert!(generator.burst("alice.admin", 0, within).is_empty());
    }

    #[test]
    fn burst_on_a_small_directory_creates_users_before_removing_them() {
        let mut generator = Generator::new(config(5, 0.0));
        let events = generator.burst("okta-provisioner", 40, Duration::seconds(10));
        assert_eq!(events.len(), 40);
        let creates = events
            .iter()
            .take_while(|e| text(e, "/request/method") == "POST")
            .count();
        assert_eq!(creates, 20);
        for event in &events[creates..] {
            assert!(matches!(text(event, "/request/method"), "PATCH" | "DELETE"));
        }
    }

    #[test]
    fn zero_failure_ratio_yields_no_errors() {
        for event in stream(9, 0.0, 5_000) {
            assert!(status(&event) < 400, "{event}");
        }
    }

    #[test]
    fn full_failure_ratio_fails_every_exchange() {
        for event in stream(9, 1.0, 2_000) {
            assert!(status(&event) >= 400, "{event}");
        }
    }

    #[test]
    fn ids_are_unique_over_ten_thousand_events() {
        let events = stream(13, 0.1, 10_000);
        let ids: HashSet<&str> = events.iter().map(|e| text(e, "/id")).collect();
        assert_eq!(ids.len(), events.len());
    }

    #[test]
    fn traffic_covers_every_operation_and_stays_ascii() {
        let mut seen = BTreeSet::new();
        for event in stream(17, 0.1, 5_000) {
            assert!(event.to_string().is_ascii(), "{event}");
            let path = text(&event, "/request/path");
            let resource = if path.starts_with("/Users") {
                "Users"
            } else {
                "Groups"
            };
            seen.insert((text(&event, "/request/method").to_string(), resource));
        }
        for (method, resource) in [
            ("POST", "Users"),
            ("PATCH", "Users"),
            ("PUT", "Users"),
            ("DELETE", "Users"),
            ("POST", "Groups"),
            ("PATCH", "Groups"),
            ("DELETE", "Groups"),
        ] {
            assert!(
                seen.contains(&(method.to_string(), resource)),
                "{method} {resource}"
            );
        }
    }

    #[test]
    fn each_principal_keeps_one_source() {
        let mut sources: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for event in stream(19, 0.1, 3_000) {
            sources
                .entry(text(&event, "/principal/id").to_string())
                .or_default()
                .insert(format!(
                    "{}|{}",
                    text(&event, "/source/system"),
                    text(&event, "/source/user_agent")
                ));
        }
        assert!(sources.len() >= 3);
        for (principal, seen) in sources {
            assert_eq!(seen.len(), 1, "{principal}: {seen:?}");
        }
    }
}
