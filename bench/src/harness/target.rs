//! Where the load goes: a running server (`--addr` with `--ca` and `--token`, or
//! `--data-dir` for a development server's certificate and token), or an allotd started
//! in this process on a temporary data directory (`--embedded`).

use std::net::SocketAddr;
use std::time::Duration;

use allot_client::{Client, ClientConfig, Trust};
use allot_server::{Server, ServerConfig};
use tempfile::TempDir;

use super::HarnessError;
use super::args::Args;

/// The client name the harness announces in its Hello.
pub const CLIENT_NAME: &str = "allot-bench";

/// An allotd serving from a temporary directory for the length of a run.
pub struct Embedded {
    server: Server,
    // Dropped after the server: the directory holds its log and snapshots.
    _dir: TempDir,
}

impl Embedded {
    pub async fn start() -> Result<(Embedded, ClientConfig), HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("allot-bench-")
            .tempdir()
            .map_err(|error| HarnessError::Target(format!("temporary directory: {error}")))?;
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
        let mut config = ServerConfig::new(dir.path()).with_listen(loopback);
        // The directory goes away with the run; a final snapshot would only slow the exit.
        config.engine.snapshot_on_shutdown = false;
        let server = Server::start(config)
            .await
            .map_err(|error| HarnessError::Target(format!("embedded allotd: {error:?}")))?;
        let client = ClientConfig::from_data_dir(server.local_addr().to_string(), dir.path())
            .map_err(|error| HarnessError::Target(error.to_string()))?;
        Ok((Embedded { server, _dir: dir }, client))
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// The client configuration `args` ask for (not for `--embedded`).
pub fn remote_config(args: &Args) -> Result<ClientConfig, HarnessError> {
    let addr = args.addr.clone().ok_or_else(|| HarnessError::Target("no --addr".into()))?;
    if let Some(dir) = &args.data_dir {
        return ClientConfig::from_data_dir(addr, dir)
            .map_err(|error| HarnessError::Target(error.to_string()));
    }
    let (Some(ca), Some(token)) = (&args.ca, &args.token) else {
        return Err(HarnessError::Target("--addr needs --ca and --token, or --data-dir".into()));
    };
    let mut config = ClientConfig::new(addr, Trust::CaFile(ca.clone()), token.clone());
    if let Some(name) = &args.server_name {
        config.server_name = name.clone();
    }
    Ok(config)
}

/// Opens `connections` connections, each its own client.
pub async fn connect(
    mut config: ClientConfig,
    connections: usize,
    timeout_ms: u64,
) -> Result<Vec<Client>, HarnessError> {
    config.client_name = CLIENT_NAME.into();
    config.request_timeout = Duration::from_millis(timeout_ms);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = Client::connect(config.clone())
            .await
            .map_err(|error| HarnessError::Target(format!("connect: {error}")))?;
        clients.push(client);
    }
    Ok(clients)
}
