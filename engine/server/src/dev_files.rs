//! The development certificate, key and admin token that `allotd` creates in its data
//! directory when none are configured: made once, reused on every later start, so
//! clients keep trusting the same certificate and the same token keeps working.
//!
//! The engine's recovery only looks at `wal-*.log`, `snapshot-*.snap*` and `LOCK`, so
//! these files can live beside them.
//!
//! Each file is made durable before it is announced: written under a temporary name,
//! the file fsynced, renamed into place, the directory fsynced. Without the last step a
//! power loss can forget the rename, a new certificate and token are made on the next
//! start, and every client pinned to the old ones is locked out.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use allot_protocol::limits::TOKEN_BYTES_MAX;

use super::ServerError;

pub const DEV_CERT_FILE_NAME: &str = "dev-cert.pem";
pub const DEV_KEY_FILE_NAME: &str = "dev-key.pem";
pub const DEV_TOKEN_FILE_NAME: &str = "dev-token";

/// Random bytes in a development token (hex-encoded, so twice as many characters).
pub const DEV_TOKEN_BYTES: usize = 32;

/// Names the certificate is valid for: what a client on the same machine dials.
const DEV_CERT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Only the owner may read a private key or a token.
const PRIVATE_FILE_MODE: u32 = 0o600;
const PUBLIC_FILE_MODE: u32 = 0o644;

/// Whether a development file was made now or found from an earlier start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Created,
    Reused,
}

/// The file-system steps a durable write takes; tests record their order.
pub(crate) trait Disk {
    /// Creates (or truncates) `path` with `mode` from the start and writes `bytes`.
    fn write_new(&mut self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()>;
    /// Flushes the file's contents to stable storage.
    fn sync_file(&mut self, path: &Path) -> io::Result<()>;
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Flushes the directory's entries, so a rename into it survives a power loss.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
pub(crate) struct FsDisk;

impl Disk for FsDisk {
    fn write_new(&mut self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
        file.write_all(bytes)
    }

    fn sync_file(&mut self, path: &Path) -> io::Result<()> {
        OpenOptions::new().write(true).open(path)?.sync_all()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// The development certificate and key in `data_dir`, created if either is missing.
pub fn dev_cert(data_dir: &Path) -> Result<(PathBuf, PathBuf, Origin), ServerError> {
    dev_cert_on(&mut FsDisk, data_dir)
}

fn dev_cert_on(
    disk: &mut impl Disk,
    data_dir: &Path,
) -> Result<(PathBuf, PathBuf, Origin), ServerError> {
    let cert = data_dir.join(DEV_CERT_FILE_NAME);
    let key = data_dir.join(DEV_KEY_FILE_NAME);
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok((cert, key, Origin::Reused)),
        (true, false) | (false, true) => {
            tracing::warn!(dir = %data_dir.display(), "half a development key pair; making a new pair");
        }
        (false, false) => {}
    }
    let names: Vec<String> = DEV_CERT_NAMES.iter().map(|name| name.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).map_err(|error| {
        ServerError::Tls(format!("cannot make a development certificate: {error}"))
    })?;
    // The key goes first: a certificate on disk without its key would be reused as half a pair.
    let key_pem = certified.signing_key.serialize_pem();
    write_durably(disk, &key, key_pem.as_bytes(), PRIVATE_FILE_MODE)?;
    write_durably(disk, &cert, certified.cert.pem().as_bytes(), PUBLIC_FILE_MODE)?;
    Ok((cert, key, Origin::Created))
}

/// The development admin token in `data_dir`, created if missing.
pub fn dev_token(data_dir: &Path) -> Result<(String, PathBuf, Origin), ServerError> {
    dev_token_on(&mut FsDisk, data_dir)
}

fn dev_token_on(
    disk: &mut impl Disk,
    data_dir: &Path,
) -> Result<(String, PathBuf, Origin), ServerError> {
    let path = data_dir.join(DEV_TOKEN_FILE_NAME);
    if path.exists() {
        let text = fs::read_to_string(&path).map_err(ServerError::io("read", &path))?;
        let token = text.trim().to_owned();
        if token.is_empty() || token.len() > TOKEN_BYTES_MAX || token.contains(char::is_whitespace)
        {
            return Err(ServerError::Config(format!(
                "{} does not hold a usable token; delete it to have a new one made",
                path.display()
            )));
        }
        return Ok((token, path, Origin::Reused));
    }
    let token = random_hex(DEV_TOKEN_BYTES)?;
    write_durably(disk, &path, format!("{token}\n").as_bytes(), PRIVATE_FILE_MODE)?;
    Ok((token, path, Origin::Created))
}

fn random_hex(bytes: usize) -> Result<String, ServerError> {
    let mut random = vec![0; bytes];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut random)
        .map_err(|_| ServerError::Config("the system random number generator failed".into()))?;
    Ok(random.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Writes a temporary file with `mode` from the start (a secret is never readable by
/// others, not even for a moment), fsyncs it, renames it into place and fsyncs the
/// directory, so after a crash or a power loss the name holds the old file or the whole
/// new one, and a file once announced stays.
fn write_durably(
    disk: &mut impl Disk,
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), ServerError> {
    let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or("dev-file");
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    disk.write_new(&tmp, bytes, mode).map_err(ServerError::io("write", &tmp))?;
    disk.sync_file(&tmp).map_err(ServerError::io("sync", &tmp))?;
    disk.rename(&tmp, path).map_err(ServerError::io("rename", path))?;
    disk.sync_dir(dir).map_err(ServerError::io("sync the directory", dir))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use allot_snapshots::{PowerLoss, PowerLossStorage, Storage};

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn the_dev_certificate_is_made_once_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key, origin) = dev_cert(dir.path()).expect("create");
        assert_eq!(origin, Origin::Created);
        assert_eq!(mode(&key), PRIVATE_FILE_MODE);
        let first = fs::read(&cert).expect("read");
        assert!(first.starts_with(b"-----BEGIN CERTIFICATE-----"));

        let (again, _, origin) = dev_cert(dir.path()).expect("reuse");
        assert_eq!(origin, Origin::Reused);
        assert_eq!(fs::read(again).expect("read"), first);
    }

    #[test]
    fn half_a_key_pair_is_replaced_by_a_new_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(DEV_CERT_FILE_NAME), "stale").expect("write");
        let (cert, key, origin) = dev_cert(dir.path()).expect("create");
        assert_eq!(origin, Origin::Created);
        assert_ne!(fs::read(cert).expect("read"), b"stale");
        assert!(key.exists());
    }

    #[test]
    fn the_dev_token_is_64_hex_characters_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (token, path, origin) = dev_token(dir.path()).expect("create");
        assert_eq!(origin, Origin::Created);
        assert_eq!(token.len(), 2 * DEV_TOKEN_BYTES);
        assert!(token.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_eq!(mode(&path), PRIVATE_FILE_MODE);

        let (again, _, origin) = dev_token(dir.path()).expect("reuse");
        assert_eq!((again, origin), (token, Origin::Reused));
    }

    /// The real file system, with every step recorded as `(step, file name)`.
    #[derive(Default)]
    struct RecordingDisk {
        steps: Vec<(&'static str, String)>,
    }

    fn name(path: &Path) -> String {
        path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
    }

    impl Disk for RecordingDisk {
        fn write_new(&mut self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
            self.steps.push(("write", name(path)));
            FsDisk.write_new(path, bytes, mode)
        }

        fn sync_file(&mut self, path: &Path) -> io::Result<()> {
            self.steps.push(("sync file", name(path)));
            FsDisk.sync_file(path)
        }

        fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
            self.steps.push(("rename", format!("{} -> {}", name(from), name(to))));
            FsDisk.rename(from, to)
        }

        fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
            self.steps.push(("sync dir", name(dir)));
            FsDisk.sync_dir(dir)
        }
    }

    fn durable_steps(file: &str, dir: &str) -> Vec<(&'static str, String)> {
        vec![
            ("write", format!(".{file}.tmp")),
            ("sync file", format!(".{file}.tmp")),
            ("rename", format!(".{file}.tmp -> {file}")),
            ("sync dir", dir.to_owned()),
        ]
    }

    #[test]
    fn the_dev_token_is_written_synced_renamed_then_its_directory_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = RecordingDisk::default();
        let (token, path, _) = dev_token_on(&mut disk, dir.path()).expect("create");
        assert_eq!(disk.steps, durable_steps(DEV_TOKEN_FILE_NAME, &name(dir.path())));
        assert_eq!(fs::read_to_string(path).expect("read").trim(), token);
    }

    #[test]
    fn the_dev_key_then_certificate_are_each_made_durable_before_they_are_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = RecordingDisk::default();
        dev_cert_on(&mut disk, dir.path()).expect("create");
        let dir_name = name(dir.path());
        let mut expected = durable_steps(DEV_KEY_FILE_NAME, &dir_name);
        expected.extend(durable_steps(DEV_CERT_FILE_NAME, &dir_name));
        assert_eq!(disk.steps, expected);

        let mut again = RecordingDisk::default();
        dev_cert_on(&mut again, dir.path()).expect("reuse");
        assert!(again.steps.is_empty(), "reused files are not written again");
    }

    /// `Disk` over the snapshots crate's power-loss model: what a machine that lost power
    /// would find is then a question the model answers, not one of reasoning.
    struct PowerLossDisk(PowerLossStorage);

    impl Disk for PowerLossDisk {
        fn write_new(&mut self, path: &Path, bytes: &[u8], _mode: u32) -> io::Result<()> {
            self.0.create(path)?.write_all(bytes)
        }

        fn sync_file(&mut self, path: &Path) -> io::Result<()> {
            self.0.sync_file(path)
        }

        fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
            Storage::rename(&self.0, from, to)
        }

        fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
            self.0.sync_dir(dir)
        }
    }

    /// Power-loss images drawn per file written; each one is a different mix of lost,
    /// torn and reordered unsynced writes.
    const POWER_LOSS_SEEDS: u64 = 64;

    #[test]
    fn dev_files_once_written_survive_a_modelled_power_loss_whole() {
        let storage = PowerLossStorage::new();
        let dir = Path::new("/allot-data");
        storage.create_dir_all(dir).expect("create the directory");
        let files = [
            (DEV_KEY_FILE_NAME, "key"),
            (DEV_CERT_FILE_NAME, "cert"),
            (DEV_TOKEN_FILE_NAME, "0123\n"),
        ];
        let mut disk = PowerLossDisk(storage.clone());
        for (name, contents) in files {
            write_durably(&mut disk, &dir.join(name), contents.as_bytes(), PRIVATE_FILE_MODE)
                .expect("write");
        }
        let images = std::iter::once(PowerLoss::DropUnsynced)
            .chain((0..POWER_LOSS_SEEDS).map(|seed| PowerLoss::Random { seed }));
        for how in images {
            let image = storage.power_loss(how);
            for (name, contents) in files {
                let read = image.read(&dir.join(name));
                assert_eq!(read.ok().as_deref(), Some(contents.as_bytes()), "{name} after {how:?}");
            }
            let names = image.list(dir).expect("list");
            assert!(names.iter().all(|name| !name.ends_with(".tmp")), "{names:?} after {how:?}");
        }
    }

    #[test]
    fn an_empty_dev_token_file_is_refused_rather_than_accepting_an_empty_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(DEV_TOKEN_FILE_NAME), "\n").expect("write");
        assert!(matches!(dev_token(dir.path()), Err(ServerError::Config(_))));
    }
}
