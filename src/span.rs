//! Byte-offset spans and the line index that turns them into positions.

use serde::Serialize;

/// A half-open byte range `[start, end)` in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn contains(self, offset: usize) -> bool {
        (self.start as usize) <= offset && offset <= (self.end as usize)
    }
}

/// A position in a file: 1-based line, 1-based column counted in characters,
/// and the 0-based UTF-16 column that the Language Server Protocol wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
    pub utf16_column: u32,
}

/// Start offsets of every line of a text, for offset → position lookups.
#[derive(Clone, Debug)]
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    /// 0-based line number containing `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next - 1,
        }
    }

    pub fn line_start(&self, line: usize) -> usize {
        self.line_starts[line.min(self.line_starts.len() - 1)]
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.line_of(offset);
        let before = &text[self.line_starts[line]..offset];
        Position {
            line: line as u32 + 1,
            column: before.chars().count() as u32 + 1,
            utf16_column: before.encode_utf16().count() as u32,
        }
    }

    /// Byte offset of a 0-based line and UTF-16 column (clamped to the line).
    pub fn offset_of_utf16(&self, text: &str, line: usize, utf16_column: usize) -> usize {
        if line >= self.line_starts.len() {
            return text.len();
        }
        let start = self.line_starts[line];
        let end = self
            .line_starts
            .get(line + 1)
            .map(|next| next - 1)
            .unwrap_or(text.len());
        let mut units = 0;
        for (i, ch) in text[start..end].char_indices() {
            if units >= utf16_column {
                return start + i;
            }
            units += ch.len_utf16();
        }
        end
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_and_utf16_units() {
        let text = "ab\nçé𝄞x\n";
        let index = LineIndex::new(text);
        let x = text.find('x').unwrap();
        let pos = index.position(text, x);
        assert_eq!((pos.line, pos.column, pos.utf16_column), (2, 4, 4));
        assert_eq!(index.offset_of_utf16(text, 1, 4), x);
    }
}

/// A hash map for keys made of small integers (file ids, span offsets, item indices).
/// The standard hasher resists flooding attacks that these keys, taken from the
/// user's own files, cannot mount, and costs several times more per lookup; the
/// checker and the evaluator look a resolution up for nearly every node they visit.
pub type IntKeyMap<K, V> = std::collections::HashMap<K, V, IntKeyHash>;

/// Builds [`IntKeyHasher`]s for [`IntKeyMap`].
pub type IntKeyHash = std::hash::BuildHasherDefault<IntKeyHasher>;

/// A multiply-rotate hasher for integer keys: each word is mixed into the state with
/// one rotation, one xor and one multiplication by an odd constant, which spreads its
/// bits into the high bits the hash table indexes by.
#[derive(Clone, Copy, Default)]
pub struct IntKeyHasher {
    state: u64,
}

impl IntKeyHasher {
    /// An odd constant with well-mixed bits (2^64 divided by the golden ratio).
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        self.state = (self.state.rotate_left(26) ^ word).wrapping_mul(Self::MULTIPLIER);
    }
}

impl std::hash::Hasher for IntKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}
