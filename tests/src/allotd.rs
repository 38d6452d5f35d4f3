//! A real `allotd` process for end-to-end tests: started on a data directory with
//! `--listen 127.0.0.1:0`, found ready by its `allotd listening on <addr>` line, and
//! stopped by SIGTERM, `kill -9` or drop.
//!
//! The binary is the one cargo built next to the test executable
//! (`target/<profile>/allotd`); `cargo test --workspace` builds it, and so does
//! `cargo build -p allot-server --bin allotd`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

/// How long `allotd` may take to recover its data directory and print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What `allotd` prints on stdout, followed by the bound address, once it serves.
pub const READY_LINE_PREFIX: &str = "allotd listening on ";

/// One running `allotd`; dropping it kills the process.
pub struct Allotd {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    /// The current process's stderr, shown when it fails to start or a test panics.
    stderr_path: PathBuf,
    starts: usize,
    logs: TempDir,
    /// Owned when `start` made the data directory; removed on drop.
    _temp_data_dir: Option<TempDir>,
}

impl Allotd {
    /// A server on a fresh temporary data directory, with a development certificate and
    /// admin token.
    pub fn start() -> Allotd {
        let dir =
            tempfile::Builder::new().prefix("allotd-e2e-").tempdir().expect("create a data dir");
        let mut allotd = Allotd::start_in(dir.path(), &[]);
        allotd._temp_data_dir = Some(dir);
        allotd
    }

    /// A server on `data_dir` (kept after the process ends), with more flags such as
    /// `["--config", path]`.
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Allotd {
        let logs =
            tempfile::Builder::new().prefix("allotd-logs-").tempdir().expect("create a log dir");
        let extra_args: Vec<String> = extra_args.iter().map(|arg| arg.to_string()).collect();
        let stderr_path = logs.path().join("stderr-0.log");
        let (child, addr) = spawn(data_dir, &extra_args, &stderr_path);
        Allotd {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            extra_args,
            stderr_path,
            starts: 1,
            logs,
            _temp_data_dir: None,
        }
    }

    /// Where the server listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The development certificate a client must trust.
    pub fn cert_path(&self) -> PathBuf {
        self.data_dir.join("dev-cert.pem")
    }

    /// The development admin token; there is none when the configuration names tokens.
    pub fn admin_token(&self) -> String {
        let path = self.data_dir.join("dev-token");
        match std::fs::read_to_string(&path) {
            Ok(token) => token.trim().to_owned(),
            Err(error) => panic!(
                "no development token at {} ({error}): was allotd started with configured tokens?",
                path.display()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no shutdown, no final snapshot, the log as the crash left it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().expect("wait for allotd")
    }

    /// Starts `allotd` again on the same data directory and flags (on a new port),
    /// stopping the current process with SIGTERM first if it is still running.
    pub fn restart(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
        self.stderr_path = self.logs.path().join(format!("stderr-{}.log", self.starts));
        self.starts += 1;
        let (child, addr) = spawn(&self.data_dir, &self.extra_args, &self.stderr_path);
        self.child = child;
        self.addr = addr;
    }

    /// Signals the process only while it has not been reaped, so the pid cannot belong
    /// to another process by then.
    fn signal(&mut self, signal: libc::c_int) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: `kill` has no memory effects; the pid is our unreaped child.
        unsafe { libc::kill(pid, signal) };
    }
}

impl Drop for Allotd {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("allotd stderr:\n{}", read_log(&self.stderr_path));
        }
    }
}

/// The `allotd` cargo built beside this test executable.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe.parent().expect("the executable's directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("allotd");
    assert!(
        path.exists(),
        "{} is missing: run cargo build -p allot-server --bin allotd (cargo test --workspace builds it too)",
        path.display()
    );
    path
}

fn spawn(data_dir: &Path, extra_args: &[String], stderr_path: &Path) -> (Child, SocketAddr) {
    let stderr = File::create(stderr_path).expect("create the stderr log");
    let mut child = Command::new(binary())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra_args)
        .env_remove("ALLOTD_CONFIG")
        .env_remove("ALLOTD_DATA_DIR")
        .env_remove("ALLOTD_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn allotd");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, ready) = mpsc::channel();
    // Keeps reading after the ready line, so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    match wait_ready(&ready) {
        Ok(addr) => (child, addr),
        Err(why) => {
            let _ = child.kill();
            let status = child.wait().map(|status| status.to_string()).unwrap_or_default();
            panic!("allotd did not start ({why}; {status}); stderr:\n{}", read_log(stderr_path));
        }
    }
}

fn wait_ready(lines: &mpsc::Receiver<String>) -> Result<SocketAddr, String> {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).map_err(|error| match error {
            mpsc::RecvTimeoutError::Timeout => format!("no ready line within {READY_TIMEOUT:?}"),
            mpsc::RecvTimeoutError::Disconnected => "it closed stdout".to_owned(),
        })?;
        if let Some(addr) = line.strip_prefix(READY_LINE_PREFIX) {
            return addr.trim().parse().map_err(|_| format!("unreadable ready line {line:?}"));
        }
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| format!("<{}: {error}>", path.display()))
}
