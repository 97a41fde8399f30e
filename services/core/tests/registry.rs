//! Confluent wire format against a schema registry speaking the Confluent REST
//! API (an in-process stand-in: registering and fetching schemas by id).

use std::sync::{Arc, Mutex};

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use scimtrail_core::config::SchemaRegistryConfig;
use scimtrail_core::schema::{AuditAction, AuditEvent, AvroCodec, Framing};

#[derive(Clone, Default)]
struct Registry {
    schemas: Arc<Mutex<Vec<(String, String)>>>,
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let schema = body["schema"].as_str().unwrap_or_default().to_string();
    let mut s = r.schemas.lock().expect("lock");
    if let Some(i) = s.iter().position(|(_, x)| *x == schema) {
        return Json(json!({"id": i + 1}));
    }
    s.push((subject, schema));
    Json(json!({"id": s.len()}))
}

async fn by_id(State(r): State<Registry>, Path(id): Path<usize>) -> (StatusCode, Json<Value>) {
    let s = r.schemas.lock().expect("lock");
    match id.checked_sub(1).and_then(|i| s.get(i)) {
        Some((_, schema)) => (StatusCode::OK, Json(json!({"schema": schema}))),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error_code": 40403, "message": "Schema not found"})),
        ),
    }
}

/// Starts the registry on its own runtime thread (the codec's client blocks).
fn start_registry() -> (String, Registry) {
    let reg = Registry::default();
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(register))
        .route("/schemas/ids/{id}", get(by_id))
        .with_state(reg.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let addr = rx.recv().expect("registry address");
    (format!("http://{addr}"), reg)
}

fn event() -> AuditEvent {
    let mut e = scimtrail_core::schema::fixtures::audit_event("e1");
    e.action = AuditAction::Delete;
    e.correlation_id = Some("c".into());
    e
}

#[test]
fn confluent_framing_registers_and_resolves_evolved_writer_schemas() {
    let (url, reg) = start_registry();
    let framing = Framing::from_config(&SchemaRegistryConfig { url: Some(url) }).expect("framing");
    let codec: AvroCodec<AuditEvent> = AvroCodec::with_framing(
        scimtrail_core::schema::AUDIT_EVENT_AVSC,
        framing,
        "audit.events.v1-value",
    )
    .expect("register");
    assert_eq!(
        reg.schemas.lock().expect("lock")[0].0,
        "audit.events.v1-value"
    );

    let bytes = codec.encode(&event()).expect("encode");
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1], "magic byte and schema id 1");
    assert_eq!(codec.decode(&bytes).expect("decode"), event());

    // A newer producer adds an optional field and registers schema 2; this
    // reader fetches it by id and resolves it against its own schema.
    let mut v2: Value =
        serde_json::from_str(scimtrail_core::schema::AUDIT_EVENT_AVSC).expect("JSON");
    v2["fields"].as_array_mut().expect("fields").push(
        json!({"name": "tenant", "type": ["null", "string"], "default": null, "doc": "Tenant."}),
    );
    let v2 = Schema::parse_str(&v2.to_string()).expect("v2 parses");
    {
        let mut s = reg.schemas.lock().expect("lock");
        s.push(("audit.events.v1-value".into(), v2.canonical_form()));
    }
    let mut value = apache_avro::to_value(event()).expect("to value");
    if let Avro::Record(fields) = &mut value {
        fields.push((
            "tenant".into(),
            Avro::Union(1, Box::new(Avro::String("acme".into()))),
        ));
    }
    let value = value.resolve(&v2).expect("valid under v2");
    let mut framed = vec![0, 0, 0, 0, 2];
    framed.extend(apache_avro::to_avro_datum(&v2, value).expect("encode v2"));
    assert_eq!(codec.decode(&framed).expect("decode v2 data"), event());

    // An unknown id is an error, not a guess.
    let err = codec.decode(&[0, 0, 0, 0, 9, 0]).expect_err("unknown id");
    assert!(err.to_string().contains("schema registry"), "{err}");
}

#[test]
fn registry_credentials_never_appear_in_errors() {
    // Nothing listens on port 9: every call fails, and says where it went.
    let framing = Framing::from_config(&SchemaRegistryConfig {
        url: Some("http://scimtrail:s3cret@127.0.0.1:9".into()),
    })
    .expect("framing");
    let err = AvroCodec::<AuditEvent>::with_framing(
        scimtrail_core::schema::AUDIT_EVENT_AVSC,
        framing,
        "audit.events.v1-value",
    )
    .err()
    .expect("registry unreachable");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:9"), "{text}");
    assert!(
        !text.contains("s3cret") && !text.contains("scimtrail:"),
        "{text}"
    );
}
