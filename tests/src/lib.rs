//! Helpers shared by the end-to-end tests and the crash-test child process: the line
//! format in which the child reports what the engine acknowledged, and the seeded
//! generator (the benches' `Rng`).

pub mod allotd;

pub use allot_bench::Rng;

/// One acknowledgement the crash-test child saw, as one line on its stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// `placed <hold> <sku>:<location>:<quantity> ...`
    Placed { hold: u64, lines: Vec<(String, String, u32)> },
    /// `released <hold>`
    Released { hold: u64 },
    /// `committed <hold>`
    Committed { hold: u64 },
}

impl Ack {
    pub fn to_line(&self) -> String {
        match self {
            Ack::Placed { hold, lines } => {
                let lines: Vec<String> = lines
                    .iter()
                    .map(|(sku, location, quantity)| format!("{sku}:{location}:{quantity}"))
                    .collect();
                format!("placed {hold} {}", lines.join(" "))
            }
            Ack::Released { hold } => format!("released {hold}"),
            Ack::Committed { hold } => format!("committed {hold}"),
        }
    }

    pub fn parse(line: &str) -> Option<Ack> {
        let mut words = line.split_whitespace();
        let kind = words.next()?;
        let hold = words.next()?.parse().ok()?;
        match kind {
            "placed" => {
                let lines = words.map(parse_line).collect::<Option<Vec<_>>>()?;
                Some(Ack::Placed { hold, lines })
            }
            "released" => Some(Ack::Released { hold }),
            "committed" => Some(Ack::Committed { hold }),
            _ => None,
        }
    }
}

fn parse_line(word: &str) -> Option<(String, String, u32)> {
    let mut parts = word.split(':');
    let sku = parts.next()?.to_owned();
    let location = parts.next()?.to_owned();
    let quantity = parts.next()?.parse().ok()?;
    Some((sku, location, quantity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lines_round_trip() {
        let acks = [
            Ack::Placed {
                hold: 7,
                lines: vec![("S1".into(), "L1".into(), 2), ("S2".into(), "L2".into(), 1)],
            },
            Ack::Released { hold: 8 },
            Ack::Committed { hold: 9 },
        ];
        for ack in acks {
            assert_eq!(Ack::parse(&ack.to_line()), Some(ack));
        }
    }

    #[test]
    fn a_partial_ack_line_does_not_parse() {
        assert_eq!(Ack::parse("placed 7 S1:L1"), None);
        assert_eq!(Ack::parse("plac"), None);
    }
}
