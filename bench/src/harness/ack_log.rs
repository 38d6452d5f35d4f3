//! `--ack-log`: one CSV row `id,sku,location,qty` per line of every acknowledged hold,
//! written by a thread of its own and flushed whenever it has caught up, so the file is at
//! most moments behind the acknowledgements and an outside tool can check, after a
//! crash, that the server still has every hold in it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

use allot_protocol::HoldId;

use super::ledger::UNITS_PER_LINE;
use crate::{Catalogue, CellPick};

/// The CSV header row.
pub const ACK_LOG_HEADER: &str = "id,sku,location,qty";

/// The sending end, one per load slot.
#[derive(Debug, Clone)]
pub struct AckLog {
    rows: Sender<(HoldId, Vec<CellPick>)>,
}

impl AckLog {
    pub fn record(&self, hold: HoldId, lines: &[CellPick]) {
        // The writer only stops when every sender is gone, so this cannot fail while the
        // run goes on; a failed write is reported when the writer is joined.
        let _ = self.rows.send((hold, lines.to_vec()));
    }
}

/// The writing end: joined after the run, it reports how many rows it wrote.
pub struct AckLogWriter {
    thread: JoinHandle<std::io::Result<u64>>,
}

impl AckLogWriter {
    /// Creates (truncating) the file at `path`, writes the header and starts the writer.
    pub fn create(
        path: &Path,
        catalogue: Arc<Catalogue>,
    ) -> std::io::Result<(AckLog, AckLogWriter)> {
        let mut file = BufWriter::new(File::create(path)?);
        writeln!(file, "{ACK_LOG_HEADER}")?;
        file.flush()?;
        let (rows, received) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ack-log".into())
            .spawn(move || write_rows(file, &received, &catalogue))?;
        Ok((AckLog { rows }, AckLogWriter { thread }))
    }

    /// Waits for every row sent (all [`AckLog`]s must be dropped first).
    pub fn finish(self) -> std::io::Result<u64> {
        self.thread.join().unwrap_or_else(|_| Err(std::io::Error::other("ack-log writer panicked")))
    }
}

fn write_rows(
    mut file: BufWriter<File>,
    received: &Receiver<(HoldId, Vec<CellPick>)>,
    catalogue: &Catalogue,
) -> std::io::Result<u64> {
    let mut rows = 0;
    // Block for the next hold, then write everything queued behind it before flushing.
    while let Ok(mut next) = received.recv() {
        loop {
            let (hold, lines) = next;
            for pick in lines {
                let sku = catalogue.sku(pick.sku as usize);
                let location = catalogue.location_code(pick.location as usize);
                writeln!(file, "{hold},{sku},{location},{UNITS_PER_LINE}")?;
                rows += 1;
            }
            next = match received.try_recv() {
                Ok(queued) => queued,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            };
        }
        file.flush()?;
    }
    file.flush()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CatalogueSpec;

    #[test]
    fn every_acknowledged_line_becomes_a_row() {
        let catalogue = Arc::new(Catalogue::new(CatalogueSpec {
            n_skus: 10,
            n_locations: 3,
            locations_per_sku: 2,
            units_per_cell: 5,
            seed: 1,
        }));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acks.csv");
        let (log, writer) = AckLogWriter::create(&path, catalogue.clone()).unwrap();
        log.record(41, &[CellPick { sku: 3, location: 1 }]);
        log.record(42, &[CellPick { sku: 0, location: 2 }, CellPick { sku: 9, location: 0 }]);
        drop(log);
        assert_eq!(writer.finish().unwrap(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = format!(
            "{ACK_LOG_HEADER}\n41,{},LOC-0001,1\n42,{},LOC-0002,1\n42,{},LOC-0000,1\n",
            catalogue.sku(3),
            catalogue.sku(0),
            catalogue.sku(9)
        );
        assert_eq!(text, expected);
    }
}
