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

/// How a service finds its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    pub service: &'static str,
    pub default_admin_listen: &'static str,
    /// Keys whose environment value is a comma-separated list.
    pub list_keys: &'static [&'static str],
}

impl Startup {
    /// Loads and validates the configuration from `config_file` (or
    /// `SCIMTRAIL_CONFIG`) and the environment.
    pub fn load<S: DeserializeOwned + Default + Validate>(
        &self,
        config_file: Option<PathBuf>,
    ) -> Result<ServiceConfig<S>, crate::config::ConfigError> {
        let file = config_file.or_else(|| std::env::var_os("SCIMTRAIL_CONFIG").map(PathBuf::from));
        let mut env = config::Environment::with_prefix(crate::config::ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        if !self.list_keys.is_empty() {
            env = env.list_separator(",");
            for k in self.list_keys {
                env = env.with_list_parse_key(k);
            }
        }
        crate::config::load_from(
            LoadOptions {
                section: self.service,
                default_admin_listen: self.default_admin_listen,
                file: file.as_deref(),
            },
            env,
        )
    }

    /// `--check-config`: validates the configuration, prints the verdict and
    /// exits without connecting to anything, so a deployment can be checked
    /// before it rolls out.
    pub fn check<S: DeserializeOwned + Default + Validate>(
        &self,
        config_file: Option<PathBuf>,
    ) -> anyhow::Result<()> {
        self.load::<S>(config_file)?;
        println!("scimtrail-{}: configuration ok", self.service);
        Ok(())
    }
}

impl<S: DeserializeOwned + Default + Validate> App<S> {
    pub async fn start(startup: Startup, config_file: Option<PathBuf>) -> anyhow::Result<Self> {
        let config: ServiceConfig<S> = startup.load(config_file)?;
        crate::telemetry::init(&config.common.log);
        let registry = crate::metrics::registry();
        crate::metrics::build_info(&registry, startup.service);
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

/// Command line of every service binary.
#[derive(Debug, clap::Parser)]
pub struct ServiceArgs {
    /// TOML configuration file (also `SCIMTRAIL_CONFIG`); env vars `SCIMTRAIL__…` override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Validate the configuration and exit (0: valid) without connecting to anything.
    #[arg(long)]
    pub check_config: bool,
}

/// The whole `main` of a service binary: parse the command line, then either
/// check the configuration or run until SIGTERM/SIGINT.
pub async fn service_main<Run, Fut>(
    binary: &'static str,
    about: &'static str,
    check: fn(Option<PathBuf>) -> anyhow::Result<()>,
    run: Run,
) -> anyhow::Result<()>
where
    Run: FnOnce(Option<PathBuf>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = ServiceArgs::command()
        .name(binary)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .get_matches();
    let args = ServiceArgs::from_arg_matches(&matches)?;
    if args.check_config {
        return check(args.config);
    }
    run(args.config).await
}
