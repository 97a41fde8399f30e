//! `schedule`: events outside the allowed days and hours, in an IANA time
//! zone (daylight saving included). The day is the event's local day; an
//! hour range whose end is before its start wraps past midnight.

use chrono::{DateTime, Datelike, Timelike};

use scimtrail_core::schema::EnrichedAuditEvent;

use super::super::alert;
use super::super::config::{Kind, Rule, ScheduleSpec};
use super::super::state::{Info, Obs};

pub(super) fn observe(s: &ScheduleSpec, e: &EnrichedAuditEvent) -> Option<Obs> {
    let local = DateTime::from_timestamp_millis(e.event.event_time)?.with_timezone(&s.tz);
    let day_ok = s.days[local.weekday().num_days_from_monday() as usize];
    let minute = local.hour() * 60 + local.minute();
    let hour_ok = s.hours.iter().any(|&(a, b)| {
        if a < b {
            a <= minute && minute < b
        } else {
            minute >= a || minute < b
        }
    });
    if day_ok && hour_ok {
        return None;
    }
    Some(Obs::Hit {
        note: Some(local.format("%a %Y-%m-%d %H:%M %Z").to_string()),
    })
}

/// `bjensen changed User alice in github-enterprise at Sat 2026-01-03 23:14 CET, outside mon-fri 08:00-18:00 (Europe/Berlin)`.
pub(super) fn summary(rule: &Rule, i: &Info, local: Option<&str>) -> String {
    let allowed = match &rule.kind {
        Kind::Schedule(s) => s.text.as_str(),
        _ => "",
    };
    format!(
        "{} {} {} in {} at {}, outside {}",
        i.principal,
        alert::verb(i).0,
        alert::resource(i),
        i.target,
        local.unwrap_or("?"),
        allowed
    )
}
