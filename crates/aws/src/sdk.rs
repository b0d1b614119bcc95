//! The SDK configuration: standard environment, bounded in time.
//!
//! Every function and the CLI build their clients from [`load`], which reads only what the
//! SDK itself reads (`AWS_REGION`, the default credentials chain, `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>`). Tests point the same loader at the local emulator through
//! [`bounded`], so the bounds under test are the bounds in production.
//!
//! The HTTPS client is set here too, not left to the SDK's default: the default one is the same
//! hyper 1 / rustls 0.23 client on aws-lc-rs, a C crypto library that costs minutes of a cold
//! build and about 0.1 MB of every Lambda zip. [`https_client`] is that client on ring, with what
//! the default does kept: the platform's roots (`SSL_CERT_FILE` included), the connect and read
//! timeouts, and `HTTPS_PROXY` / `NO_PROXY` from the environment, so a company's TLS proxy still
//! works (tests/tests/tls.rs holds both).
//!
//! Building that client's connector parses every TLS root of the platform's bundle (a PEM
//! file's base64, then each certificate's DER): a few milliseconds, and the largest piece of
//! sgwarden's own cold start. [`https_client`] starts it on a thread of its own when the
//! configuration is loaded, so it runs beside the rest of the start (the runtime, the policy,
//! the Lambda Runtime API's first `next`) instead of inside the first AWS call.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_ec2::config::SharedHttpClient;
use aws_smithy_async::rt::sleep::{default_async_sleep, SharedAsyncSleep};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Connector;
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::HttpConnectorSettings;

/// A TCP/TLS connect that takes longer than this is a region we cannot reach.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one call.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call, retries included: the most any single AWS call can cost an invocation.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(12);
/// Standard retry (exponential backoff with jitter, throttling-aware), bounded.
pub const MAX_ATTEMPTS: u32 = 3;

/// Applies sgwarden's timeouts and retry bounds to a loader.
pub fn bounded(loader: ConfigLoader) -> ConfigLoader {
    loader
        .http_client(https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_max_backoff(Duration::from_secs(2)),
        )
}

/// The HTTPS client of every AWS call: rustls on ring, the platform's roots, the connector
/// settings the SDK passes in (connect timeout), and the proxy the environment names. Every
/// client the SDK builds outside [`load`] (instance metadata's, say) must be given it: the
/// SDK has no default client to fall back on, and panics without one.
///
/// The connector for sgwarden's own settings ([`CONNECT_TIMEOUT`], no read timeout, the
/// SDK's default sleep) is built at once on a thread of its own, and handed over the first
/// time a client asks for exactly those settings; any other settings get a connector built
/// there and then. Either way the connector is the same function of the same inputs.
pub fn https_client() -> SharedHttpClient {
    let standard = HttpConnectorSettings::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build();
    let prepared = {
        let settings = standard.clone();
        Mutex::new(Some(std::thread::spawn(move || {
            https_connector(Some(settings), default_async_sleep())
        })))
    };
    Builder::new().build_with_connector_fn(move |settings, components| {
        let sleep = components.and_then(|c| c.sleep_impl());
        if settings.is_some_and(|s| same_settings(s, &standard)) {
            if let Some(connector) = take_prepared(&prepared) {
                return connector;
            }
        }
        https_connector(settings.cloned(), sleep)
    })
}

/// The connector built ahead, once: `None` after it was taken, or if its thread failed (a
/// panic, which the dev profile unwinds), and the caller builds one itself.
fn take_prepared(prepared: &Mutex<Option<JoinHandle<Connector>>>) -> Option<Connector> {
    let handle = prepared.lock().ok()?.take()?;
    handle.join().ok()
}

/// What the SDK's connector cache tells connectors apart by.
fn same_settings(a: &HttpConnectorSettings, b: &HttpConnectorSettings) -> bool {
    a.connect_timeout() == b.connect_timeout() && a.read_timeout() == b.read_timeout()
}

fn https_connector(
    settings: Option<HttpConnectorSettings>,
    sleep: Option<SharedAsyncSleep>,
) -> Connector {
    let mut connector =
        ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
    connector.set_connector_settings(settings);
    connector.set_sleep_impl(sleep);
    connector.set_proxy_config(Some(ProxyConfig::from_env()));
    connector.build()
}

/// Attempts of one EC2 call. EC2 throttles per account and region (`RequestLimitExceeded`);
/// a throttled call is retried in the SDK's adaptive mode, whose client-side rate limiter
/// then sends at the rate EC2 accepts, so a large sweep slows down instead of failing groups.
pub(crate) const EC2_MAX_ATTEMPTS: u32 = 5;

/// The retry configuration of every EC2 client: adaptive, within [`OPERATION_TIMEOUT`].
pub(crate) fn ec2_retry() -> RetryConfig {
    RetryConfig::adaptive()
        .with_max_attempts(EC2_MAX_ATTEMPTS)
        .with_max_backoff(Duration::from_secs(2))
}

/// The configuration from the SDK's standard environment, bounded.
pub async fn load() -> SdkConfig {
    bounded(aws_config::defaults(BehaviorVersion::latest()))
        .load()
        .await
}

/// The same configuration pointed at another region (a peer region, the region of an event).
pub fn in_region(config: &SdkConfig, region: &str) -> SdkConfig {
    config
        .to_builder()
        .region(Region::new(region.to_string()))
        .build()
}

/// The region a configuration is for, as text (`unknown` when none is set).
pub fn region_of(config: &SdkConfig) -> String {
    config
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Clients of one kind, one per region, created on first use and kept for the life of the
/// process: a function that acts in the region an event names builds each region's client
/// once, not once per event.
pub struct Regional<T> {
    sdk: SdkConfig,
    make: fn(&SdkConfig) -> T,
    clients: std::sync::Mutex<std::collections::BTreeMap<String, T>>,
}

impl<T: Clone> Regional<T> {
    /// Clients that `make` (a constructor such as `Ec2::new`) builds from `sdk` moved to each
    /// region asked for; none is built before [`Regional::get`] asks.
    pub fn new(sdk: &SdkConfig, make: fn(&SdkConfig) -> T) -> Self {
        Self {
            sdk: sdk.clone(),
            make,
            clients: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// The client for `region`.
    pub fn get(&self, region: &str) -> T {
        // A poisoned lock only means another invocation panicked while inserting a client;
        // the map itself is still usable.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| (self.make)(&in_region(&self.sdk, region)))
            .clone()
    }
}

impl<T> std::fmt::Debug for Regional<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Regional")
    }
}
