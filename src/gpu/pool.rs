//! Buffer pool: freed buffers are kept and reused so a steady-state training step allocates
//! nothing. Sizes are rounded to classes, four per power of two (at most 19 % slack), and a
//! request takes the smallest idle buffer of its class or of up to twice it. The tensors of a
//! corpus's batches come in ever-different sizes: reuse by exact class missed on about 120
//! tensors per batch of four documents (the best fit on about 12), and each miss is a buffer
//! created, zeroed and later freed, whose churn through the driver's memory blocks showed as
//! passing peaks in the resident set. `DOCRE_NO_POOL=1` turns reuse off, which helps when
//! hunting a use-after-free style bug in a launcher.
//!
//! Idle buffers are capped at the most bytes ever live at once (at least IDLE_FLOOR), the
//! smallest freed first: over a corpus an uncapped pool kept a buffer of every size it met
//! (prediction's memory grew by 8 MB per document on lavapipe, where buffers are host memory). A
//! cap on live plus idle bytes was tried: it missed more often and the resident set grew faster.
//! Freeing the least recently returned first let the largest buffers, which a corpus needs only
//! for its batches with the most pairs, go between such batches; made again, they landed in
//! fresh driver memory, and the resident set stepped up by 15 % halfway through 5,000 documents
//! with the pool's bytes flat. Small buffers are cheap to make again and fit the holes.

use std::collections::BTreeMap;

/// Idle bytes the pool may always keep, however small the working set.
const IDLE_FLOOR: u64 = 32 << 20;

#[derive(Default)]
pub struct BufferPool {
    /// Idle buffers by size, each with the tick it was returned at (oldest first).
    free: BTreeMap<u64, Vec<(u64, wgpu::Buffer)>>,
    idle: u64,
    tick: u64,
    in_use: u64,
    peak: u64,
    /// The most bytes ever live at once: what the idle cap follows.
    high_water: u64,
}

/// Round a byte count up to its size class.
pub fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(256);
    let p = 63 - (b - 1).leading_zeros() as u64; // 2^p < b <= 2^(p+1) for b > 1
    let base = 1u64 << p;
    let step = (base / 4).max(1);
    base + b.saturating_sub(base).div_ceil(step) * step
}

impl BufferPool {
    pub fn take(&mut self, device: &wgpu::Device, bytes: u64, max_buffer: u64, label: &str) -> wgpu::Buffer {
        let class = size_class(bytes).min(max_buffer.max(bytes));
        if let Some(size) = self.free.range(class..=class.saturating_mul(2)).next().map(|(&size, _)| size) {
            let buffer = self.remove_idle(size, false);
            self.note_live(size);
            return buffer;
        }
        self.note_live(class);
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: class,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn give(&mut self, buffer: wgpu::Buffer) {
        self.in_use -= buffer.size();
        if crate::settings::no_pool() {
            buffer.destroy();
            return;
        }
        self.tick += 1;
        self.idle += buffer.size();
        self.free.entry(buffer.size()).or_default().push((self.tick, buffer));
        let cap = self.high_water.max(IDLE_FLOOR);
        while self.idle > cap && self.free_smallest() {}
    }

    fn note_live(&mut self, bytes: u64) {
        self.in_use += bytes;
        self.peak = self.peak.max(self.in_use);
        self.high_water = self.high_water.max(self.in_use);
    }

    /// Frees an idle buffer of the smallest size (the one returned longest ago); false when none
    /// is idle.
    fn free_smallest(&mut self) -> bool {
        let Some(&size) = self.free.keys().next() else { return false };
        self.remove_idle(size, true).destroy();
        true
    }

    /// Takes an idle buffer of `size` out of the pool: the oldest returned, or the newest (the
    /// likeliest still in cache). A size's list never stays empty.
    fn remove_idle(&mut self, size: u64, oldest: bool) -> wgpu::Buffer {
        let list = self.free.get_mut(&size).expect("an idle size");
        let (_, buffer) = if oldest { list.remove(0) } else { list.pop().expect("lists are never empty") };
        if list.is_empty() {
            self.free.remove(&size);
        }
        self.idle -= size;
        buffer
    }

    /// Bytes of live tensors (including ones recorded work still holds) and the most there
    /// have been since the last `reset_peak`.
    pub fn in_use_bytes(&self) -> (u64, u64) {
        (self.in_use, self.peak)
    }

    pub fn idle_bytes(&self) -> u64 {
        self.idle
    }

    pub fn reset_peak(&mut self) {
        self.peak = self.in_use;
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;
    #[test]
    fn classes_cover_and_bound_slack() {
        for b in [1u64, 255, 256, 257, 1000, 4096, 4097, 1 << 20, (1 << 20) + 1, 123_456_789] {
            let c = size_class(b);
            assert!(c >= b, "{b} -> {c}");
            assert!(c <= (b.max(256) as f64 * 1.25) as u64 + 1, "{b} -> {c}");
            assert_eq!(size_class(c), c, "class of a class is itself");
        }
    }
}
