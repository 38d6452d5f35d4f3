//! Helpers shared by the end-to-end tests and the crash-test child process: a small
//! seeded random generator and the line format in which the child reports what the
//! engine acknowledged.

/// SplitMix64: tiny, seeded and good enough to vary test workloads reproducibly.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

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

    #[test]
    fn splitmix_is_deterministic_per_seed() {
        let first: Vec<u64> = (0..4)
            .map({
                let mut rng = SplitMix64::new(1);
                move |_| rng.next_u64()
            })
            .collect();
        let again: Vec<u64> = (0..4)
            .map({
                let mut rng = SplitMix64::new(1);
                move |_| rng.next_u64()
            })
            .collect();
        let other = SplitMix64::new(2).next_u64();
        assert_eq!(first, again);
        assert_ne!(first[0], other);
    }
}
