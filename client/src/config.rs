//! How a client finds, trusts and authenticates to a server, and its timeouts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ClientError;

/// Where `allotd` listens unless told otherwise.
pub const ADDR_DEFAULT: &str = "127.0.0.1:7411";
/// The name the server's certificate is checked against; the development certificate
/// names `localhost`.
pub const SERVER_NAME_DEFAULT: &str = "localhost";
/// What the client calls itself in `Hello`, for the server's logs.
pub const CLIENT_NAME_DEFAULT: &str = "allot-client";
/// How long one attempt of a request may wait for its answer.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// How long a connection, with its handshake, may take.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Retries of a call whose outcome is unknown (timeout, lost connection).
pub const RETRIES_DEFAULT: u32 = 3;
/// Pause before the first retry; the n-th retry waits n times this.
pub const RETRY_BACKOFF_MS_DEFAULT: u64 = 100;
/// QUIC keep-alive: an idle connection still proves the server is there this often.
pub const KEEP_ALIVE_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// A connection with no packet from the server for this long is lost, so a server that
/// died without closing is noticed well before a request times out.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// The development certificate `allotd` writes into its data directory.
pub const DEV_CERT_FILE: &str = "dev-cert.pem";
/// The admin token `allotd` writes next to its development certificate.
pub const DEV_TOKEN_FILE: &str = "dev-token";

/// Which server certificates the client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A PEM bundle of CA certificates; the server's chain and name are verified
    /// normally.
    CaFile(PathBuf),
    /// A PEM file with exactly one certificate: the server must present that very
    /// certificate (compared byte for byte; issuer, name and dates do not matter). The
    /// TLS 1.3 handshake signature is still verified against its key.
    PinnedCert(PathBuf),
}

/// A client certificate for mutual TLS: a PEM chain (leaf first) and the PEM private key
/// (PKCS#8, PKCS#1 or SEC1) that belongs to its leaf.
///
/// A server with `[tls] client_ca` verifies the chain; a verified client whose `Hello`
/// carries an empty token gets the server's `client_cert_role`. A non-empty token is still
/// checked and wins. The files are read when [`Client::connect`](crate::Client::connect)
/// builds the TLS configuration.
///
/// ```no_run
/// # async fn example() -> Result<(), allot_client::ClientError> {
/// use allot_client::{Client, ClientCert, ClientConfig, Trust};
///
/// let mut config = ClientConfig::new("allot.internal:7411", Trust::CaFile("ca.pem".into()), "");
/// config.server_name = "allot.internal".into();
/// config.client_cert = Some(ClientCert::new("checkout-eu.pem", "checkout-eu-key.pem"));
/// let client = Client::connect(config).await?;
/// println!("connected as {}", client.role());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
}

impl ClientCert {
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ClientCert {
        ClientCert { cert: cert.into(), key: key.into() }
    }
}

/// Everything [`Client::connect`](crate::Client::connect) needs.
///
/// ```no_run
/// # async fn example() -> Result<(), allot_client::ClientError> {
/// use std::time::Duration;
/// use allot_client::{Client, ClientConfig, Trust};
///
/// let mut config = ClientConfig::new("127.0.0.1:7411", Trust::CaFile("ca.pem".into()), "s3cret");
/// config.client_name = "checkout-eu-3".into();
/// config.request_timeout = Duration::from_secs(2);
/// let client = Client::connect(config).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `host:port`; a host name is resolved at each connect.
    pub addr: String,
    /// The name the certificate must carry (with [`Trust::CaFile`]) and the TLS SNI.
    pub server_name: String,
    pub trust: Trust,
    /// Bearer token sent in `Hello`; the server maps it to a role. May be empty with a
    /// [`client_cert`](ClientConfig::client_cert) the server verifies.
    pub token: String,
    /// Presented to servers that ask for one (mutual TLS); `None` by default.
    pub client_cert: Option<ClientCert>,
    pub client_name: String,
    /// Per attempt: a retried call may take up to `(retries + 1)` times this.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub keep_alive_interval: Duration,
    pub idle_timeout: Duration,
}

impl ClientConfig {
    /// A configuration with every default but the address, trust and token.
    pub fn new(addr: impl Into<String>, trust: Trust, token: impl Into<String>) -> ClientConfig {
        ClientConfig {
            addr: addr.into(),
            server_name: SERVER_NAME_DEFAULT.into(),
            trust,
            token: token.into(),
            client_cert: None,
            client_name: CLIENT_NAME_DEFAULT.into(),
            request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS_DEFAULT),
            connect_timeout: Duration::from_millis(CONNECT_TIMEOUT_MS_DEFAULT),
            retries: RETRIES_DEFAULT,
            retry_backoff: Duration::from_millis(RETRY_BACKOFF_MS_DEFAULT),
            keep_alive_interval: Duration::from_millis(KEEP_ALIVE_INTERVAL_MS_DEFAULT),
            idle_timeout: Duration::from_millis(IDLE_TIMEOUT_MS_DEFAULT),
        }
    }

    /// The configuration for a development server: trusts the certificate `allotd`
    /// wrote to `dir/dev-cert.pem` (pinned) and uses the token in `dir/dev-token`.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), allot_client::ClientError> {
    /// use allot_client::{Client, ClientConfig};
    ///
    /// let config = ClientConfig::from_data_dir("127.0.0.1:7411", "/var/lib/allot")?;
    /// let client = Client::connect(config).await?;
    /// println!("server {}", client.ping().await?);
    /// # Ok(()) }
    /// ```
    pub fn from_data_dir(
        addr: impl Into<String>,
        dir: impl AsRef<Path>,
    ) -> Result<ClientConfig, ClientError> {
        let dir = dir.as_ref();
        let cert = dir.join(DEV_CERT_FILE);
        if !cert.is_file() {
            return Err(ClientError::Config(format!("no certificate at {}", cert.display())));
        }
        let token = read_token(&dir.join(DEV_TOKEN_FILE))?;
        Ok(ClientConfig::new(addr, Trust::PinnedCert(cert), token))
    }
}

/// A token file's first line, without surrounding whitespace.
pub fn read_token(path: &Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ClientError::Config(format!("cannot read {}: {error}", path.display())))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(ClientError::Config(format!("{} holds no token", path.display())));
    }
    Ok(token.to_owned())
}

impl std::fmt::Debug for ClientConfig {
    // The token is a credential: it stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .field("trust", &self.trust)
            .field("token", &"<redacted>")
            .field("client_cert", &self.client_cert)
            .field("client_name", &self.client_name)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_data_dir_pins_the_dev_certificate_and_reads_the_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DEV_CERT_FILE), "-----BEGIN CERTIFICATE-----\n").unwrap();
        std::fs::write(dir.path().join(DEV_TOKEN_FILE), "  0123abcd \nignored\n").unwrap();
        let config = ClientConfig::from_data_dir("127.0.0.1:9", dir.path()).unwrap();
        assert_eq!(config.addr, "127.0.0.1:9");
        assert_eq!(config.token, "0123abcd");
        assert_eq!(config.trust, Trust::PinnedCert(dir.path().join(DEV_CERT_FILE)));
        assert_eq!(config.server_name, SERVER_NAME_DEFAULT);
        assert_eq!(config.client_cert, None, "no client certificate unless given");
        assert!(!format!("{config:?}").contains("0123abcd"), "the token is redacted");
    }

    #[test]
    fn from_data_dir_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let error = ClientConfig::from_data_dir(ADDR_DEFAULT, dir.path()).unwrap_err();
        assert!(matches!(&error, ClientError::Config(m) if m.contains(DEV_CERT_FILE)), "{error}");
        std::fs::write(dir.path().join(DEV_CERT_FILE), "").unwrap();
        let error = ClientConfig::from_data_dir(ADDR_DEFAULT, dir.path()).unwrap_err();
        assert!(matches!(&error, ClientError::Config(m) if m.contains(DEV_TOKEN_FILE)), "{error}");
        std::fs::write(dir.path().join(DEV_TOKEN_FILE), "\n").unwrap();
        let error = ClientConfig::from_data_dir(ADDR_DEFAULT, dir.path()).unwrap_err();
        assert!(matches!(&error, ClientError::Config(m) if m.contains("no token")), "{error}");
    }
}
