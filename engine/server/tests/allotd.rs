//! The `allotd` binary as an operator runs it: the ready line with the real address,
//! development files in the data directory, a clean exit on SIGTERM, and a clear message
//! and non-zero exit when it cannot start.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to print its ready line (a debug build, a busy machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `allotd` and where its stderr goes.
struct Running {
    child: Child,
    stderr_path: std::path::PathBuf,
    ready: mpsc::Receiver<String>,
}

fn allotd(data_dir: &Path, logs: &Path, extra: &[&str]) -> Running {
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    let start = STARTS.fetch_add(1, Ordering::Relaxed);
    let stderr_path = logs.join(format!("stderr-{start}.log"));
    let stderr = File::create(&stderr_path).expect("create the stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_allotd"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("ALLOTD_CONFIG")
        .env_remove("ALLOTD_DATA_DIR")
        .env_remove("ALLOTD_LISTEN")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn allotd");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    Running { child, stderr_path, ready }
}

impl Running {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn wait_ready(&self) -> String {
        match self.ready.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(error) => panic!("no ready line ({error}); stderr:\n{}", self.stderr()),
        }
    }

    fn sigterm(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: sending a signal to our own child process, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.child.wait().expect("wait for allotd")
    }

    fn exit_within(&mut self, within: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("allotd did not exit; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn allotd_announces_its_address_makes_dev_files_and_exits_0_on_sigterm() {
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut server = allotd(data.path(), logs.path(), &[]);
    let line = server.wait_ready();
    let addr = line.strip_prefix("allotd listening on ").unwrap_or_else(|| panic!("{line:?}"));
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the real port, not the requested 0");
    for name in ["dev-cert.pem", "dev-key.pem", "dev-token"] {
        assert!(data.path().join(name).exists(), "{name} is missing");
    }

    let status = server.sigterm();
    assert!(status.success(), "{status}; stderr:\n{}", server.stderr());
    let token = std::fs::read_to_string(data.path().join("dev-token")).expect("token");
    let stderr = server.stderr();
    assert!(stderr.contains("dev-token"), "the log names the token file:\n{stderr}");
    assert!(stderr.contains("dev-cert.pem"), "the log names the certificate:\n{stderr}");
    assert!(!stderr.contains(token.trim()), "the log must not show the token");
}

#[test]
fn allotd_reuses_its_dev_files_on_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut first = allotd(data.path(), logs.path(), &[]);
    first.wait_ready();
    let cert = std::fs::read(data.path().join("dev-cert.pem")).expect("cert");
    let token = std::fs::read(data.path().join("dev-token")).expect("token");
    assert!(first.sigterm().success());

    let mut second = allotd(data.path(), logs.path(), &[]);
    second.wait_ready();
    assert_eq!(std::fs::read(data.path().join("dev-cert.pem")).expect("cert"), cert);
    assert_eq!(std::fs::read(data.path().join("dev-token")).expect("token"), token);
    assert!(second.sigterm().success());
}

#[test]
fn allotd_refuses_a_config_with_an_unknown_role_naming_it() {
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let config = logs.path().join("allotd.toml");
    std::fs::write(&config, "[[tokens]]\nrole = \"superuser\"\ntoken = \"t-1\"\n").expect("write");
    let config = config.to_str().expect("utf-8 path");
    let mut server = allotd(data.path(), logs.path(), &["--config", config]);
    let status = server.exit_within(READY_TIMEOUT);
    assert!(!status.success());
    let stderr = server.stderr();
    assert!(stderr.contains("\"superuser\""), "{stderr}");
}

#[test]
fn a_second_allotd_on_the_same_data_dir_exits_saying_it_is_locked() {
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut first = allotd(data.path(), logs.path(), &[]);
    first.wait_ready();
    let mut second = allotd(data.path(), logs.path(), &[]);
    let status = second.exit_within(READY_TIMEOUT);
    assert!(!status.success());
    let stderr = second.stderr();
    assert!(stderr.contains("locked"), "{stderr}");
    assert!(first.sigterm().success());
}
