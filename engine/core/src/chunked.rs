//! A deque of fixed-size chunks: the queues and slabs that hold millions of entries.
//!
//! A `Vec` or `VecDeque` doubles when full: it copies everything (a stall of the writer
//! at millions of entries) and may then carry up to as much unused room as it uses. A
//! chunked deque grows by one chunk of [`CHUNK_ENTRIES`] at a time, never copies what it
//! holds, and wastes at most a chunk at either end.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Entries per chunk.
pub const CHUNK_ENTRIES: usize = 1024;

#[derive(Debug, Clone)]
pub struct Chunked<T> {
    chunks: VecDeque<Vec<T>>,
    /// Entries of `chunks[0]` already popped.
    front: usize,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked { chunks: VecDeque::new(), front: 0, len: 0 }
    }
}

impl<T> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, value: T) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < CHUNK_ENTRIES => chunk.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK_ENTRIES);
                chunk.push(value);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    fn place(&self, index: usize) -> Option<(usize, usize)> {
        (index < self.len).then(|| {
            let at = self.front + index;
            (at / CHUNK_ENTRIES, at % CHUNK_ENTRIES)
        })
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        let (chunk, offset) = self.place(index)?;
        Some(&self.chunks[chunk][offset])
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        let (chunk, offset) = self.place(index)?;
        Some(&mut self.chunks[chunk][offset])
    }

    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten().skip(self.front)
    }
}

impl<T: Copy> Chunked<T> {
    /// Removes the first entry; a chunk goes once its last entry is popped.
    pub fn pop_front(&mut self) -> Option<T> {
        let value = *self.front()?;
        self.front += 1;
        self.len -= 1;
        if self.front == CHUNK_ENTRIES || self.len == 0 {
            self.chunks.pop_front();
            self.front = 0;
        }
        Some(value)
    }

    /// Appends copies of `value` until there are `len` entries.
    pub fn extend_to(&mut self, len: usize, value: T) {
        while self.len < len {
            self.push_back(value);
        }
    }
}

impl<T> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut deque = Chunked::default();
        for item in items {
            deque.push_back(item);
        }
        deque
    }
}

/// Written as a sequence, the same bytes as a `Vec` of the entries.
impl<T: Serialize> Serialize for Chunked<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // The length first: the codec writes it before the entries.
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for entry in self.iter() {
            seq.serialize_element(entry)?;
        }
        seq.end()
    }
}

/// Read from a sequence straight into chunks, without a vector of them all first.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Chunked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Entries<T> {
            type Value = Chunked<T>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a sequence")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Chunked<T>, A::Error> {
                let mut deque = Chunked::default();
                while let Some(entry) = seq.next_element()? {
                    deque.push_back(entry);
                }
                Ok(deque)
            }
        }

        deserializer.deserialize_seq(Entries(std::marker::PhantomData))
    }
}

impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        self.get(index).expect("index within the deque")
    }
}

impl<T> std::ops::IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        self.get_mut(index).expect("index within the deque")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_their_order_and_indexes_across_chunk_boundaries() {
        let mut deque = Chunked::default();
        for n in 0..3 * CHUNK_ENTRIES as u64 {
            deque.push_back(n);
        }
        for n in 0..CHUNK_ENTRIES as u64 + 5 {
            assert_eq!(deque.pop_front(), Some(n));
        }
        assert_eq!(deque.chunks.len(), 2, "a drained chunk is dropped");
        assert_eq!(deque.len(), 2 * CHUNK_ENTRIES - 5);
        assert_eq!(deque[0], CHUNK_ENTRIES as u64 + 5);
        deque[1] = 7;
        assert_eq!(deque.get(1), Some(&7));
        assert_eq!(deque.get(deque.len()), None);
        assert_eq!(deque.iter().count(), deque.len());
        assert_eq!(deque.iter().last(), Some(&(3 * CHUNK_ENTRIES as u64 - 1)));
        while deque.pop_front().is_some() {}
        assert!(deque.is_empty() && deque.chunks.is_empty());
    }

    #[test]
    fn growth_wastes_at_most_one_chunk() {
        let mut deque = Chunked::default();
        for n in 0..CHUNK_ENTRIES + 1 {
            deque.push_back(n as u32);
        }
        let capacity: usize = deque.chunks.iter().map(Vec::capacity).sum();
        assert_eq!(capacity, 2 * CHUNK_ENTRIES);
    }
}
