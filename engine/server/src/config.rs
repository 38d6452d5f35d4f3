//! `allotd`'s settings: what a `ServerConfig` holds, its working localhost defaults, and
//! how a TOML file, the environment and command-line flags are merged into one
//! (file < environment < flags).
//!
//! # The configuration file
//!
//! Every key is optional; `engine/server/allotd.example.toml` shows them all with their defaults.
//! Unknown keys are refused, so a misspelt one is reported instead of ignored. Relative
//! paths are taken from the working directory.
//!
//! ```toml
//! listen = "127.0.0.1:7411"      # UDP address to serve QUIC on
//! data_dir = "./allot-data"      # log, snapshots, LOCK and the development files
//! network_threads = 0            # 0: one per core but one, at least one
//!
//! [tls]
//! cert = "/etc/allot/cert.pem"   # PEM chain, leaf first; with `key`. Without both, a
//! key = "/etc/allot/key.pem"     # development certificate is made in the data directory
//! client_ca = "/etc/allot/ca.pem" # optional mutual TLS: clients chained to this CA...
//! client_cert_role = "read"      # ...get this role when their Hello token is empty
//!
//! [[tokens]]                     # one table per client credential
//! name = "checkout-eu"           # for logs (the token itself is never logged)
//! role = "checkout"              # checkout | fulfilment | admin | read
//! token = "…"                    # or token_file = "/run/secrets/checkout-eu"
//!
//! [limits]
//! connections_max = 1024
//! admin_connections_reserved = 4
//! streams_per_connection_max = 64
//! in_flight_requests_per_connection_max = 4096
//! frame_bytes_max = 4194304      # at most the protocol's 4 MiB
//! connection_buffer_bytes_max = 8388608   # unfinished frames + queued answers, per connection
//! server_buffer_bytes_max = 536870912     # the same over all connections
//! frame_timeout_ms = 10000       # a frame must arrive whole this soon after its first byte
//! handshake_timeout_ms = 10000
//! idle_timeout_ms = 30000
//! shutdown_drain_ms = 5000
//! memory_limit_bytes = 12884901888 # unset: 75 % of MemTotal; see `memory_budget`
//!
//! [engine]
//! ingress_queue_len_max = 65536
//! batch_requests_max = 16384
//! segment_bytes_target = 67108864
//! snapshot_every_records = 4000000   # 0 turns this trigger off
//! snapshot_every_log_bytes = 67108864 # 0 turns this trigger off
//! snapshot_every_ms = 300000          # 0 turns this trigger off
//! snapshot_on_shutdown = true         # when the last snapshot's duration says it fits
//! shutdown_deadline_ms = 10000        # the engine's part of a shutdown, at most
//! skus_max = 2097152                  # table caps: a new entry past one is Overloaded
//! holds_max = 8388608
//! orders_max = 4194304
//! idempotency_keys_max = 16777216     # a full key table forgets its oldest
//!
//! [routing]                      # any key set: every unset one takes its default
//! distance_minor_per_km = 1      # score per km from the location to the customer
//! shipping_cost_percent = 100    # share of the location's shipping cost in the score
//! workload_penalty_minor = 500   # score of a location at full capacity
//! shipments_max = 4              # most locations one order is split over
//! ```
//!
//! With no `[[tokens]]`, the server creates (once) an admin token in
//! `<data_dir>/dev-token` and says so in its log.
//!
//! # Environment and flags
//!
//! `ALLOTD_CONFIG` (the file), `ALLOTD_DATA_DIR` and `ALLOTD_LISTEN` override the file;
//! the flags `--config`, `--data-dir` and `--listen` override both.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use allot_protocol::Role;
use allot_protocol::limits::{FRAME_BYTES_MAX, TOKEN_BYTES_MAX};
use serde::Deserialize;

use allot_engine::EngineConfig;
use allot_engine::core::routing::{RoutingWeights, check_weights};

/// Default address: loopback only, so a development server is not reachable from outside.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7411";
/// Default data directory, relative to the working directory.
pub const DATA_DIR_DEFAULT: &str = "allot-data";

/// Default most connections at once; a new one above it is refused at once.
pub const CONNECTIONS_MAX_DEFAULT: u32 = 1_024;
/// Default connections kept for the admin role beyond `connections_max`, so an operator
/// can still connect when ordinary clients have taken every slot.
pub const ADMIN_CONNECTIONS_RESERVED_DEFAULT: u32 = 4;
/// Default most bidirectional streams a connection may have open at once (QUIC stream
/// credit, so a client above it waits rather than fails).
pub const STREAMS_PER_CONNECTION_MAX_DEFAULT: u32 = 64;
/// Default most unanswered requests per connection, over all its streams.
pub const IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT: u32 = 4_096;
/// Smallest frame limit that may be configured: room for any handshake and request
/// a client is allowed to send one at a time.
pub const FRAME_BYTES_MAX_MIN: u32 = 16 * 1024;
/// Default most bytes one connection may make the server hold in unfinished frames and
/// answers not yet handed to QUIC: room for two frames of the largest size.
pub const CONNECTION_BUFFER_BYTES_MAX_DEFAULT: u64 = 8 * 1024 * 1024;
/// Default most bytes all connections together may make the server hold that way.
pub const SERVER_BUFFER_BYTES_MAX_DEFAULT: u64 = 512 * 1024 * 1024;
/// Default time a frame has, from its first byte read, to arrive whole.
pub const FRAME_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default time a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default time a connection may be silent before it is closed.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default time shutdown waits for answers in flight to reach their clients.
pub const SHUTDOWN_DRAIN_MS_DEFAULT: u64 = 5_000;

/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "ALLOTD_CONFIG";
/// Environment variable overriding `data_dir`.
pub const ENV_DATA_DIR: &str = "ALLOTD_DATA_DIR";
/// Environment variable overriding `listen`.
pub const ENV_LISTEN: &str = "ALLOTD_LISTEN";
/// Most threads serving the network a configuration may ask for.
pub const NETWORK_THREADS_MAX: usize = 256;

/// Everything `Server::start` needs. `Default` serves on `127.0.0.1:7411` from
/// `./allot-data` with a development certificate and token.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Threads of `allotd`'s async runtime (QUIC, TLS, framing); 0 picks
    /// [`ServerConfig::network_threads_for`] the machine. Not used by `Server::start`,
    /// which runs on its caller's runtime.
    pub network_threads: usize,
    pub tls: TlsSource,
    /// Bearer tokens and their roles; empty means a development admin token.
    pub tokens: Vec<TokenConfig>,
    /// With a CA, clients presenting a certificate chained to it are verified.
    pub client_ca: Option<PathBuf>,
    /// The role of a verified client certificate whose Hello carries no token.
    pub client_cert_role: Role,
    pub limits: Limits,
    pub engine: EngineConfig,
}

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// `<data_dir>/dev-cert.pem` and `dev-key.pem`, created on first start.
    Dev,
    /// PEM files: the chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
}

/// One client credential.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// Shown in logs in place of the token.
    pub name: String,
    pub token: String,
    pub role: Role,
}

// The token is a secret: a config printed in a log must not reveal it.
impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// The limits the server enforces on its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connections_max: u32,
    /// Connections beyond `connections_max` that only the admin role may use: such a
    /// connection's streams must say Hello with an admin credential, else it is closed.
    pub admin_connections_reserved: u32,
    pub streams_per_connection_max: u32,
    pub in_flight_requests_per_connection_max: u32,
    /// At most the protocol's `FRAME_BYTES_MAX`; lower it to bound what one stream may
    /// make the server buffer.
    pub frame_bytes_max: u32,
    /// Bytes one connection may make the server hold in unfinished frames and queued
    /// answers; at the limit its streams stop reading. At least `frame_bytes_max`.
    pub connection_buffer_bytes_max: u64,
    /// The same over all connections; at least `connection_buffer_bytes_max`.
    pub server_buffer_bytes_max: u64,
    /// A frame not whole this long after its first byte was read ends its stream.
    pub frame_timeout_ms: u64,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub shutdown_drain_ms: u64,
    /// The memory `allotd` may plan for: its tables at their caps, both copies of the
    /// state, the ingress queue and the server's buffers must fit (`memory_budget`).
    /// `None`: `MEMORY_LIMIT_PERCENT_DEFAULT` % of the machine's memory.
    pub memory_limit_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: CONNECTIONS_MAX_DEFAULT,
            admin_connections_reserved: ADMIN_CONNECTIONS_RESERVED_DEFAULT,
            streams_per_connection_max: STREAMS_PER_CONNECTION_MAX_DEFAULT,
            in_flight_requests_per_connection_max: IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX as u32,
            connection_buffer_bytes_max: CONNECTION_BUFFER_BYTES_MAX_DEFAULT,
            server_buffer_bytes_max: SERVER_BUFFER_BYTES_MAX_DEFAULT,
            frame_timeout_ms: FRAME_TIMEOUT_MS_DEFAULT,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            shutdown_drain_ms: SHUTDOWN_DRAIN_MS_DEFAULT,
            memory_limit_bytes: None,
        }
    }
}

impl Limits {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_millis(self.shutdown_drain_ms)
    }

    pub fn frame_timeout(&self) -> Duration {
        Duration::from_millis(self.frame_timeout_ms)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let counts = [
            ("connections_max", self.connections_max),
            ("streams_per_connection_max", self.streams_per_connection_max),
            ("in_flight_requests_per_connection_max", self.in_flight_requests_per_connection_max),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError(format!("limits.{name} must be at least 1")));
        }
        let frame_max = FRAME_BYTES_MAX as u32;
        if !(FRAME_BYTES_MAX_MIN..=frame_max).contains(&self.frame_bytes_max) {
            return Err(ConfigError(format!(
                "limits.frame_bytes_max {} is outside {FRAME_BYTES_MAX_MIN}..={frame_max}",
                self.frame_bytes_max
            )));
        }
        self.check_buffers()?;
        let times = [
            ("frame_timeout_ms", self.frame_timeout_ms),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
        ];
        if let Some((name, _)) = times.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError(format!("limits.{name} must be at least 1")));
        }
        Ok(())
    }
}

impl Limits {
    /// A connection's budget must fit a whole frame, and the server's a connection's.
    fn check_buffers(&self) -> Result<(), ConfigError> {
        let frame = u64::from(self.frame_bytes_max);
        if self.connection_buffer_bytes_max < frame {
            return Err(ConfigError(format!(
                "limits.connection_buffer_bytes_max {} is under frame_bytes_max {frame}",
                self.connection_buffer_bytes_max
            )));
        }
        if self.server_buffer_bytes_max < self.connection_buffer_bytes_max {
            return Err(ConfigError(format!(
                "limits.server_buffer_bytes_max {} is under connection_buffer_bytes_max {}",
                self.server_buffer_bytes_max, self.connection_buffer_bytes_max
            )));
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: LISTEN_DEFAULT.parse().expect("the default address parses"),
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            network_threads: 0,
            tls: TlsSource::Dev,
            tokens: Vec::new(),
            client_ca: None,
            client_cert_role: Role::Read,
            limits: Limits::default(),
            engine: EngineConfig::default(),
        }
    }
}

impl ServerConfig {
    /// The defaults, serving from `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig { data_dir: data_dir.into(), ..ServerConfig::default() }
    }

    pub fn with_listen(mut self, listen: SocketAddr) -> ServerConfig {
        self.listen = listen;
        self
    }

    pub fn with_data_dir(mut self, data_dir: impl Into<PathBuf>) -> ServerConfig {
        self.data_dir = data_dir.into();
        self
    }

    /// Adds a bearer token; the first one turns the development token off.
    pub fn with_token(mut self, token: impl Into<String>, role: Role) -> ServerConfig {
        let name = format!("token-{}", self.tokens.len() + 1);
        self.tokens.push(TokenConfig { name, token: token.into(), role });
        self
    }

    pub fn with_tls_files(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> ServerConfig {
        self.tls = TlsSource::Files { cert: cert.into(), key: key.into() };
        self
    }

    /// Verifies client certificates chained to `ca`; they get `role` with an empty token.
    pub fn with_client_ca(mut self, ca: impl Into<PathBuf>, role: Role) -> ServerConfig {
        self.client_ca = Some(ca.into());
        self.client_cert_role = role;
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> ServerConfig {
        self.limits = limits;
        self
    }

    pub fn with_engine(mut self, engine: EngineConfig) -> ServerConfig {
        self.engine = engine;
        self
    }

    /// Merges the defaults, the configuration file (from `flags.config`, else
    /// `ALLOTD_CONFIG` in `env`), the environment and the flags, in that order of
    /// increasing precedence, and checks the result.
    pub fn load(flags: &Flags, env: &HashMap<String, String>) -> Result<ServerConfig, ConfigError> {
        let mut config = ServerConfig::default();
        let file = flags.config.clone().or_else(|| env.get(ENV_CONFIG).map(PathBuf::from));
        if let Some(path) = file {
            FileConfig::read(&path)?.apply(&mut config).map_err(|error| error.in_file(&path))?;
        }
        apply_env(&mut config, env)?;
        if let Some(data_dir) = &flags.data_dir {
            config.data_dir = data_dir.clone();
        }
        if let Some(listen) = flags.listen {
            config.listen = listen;
        }
        config.check()?;
        Ok(config)
    }

    /// The runtime threads to start on a machine with `cores` cores: as configured, or
    /// one per core but one, at least one. The writer thread does the engine's work and
    /// should not have to fight network threads for every core: on the 2-core project
    /// machine, one network thread served 30 k one-at-a-time holds/s where two served
    /// 20 k (BENCHMARKS.md).
    pub fn network_threads_for(&self, cores: usize) -> usize {
        match self.network_threads {
            0 => cores.saturating_sub(1).max(1),
            configured => configured,
        }
    }

    /// Refuses settings that could not work; `Server::start` calls it too.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.network_threads > NETWORK_THREADS_MAX {
            return Err(ConfigError(format!("network_threads is over {NETWORK_THREADS_MAX}")));
        }
        self.limits.check()?;
        if self.limits.memory_limit_bytes == Some(0) {
            return Err(ConfigError("limits.memory_limit_bytes must be at least 1".into()));
        }
        self.engine.caps.check().map_err(|error| ConfigError(format!("engine.{error}")))?;
        let keys_max = self.engine.idempotency.keys_max;
        let ceiling = allot_engine::core::limits::IDEMPOTENCY_KEYS_MAX;
        if keys_max == 0 || keys_max > ceiling {
            return Err(ConfigError(format!(
                "engine.idempotency_keys_max must be 1 to {ceiling}, not {keys_max}"
            )));
        }
        for (index, token) in self.tokens.iter().enumerate() {
            check_token(index, token)?;
        }
        for (index, token) in self.tokens.iter().enumerate() {
            if self.tokens[..index].iter().any(|earlier| earlier.token == token.token) {
                return Err(ConfigError(format!(
                    "tokens[{index}] ({}) repeats an earlier token",
                    token.name
                )));
            }
        }
        Ok(())
    }
}

fn check_token(index: usize, token: &TokenConfig) -> Result<(), ConfigError> {
    let name = &token.name;
    if token.token.is_empty() {
        return Err(ConfigError(format!("tokens[{index}] ({name}) is empty")));
    }
    if token.token.len() > TOKEN_BYTES_MAX {
        return Err(ConfigError(format!(
            "tokens[{index}] ({name}) is {} bytes, over {TOKEN_BYTES_MAX}",
            token.token.len()
        )));
    }
    if token.token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError(format!("tokens[{index}] ({name}) contains whitespace")));
    }
    Ok(())
}

fn apply_env(config: &mut ServerConfig, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    if let Some(data_dir) = env.get(ENV_DATA_DIR) {
        config.data_dir = PathBuf::from(data_dir);
    }
    if let Some(listen) = env.get(ENV_LISTEN) {
        config.listen = parse_listen(ENV_LISTEN, listen)?;
    }
    Ok(())
}

fn parse_listen(source: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError(format!("{source}: {value:?} is not an address such as 127.0.0.1:7411"))
    })
}

/// The command-line flags `ServerConfig::load` takes; `None` leaves a setting alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

/// A setting that is missing, malformed or out of range; the message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl ConfigError {
    fn in_file(self, path: &Path) -> ConfigError {
        ConfigError(format!("{}: {}", path.display(), self.0))
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The file's layout; every key optional so the file only says what differs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    network_threads: Option<usize>,
    tls: Option<FileTls>,
    #[serde(default)]
    tokens: Vec<FileToken>,
    limits: Option<FileLimits>,
    engine: Option<FileEngine>,
    routing: Option<FileRouting>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRouting {
    distance_minor_per_km: Option<i64>,
    shipping_cost_percent: Option<i64>,
    workload_penalty_minor: Option<i64>,
    shipments_max: Option<usize>,
}

impl FileRouting {
    /// The weights this table sets, the defaults for the keys it leaves out.
    fn weights(self) -> Result<RoutingWeights, ConfigError> {
        let defaults = RoutingWeights::default();
        let weights = RoutingWeights {
            distance_minor_per_km: (self.distance_minor_per_km)
                .unwrap_or(defaults.distance_minor_per_km),
            shipping_cost_percent: (self.shipping_cost_percent)
                .unwrap_or(defaults.shipping_cost_percent),
            workload_penalty_minor: (self.workload_penalty_minor)
                .unwrap_or(defaults.workload_penalty_minor),
            shipments_max: self.shipments_max.unwrap_or(defaults.shipments_max),
        };
        check_weights(&weights).map_err(|error| ConfigError(format!("[routing]: {error}")))?;
        Ok(weights)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    client_cert_role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToken {
    name: Option<String>,
    role: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    connections_max: Option<u32>,
    admin_connections_reserved: Option<u32>,
    streams_per_connection_max: Option<u32>,
    in_flight_requests_per_connection_max: Option<u32>,
    frame_bytes_max: Option<u32>,
    connection_buffer_bytes_max: Option<u64>,
    server_buffer_bytes_max: Option<u64>,
    frame_timeout_ms: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    shutdown_drain_ms: Option<u64>,
    memory_limit_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEngine {
    ingress_queue_len_max: Option<usize>,
    batch_requests_max: Option<usize>,
    segment_bytes_target: Option<u64>,
    snapshot_every_records: Option<u64>,
    snapshot_every_log_bytes: Option<u64>,
    snapshot_every_ms: Option<u64>,
    snapshot_on_shutdown: Option<bool>,
    shutdown_deadline_ms: Option<u64>,
    skus_max: Option<usize>,
    holds_max: Option<usize>,
    orders_max: Option<usize>,
    idempotency_keys_max: Option<usize>,
}

impl FileConfig {
    fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError(format!("cannot read configuration file {}: {error}", path.display()))
        })?;
        FileConfig::parse(&text).map_err(|error| error.in_file(path))
    }

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError(error.to_string().trim_end().to_owned()))
    }

    fn apply(self, config: &mut ServerConfig) -> Result<(), ConfigError> {
        if let Some(listen) = &self.listen {
            config.listen = parse_listen("listen", listen)?;
        }
        if let Some(data_dir) = self.data_dir {
            config.data_dir = data_dir;
        }
        if let Some(threads) = self.network_threads {
            config.network_threads = threads;
        }
        if let Some(routing) = self.routing {
            config.engine.routing_weights = Some(routing.weights()?);
        }
        if let Some(tls) = self.tls {
            tls.apply(config)?;
        }
        for (index, token) in self.tokens.into_iter().enumerate() {
            config.tokens.push(token.resolve(index)?);
        }
        if let Some(limits) = self.limits {
            limits.apply(&mut config.limits);
        }
        if let Some(engine) = self.engine {
            engine.apply(&mut config.engine);
        }
        Ok(())
    }
}

impl FileTls {
    fn apply(self, config: &mut ServerConfig) -> Result<(), ConfigError> {
        config.tls = match (self.cert, self.key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (None, None) => TlsSource::Dev,
            (Some(_), None) => {
                return Err(ConfigError("tls.cert is set but tls.key is not".into()));
            }
            (None, Some(_)) => {
                return Err(ConfigError("tls.key is set but tls.cert is not".into()));
            }
        };
        config.client_ca = self.client_ca;
        if let Some(role) = self.client_cert_role {
            config.client_cert_role = parse_role("tls.client_cert_role", &role)?;
        }
        Ok(())
    }
}

fn parse_role(field: &str, name: &str) -> Result<Role, ConfigError> {
    Role::from_name(name).ok_or_else(|| {
        ConfigError(format!(
            "{field}: unknown role {name:?} (expected checkout, fulfilment, admin or read)"
        ))
    })
}

impl FileToken {
    fn resolve(self, index: usize) -> Result<TokenConfig, ConfigError> {
        let role = parse_role(&format!("tokens[{index}].role"), &self.role)?;
        let token = match (self.token, self.token_file) {
            (Some(token), None) => token,
            (None, Some(path)) => read_token_file(index, &path)?,
            _ => {
                return Err(ConfigError(format!(
                    "tokens[{index}] needs exactly one of token and token_file"
                )));
            }
        };
        let name = self.name.unwrap_or_else(|| format!("token-{}", index + 1));
        Ok(TokenConfig { name, token, role })
    }
}

fn read_token_file(index: usize, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError(format!("tokens[{index}].token_file {}: {error}", path.display()))
    })?;
    Ok(text.trim().to_owned())
}

impl FileLimits {
    fn apply(self, limits: &mut Limits) {
        let set_u32 = |value: Option<u32>, field: &mut u32| *field = value.unwrap_or(*field);
        set_u32(self.connections_max, &mut limits.connections_max);
        set_u32(self.admin_connections_reserved, &mut limits.admin_connections_reserved);
        set_u32(self.streams_per_connection_max, &mut limits.streams_per_connection_max);
        set_u32(
            self.in_flight_requests_per_connection_max,
            &mut limits.in_flight_requests_per_connection_max,
        );
        set_u32(self.frame_bytes_max, &mut limits.frame_bytes_max);
        let set_u64 = |value: Option<u64>, field: &mut u64| *field = value.unwrap_or(*field);
        set_u64(self.connection_buffer_bytes_max, &mut limits.connection_buffer_bytes_max);
        set_u64(self.server_buffer_bytes_max, &mut limits.server_buffer_bytes_max);
        set_u64(self.frame_timeout_ms, &mut limits.frame_timeout_ms);
        set_u64(self.handshake_timeout_ms, &mut limits.handshake_timeout_ms);
        set_u64(self.idle_timeout_ms, &mut limits.idle_timeout_ms);
        set_u64(self.shutdown_drain_ms, &mut limits.shutdown_drain_ms);
        if let Some(value) = self.memory_limit_bytes {
            limits.memory_limit_bytes = Some(value);
        }
    }
}

impl FileEngine {
    fn apply(self, engine: &mut EngineConfig) {
        if let Some(value) = self.ingress_queue_len_max {
            engine.ingress_queue_len_max = value;
        }
        if let Some(value) = self.batch_requests_max {
            engine.batch_requests_max = value;
        }
        if let Some(value) = self.segment_bytes_target {
            engine.segment_bytes_target = value;
        }
        if let Some(value) = self.snapshot_every_records {
            engine.snapshot_every_records = value;
        }
        if let Some(value) = self.snapshot_every_log_bytes {
            engine.snapshot_every_log_bytes = value;
        }
        if let Some(value) = self.snapshot_every_ms {
            engine.snapshot_every_ms = value;
        }
        if let Some(value) = self.snapshot_on_shutdown {
            engine.snapshot_on_shutdown = value;
        }
        if let Some(value) = self.shutdown_deadline_ms {
            engine.shutdown_deadline_ms = value;
        }
        if let Some(value) = self.skus_max {
            engine.caps.skus_max = value;
        }
        if let Some(value) = self.holds_max {
            engine.caps.holds_max = value;
        }
        if let Some(value) = self.orders_max {
            engine.caps.orders_max = value;
        }
        if let Some(value) = self.idempotency_keys_max {
            engine.idempotency.keys_max = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    fn write_file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("allotd.toml");
        std::fs::write(&path, text).expect("write the configuration file");
        path
    }

    #[test]
    fn the_defaults_serve_on_localhost_from_allot_data() {
        let config = ServerConfig::load(&Flags::default(), &HashMap::new()).expect("load");
        assert_eq!(config.listen, "127.0.0.1:7411".parse().expect("address"));
        assert_eq!(config.data_dir, PathBuf::from("allot-data"));
        assert_eq!(config.tls, TlsSource::Dev);
        assert!(config.tokens.is_empty());
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn the_environment_overrides_the_file_and_flags_override_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_file(
            dir.path(),
            "listen = \"127.0.0.1:1001\"\ndata_dir = \"/from/file\"\n[limits]\nconnections_max = 7\n",
        );
        let only_file = Flags { config: Some(file.clone()), ..Flags::default() };
        let config = ServerConfig::load(&only_file, &HashMap::new()).expect("load");
        assert_eq!(config.listen.port(), 1001);
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.limits.connections_max, 7);

        let environment = env(&[(ENV_LISTEN, "127.0.0.1:1002"), (ENV_DATA_DIR, "/from/env")]);
        let config = ServerConfig::load(&only_file, &environment).expect("load");
        assert_eq!(config.listen.port(), 1002);
        assert_eq!(config.data_dir, PathBuf::from("/from/env"));

        let flags = Flags {
            config: Some(file),
            data_dir: Some("/from/flag".into()),
            listen: Some("127.0.0.1:1003".parse().expect("address")),
        };
        let config = ServerConfig::load(&flags, &environment).expect("load");
        assert_eq!(config.listen.port(), 1003);
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.limits.connections_max, 7, "the file still supplies the rest");
    }

    #[test]
    fn the_file_can_be_named_by_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_file(dir.path(), "data_dir = \"/named/by/env\"\n");
        let environment = env(&[(ENV_CONFIG, file.to_str().expect("utf-8 path"))]);
        let config = ServerConfig::load(&Flags::default(), &environment).expect("load");
        assert_eq!(config.data_dir, PathBuf::from("/named/by/env"));
    }

    #[test]
    fn table_caps_and_the_memory_limit_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "[limits]\nmemory_limit_bytes = 1000000\n[engine]\nskus_max = 10\n\
                    holds_max = 20\norders_max = 30\nidempotency_keys_max = 40\n";
        let flags = Flags { config: Some(write_file(dir.path(), text)), ..Flags::default() };
        let config = ServerConfig::load(&flags, &HashMap::new()).expect("load");
        assert_eq!(config.limits.memory_limit_bytes, Some(1_000_000));
        let caps = config.engine.caps;
        assert_eq!((caps.skus_max, caps.holds_max, caps.orders_max), (10, 20, 30));
        assert_eq!(config.engine.idempotency.keys_max, 40);
        let zero = write_file(dir.path(), "[engine]\nholds_max = 0\n");
        let flags = Flags { config: Some(zero), ..Flags::default() };
        let error = ServerConfig::load(&flags, &HashMap::new()).unwrap_err();
        assert!(error.0.contains("holds_max"), "{error:?}");
    }

    #[test]
    fn tokens_map_to_their_roles_from_inline_values_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), "from-a-file\n").expect("write");
        let text = format!(
            "[[tokens]]\nname = \"shop\"\nrole = \"checkout\"\ntoken = \"c-1\"\n\
             [[tokens]]\nrole = \"read\"\ntoken_file = \"{}\"\n",
            dir.path().join("secret").display()
        );
        let file = write_file(dir.path(), &text);
        let flags = Flags { config: Some(file), ..Flags::default() };
        let config = ServerConfig::load(&flags, &HashMap::new()).expect("load");
        let tokens: Vec<_> = config
            .tokens
            .iter()
            .map(|token| (token.name.as_str(), token.token.as_str(), token.role))
            .collect();
        assert_eq!(
            tokens,
            [("shop", "c-1", Role::Checkout), ("token-2", "from-a-file", Role::Read)]
        );
    }

    #[test]
    fn an_unknown_role_is_refused_naming_the_role_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_file(dir.path(), "[[tokens]]\nrole = \"root\"\ntoken = \"t\"\n");
        let flags = Flags { config: Some(file.clone()), ..Flags::default() };
        let error = ServerConfig::load(&flags, &HashMap::new()).unwrap_err();
        assert!(error.0.contains("\"root\""), "{error}");
        assert!(error.0.contains("tokens[0].role"), "{error}");
        assert!(error.0.contains(&file.display().to_string()), "{error}");
    }

    #[test]
    fn unknown_keys_half_a_key_pair_and_bad_limits_are_refused() {
        for (text, expected) in [
            ("lisen = \"127.0.0.1:1\"\n", "lisen"),
            ("[tls]\ncert = \"c.pem\"\n", "tls.key"),
            ("[limits]\nconnections_max = 0\n", "connections_max"),
            ("[limits]\nframe_bytes_max = 99999999\n", "frame_bytes_max"),
            ("[limits]\nconnection_buffer_bytes_max = 4096\n", "connection_buffer_bytes_max"),
            ("[limits]\nserver_buffer_bytes_max = 4194304\n", "server_buffer_bytes_max"),
            ("[limits]\nframe_timeout_ms = 0\n", "frame_timeout_ms"),
            ("[[tokens]]\nrole = \"read\"\n", "exactly one of token"),
            (
                "[[tokens]]\nrole = \"read\"\ntoken = \"a\"\n[[tokens]]\nrole = \"admin\"\ntoken = \"a\"\n",
                "repeats",
            ),
        ] {
            let error = FileConfig::parse(text)
                .and_then(|file| {
                    let mut config = ServerConfig::default();
                    file.apply(&mut config)?;
                    config.check()
                })
                .unwrap_err();
            assert!(error.0.contains(expected), "{text:?} gave {error}");
        }
    }

    #[test]
    fn a_bad_listen_address_in_the_environment_names_the_variable() {
        let error =
            ServerConfig::load(&Flags::default(), &env(&[(ENV_LISTEN, "nowhere")])).unwrap_err();
        assert!(error.0.starts_with(ENV_LISTEN), "{error}");
    }

    /// The example file with its `# key = value` lines switched on, tokens excepted.
    fn example_uncommented() -> String {
        let example = include_str!("../allotd.example.toml");
        let mut in_tokens = false;
        let mut lines = Vec::new();
        for line in example.lines() {
            if line.starts_with('[') {
                in_tokens = false;
            }
            if line.starts_with("# [[tokens]]") {
                in_tokens = true;
            }
            let setting = line.strip_prefix("# ").filter(|rest| {
                rest.split_once(" = ").is_some_and(|(key, _)| {
                    key.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_')
                })
            });
            match setting {
                Some(setting) if !in_tokens => lines.push(setting),
                _ => lines.push(line),
            }
        }
        lines.join("\n")
    }

    #[test]
    fn the_example_file_parses_and_states_the_real_defaults() {
        let example = include_str!("../allotd.example.toml");
        FileConfig::parse(example).expect("the example parses as it is");

        let mut config = ServerConfig::default();
        FileConfig::parse(&example_uncommented())
            .expect("the uncommented example parses")
            .apply(&mut config)
            .expect("the uncommented example applies");
        let defaults = ServerConfig::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.data_dir, PathBuf::from("./allot-data"));
        assert_eq!(config.network_threads, defaults.network_threads);
        // The example shows a memory limit, where the default takes a share of MemTotal.
        assert_eq!(config.limits.memory_limit_bytes, Some(12 * 1024 * 1024 * 1024));
        assert_eq!(Limits { memory_limit_bytes: None, ..config.limits }, defaults.limits);
        let engine = &config.engine;
        let engine_defaults = &defaults.engine;
        assert_eq!(engine.caps, engine_defaults.caps);
        assert_eq!(engine.idempotency.keys_max, engine_defaults.idempotency.keys_max);
        assert_eq!(engine.ingress_queue_len_max, engine_defaults.ingress_queue_len_max);
        assert_eq!(engine.batch_requests_max, engine_defaults.batch_requests_max);
        assert_eq!(engine.segment_bytes_target, engine_defaults.segment_bytes_target);
        assert_eq!(engine.snapshot_every_records, engine_defaults.snapshot_every_records);
        assert_eq!(engine.snapshot_every_log_bytes, engine_defaults.snapshot_every_log_bytes);
        assert_eq!(engine.snapshot_every_ms, engine_defaults.snapshot_every_ms);
        assert_eq!(engine.snapshot_on_shutdown, engine_defaults.snapshot_on_shutdown);
        assert_eq!(engine.shutdown_deadline_ms, engine_defaults.shutdown_deadline_ms);
        assert_eq!(config.client_cert_role, Role::Read);
    }

    #[test]
    fn a_routing_table_sets_its_weights_and_defaults_the_rest() {
        let mut config = ServerConfig::default();
        FileConfig::parse("[routing]\nworkload_penalty_minor = 9000\nshipments_max = 2")
            .unwrap()
            .apply(&mut config)
            .unwrap();
        let weights = config.engine.routing_weights.expect("set");
        assert_eq!((weights.workload_penalty_minor, weights.shipments_max), (9000, 2));
        assert_eq!(weights.distance_minor_per_km, RoutingWeights::default().distance_minor_per_km);
        let bad = FileConfig::parse("[routing]\nshipments_max = 0").unwrap();
        let error = bad.apply(&mut ServerConfig::default()).unwrap_err();
        assert!(error.0.contains("shipments_max 0"), "{error}");
        assert_eq!(ServerConfig::default().engine.routing_weights, None);
    }

    #[test]
    fn network_threads_leave_the_writer_a_core() {
        let automatic = ServerConfig::default();
        assert_eq!(automatic.network_threads_for(1), 1);
        assert_eq!(automatic.network_threads_for(2), 1);
        assert_eq!(automatic.network_threads_for(16), 15);
        let mut config = ServerConfig::default();
        FileConfig::parse("network_threads = 3").unwrap().apply(&mut config).unwrap();
        assert_eq!(config.network_threads_for(2), 3);
        config.network_threads = NETWORK_THREADS_MAX + 1;
        assert!(config.check().unwrap_err().0.contains("network_threads"));
    }

    #[test]
    fn a_printed_config_does_not_show_its_tokens() {
        let config = ServerConfig::default().with_token("very-secret", Role::Admin);
        assert!(!format!("{config:?}").contains("very-secret"));
    }
}
