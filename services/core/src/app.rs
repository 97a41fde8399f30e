//! Start-up shared by every service: load and validate config, install logging,
//! start the admin server and the signal handler. A service's `main` is then a
//! few lines: `App::start` and its stage loops.

use std::net::SocketAddr;
use std::path::PathBuf;

use prometheus::Registry;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::admin::Health;
use crate::config::{LoadOptions, ServiceConfig, Validate};

/// A running service's shared handles.
pub struct App<S> {
    pub config: ServiceConfig<S>,
    pub registry: Registry,
    pub health: Health,
    pub shutdown: CancellationToken,
    pub admin_addr: SocketAddr,
}

/// Where a service's configuration comes from.
pub struct Startup<'a> {
    pub service: &'a str,
    pub default_admin_listen: &'a str,
    pub config_file: Option<PathBuf>,
    /// Keys whose environment value is a comma-separated list.
    pub list_keys: &'a [&'a str],
}

impl<S: DeserializeOwned + Default + Validate> App<S> {
    pub async fn start(startup: Startup<'_>) -> anyhow::Result<Self> {
        let file = startup
            .config_file
            .or_else(|| std::env::var_os("SCIMTRAIL_CONFIG").map(PathBuf::from));
        let mut env = config::Environment::with_prefix(crate::config::ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        if !startup.list_keys.is_empty() {
            env = env.list_separator(",");
            for k in startup.list_keys {
                env = env.with_list_parse_key(k);
            }
        }
        let config: ServiceConfig<S> = crate::config::load_from(
            LoadOptions {
                section: startup.service,
                default_admin_listen: startup.default_admin_listen,
                file: file.as_deref(),
            },
            env,
        )?;
        crate::telemetry::init(&config.common.log);
        let registry = crate::metrics::registry();
        let health = Health::new();
        let shutdown = crate::shutdown::on_signal();
        let admin_addr = crate::admin::serve(
            config.common.admin.listen,
            registry.clone(),
            health.clone(),
            shutdown.clone(),
        )
        .await?;
        tracing::info!(
            message = "starting",
            service = startup.service,
            version = env!("CARGO_PKG_VERSION"),
            brokers = %config.common.kafka.brokers,
            instance_id = %config.common.kafka.instance_id(),
            admin = %admin_addr,
        );
        Ok(App {
            config,
            registry,
            health,
            shutdown,
            admin_addr,
        })
    }
}
