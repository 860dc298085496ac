//! Structured values decoded from the fuzzer's bytes. Reading past the end yields zeros, so
//! every byte string decodes to something and short inputs mean small values.

/// A cursor over the fuzzer's bytes.
pub(crate) struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((first, rest)) => {
                self.bytes = rest;
                *first
            }
            None => 0,
        }
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn i64(&mut self) -> i64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        i64::from_le_bytes(b)
    }

    /// An index below `len` (0 when `len` is 0).
    pub(crate) fn index(&mut self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            usize::from(self.u8()) % len
        }
    }

    /// One of `items` (`items` must not be empty).
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = self.index(items.len());
        items[i]
    }

    /// Up to `max` bytes, length first.
    pub(crate) fn bytes(&mut self, max: usize) -> &'a [u8] {
        let len = usize::from(self.u8()).min(max).min(self.bytes.len());
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        taken
    }

    /// Up to `max` bytes as text (invalid UTF-8 replaced).
    pub(crate) fn text(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.bytes(max)).into_owned()
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}
