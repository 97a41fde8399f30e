//! scimtrail's PATCH engine, called the way the pipeline calls it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use scimtrail_core::scim::patch::{apply, Compat, PatchOptions};
use scimtrail_core::scim::schema::ResourceSchema;
use serde_json::Value;

use crate::compare::Outcome;

pub struct Engine {
    user: &'static ResourceSchema,
    group: &'static ResourceSchema,
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            user: ResourceSchema::for_type("User"),
            group: ResourceSchema::for_type("Group"),
        }
    }

    /// Applies a request; a panic is an answer too (`crash: panic`), so one
    /// bad case is reported with the others instead of ending the run.
    pub fn apply(
        &self,
        resource_type: &str,
        resource: &Value,
        request: &Value,
        lenient: bool,
    ) -> Outcome {
        let schema = if resource_type == "Group" {
            self.group
        } else {
            self.user
        };
        let opts = PatchOptions {
            compat: if lenient {
                Compat::Lenient
            } else {
                Compat::Strict
            },
        };
        match catch_unwind(AssertUnwindSafe(|| apply(resource, request, schema, &opts))) {
            Ok(Ok(result)) => Outcome::Ok(result),
            Ok(Err(e)) => Outcome::Err {
                scim_type: e.scim_type.as_str().to_string(),
                detail: e.detail.clone(),
            },
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Outcome::Err {
                    scim_type: "crash: panic".into(),
                    detail: msg,
                }
            }
        }
    }
}
